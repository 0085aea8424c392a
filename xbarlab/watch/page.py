"""The watch page: one Bokeh document per browser tab, fed by its own `LiveLog`.

Layout: a header (file, run, protocol, backend, status), a progress line, the conductance map
(latest read per cell; click cells to trace them), the traces of the selected cells
(conductance at each read, voltage of each pulse) and the events table (refusals, faults,
compliance hits). A periodic callback polls the log and pushes only what changed.
Named models (``header``, ``progress``, ``gmap``, ``traces``, ``pulses``, ``events``) let a
test read the browser's copy of the document.
"""

from __future__ import annotations

import html
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import (
    AdaptiveTicker,
    ColumnDataSource,
    HoverTool,
    LinearColorMapper,
    Range1d,
)
from bokeh.models.annotations import ColorBar
from bokeh.models.widgets import DataTable, Div, TableColumn
from bokeh.palettes import Category10_10, Viridis256
from bokeh.plotting import figure

from xbarlab.watch.live import LiveLog

MICRO = 1e6  # S -> µS
_STATUS_COLOUR = {"waiting": "#777", "running": "#1f77b4", "success": "#2ca02c",
                  "programmed": "#2ca02c", "partial": "#ff7f0e",
                  "failed": "#d62728", "aborted": "#ff7f0e"}


def _fmt_time(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


class WatchPage:
    """The models of one page and how a `LiveLog` updates them."""

    def __init__(self, live: LiveLog) -> None:
        self.live = live
        self.seen_version = -1
        self.header = Div(name="header", text="", sizing_mode="stretch_width")
        self.progress = Div(name="progress", text="", sizing_mode="stretch_width")
        self.gmap = ColumnDataSource(name="gmap", data=self._empty_map())
        self.mapper = LinearColorMapper(palette=Viridis256, nan_color="#dddddd")
        self.map_fig = self._map_figure()
        self.traces = ColumnDataSource(name="traces", data={"xs": [], "ys": [], "cell": [],
                                                            "color": []})
        self.pulses = ColumnDataSource(name="pulses", data={"t": [], "v": [], "cell": [],
                                                            "color": []})
        self.reads = ColumnDataSource(name="reads", data={"t": [], "g": [], "cell": [],
                                                          "color": []})
        self.trace_fig, self.pulse_fig = self._trace_figures()
        self.events = ColumnDataSource(name="events", data={"time": [], "kind": [], "cell": [],
                                                            "message": []})
        self.table = DataTable(
            source=self.events, name="events_table", height=220, sizing_mode="stretch_width",
            columns=[TableColumn(field="time", title="time", width=70),
                     TableColumn(field="kind", title="event", width=90),
                     TableColumn(field="cell", title="cell", width=70),
                     TableColumn(field="message", title="what happened", width=600)])
        self.gmap.selected.on_change("indices", lambda attr, old, new: self._draw_traces())

    # -- construction ----------------------------------------------------------------------------
    @staticmethod
    def _empty_map() -> dict[str, list[Any]]:
        return {"row": [], "col": [], "g": [], "target": [], "error": [], "pulses": []}

    def _map_figure(self) -> Any:
        fig = figure(title="conductance: last read of each cell (click cells to trace them)",
                     tools="tap,reset,save", width=560, height=520, name="map",
                     x_range=Range1d(start=-0.5, end=0.5),
                     y_range=Range1d(start=0.5, end=-0.5),
                     x_axis_label="column", y_axis_label="row", toolbar_location="above")
        fig.rect(x="col", y="row", width=0.94, height=0.94, source=self.gmap,
                 fill_color={"field": "g", "transform": self.mapper}, line_color=None,
                 selection_line_color="#d62728", nonselection_fill_alpha=0.6)
        for axis in (fig.xaxis, fig.yaxis):
            axis.ticker = AdaptiveTicker(min_interval=1, num_minor_ticks=0)
        fig.grid.visible = False
        fig.add_tools(HoverTool(tooltips=[("cell", "(@row, @col)"), ("G", "@g{0.00} µS"),
                                          ("target", "@target{0.00} µS"),
                                          ("error", "@error{0.0} %"), ("pulses", "@pulses")]))
        fig.add_layout(ColorBar(color_mapper=self.mapper, title="G (µS)", width=12), "right")
        return fig

    def _trace_figures(self) -> tuple[Any, Any]:
        g = figure(title="selected cells: conductance at each read", width=560, height=250,
                   x_axis_label="operation on the cell (reads and pulses, in order)",
                   y_axis_label="G (µS)",
                   tools="pan,wheel_zoom,reset,save", name="trace_figure")
        g.multi_line(xs="xs", ys="ys", line_color="color", line_width=2, source=self.traces)
        g.scatter(x="t", y="g", color="color", size=4, source=self.reads)
        p = figure(title="selected cells: pulse voltages", width=560, height=200,
                   x_axis_label="operation on the cell (reads and pulses, in order)",
                   y_axis_label="pulse (V)",
                   x_range=g.x_range, tools="pan,wheel_zoom,reset,save", name="pulse_figure")
        p.scatter(x="t", y="v", color="color", size=4, source=self.pulses)
        for fig in (g, p):
            fig.xaxis.ticker = AdaptiveTicker(min_interval=1, num_minor_ticks=0)
        return g, p

    def layout(self) -> Any:
        return column(self.header, self.progress,
                      row(self.map_fig, column(self.trace_fig, self.pulse_fig)),
                      self.table, sizing_mode="stretch_width")

    # -- updates ---------------------------------------------------------------------------------
    def update(self) -> None:
        """Poll the log; push what changed."""
        self.live.poll()
        if self.live.version == self.seen_version and self.live.status != "waiting":
            return
        self.seen_version = self.live.version
        self._draw_header()
        if self.live.info is None:
            return
        self._draw_map()
        self._draw_traces()
        self._draw_events()

    def _draw_header(self) -> None:
        live = self.live
        colour = _STATUS_COLOUR.get(live.status, "#000")
        status = html.escape(live.status + (f" ({live.reason})" if live.reason else ""))
        parts = [f"<b>{html.escape(live.path.name)}</b>"]
        if live.info is not None:
            info = live.info
            backend = info.backend.get("backend", info.backend.get("name", "?"))
            parts += [f"run {html.escape(info.run_id[:8])}", html.escape(info.protocol),
                      f"{info.shape[0]} × {info.shape[1]} array",
                      f"backend {html.escape(str(backend))}"]
        parts.append(f"<span style='color:{colour}'><b>{status}</b></span>")
        if live.detail:
            parts.append(html.escape(live.detail))
        self.header.text = " · ".join(parts)
        if live.info is None:
            self.progress.text = "waiting for the run to start"
            return
        c = live.counts
        m, n = live.shape
        ops = c.operations
        text = [f"operations: {sum(ops.values())} (read {ops['read']}, pulse {ops['pulse']}, "
                f"MVM {ops['mvm']})",
                f"cells read: {live.cells_read} / {m * n}"]
        if live.progress is not None:
            text.append(f"cells programmed: {live.progress[0]} / {live.progress[1]} "
                        f"(pass {live.passes})")
        tol = live.in_tolerance
        if tol is not None and live.tolerance is not None:
            text.append(f"in tolerance (±{live.tolerance:.1%}): {tol} / {m * n}")
        text += [f"compliance hits: {c.compliance}", f"refusals: {c.refused}",
                 f"faults: {c.faults}", f"elapsed: {_fmt_time(live.last_time)}"]
        self.progress.text = " · ".join(text)

    def _draw_map(self) -> None:
        live = self.live
        m, n = live.shape
        if len(self.gmap.data["row"]) != m * n:
            rows, cols = np.divmod(np.arange(m * n), n)
            self.map_fig.x_range.update(start=-0.5, end=n - 0.5)
            self.map_fig.y_range.update(start=m - 0.5, end=-0.5)
            base = {"row": rows.tolist(), "col": cols.tolist()}
        else:
            base = {"row": self.gmap.data["row"], "col": self.gmap.data["col"]}
        g = (live.g * MICRO).ravel()
        target = (live.targets * MICRO).ravel() if live.targets is not None else np.full(
            m * n, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            error = (g - target) / target * 100
        self.gmap.data = {**base, "g": g, "target": target, "error": error,
                          "pulses": live.pulses.ravel().copy()}
        finite = g[np.isfinite(g)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            if hi <= lo:
                hi = lo + 1e-3
            self.mapper.update(low=lo, high=hi)

    def _selected_cells(self) -> list[tuple[int, int]]:
        n = self.live.shape[1]
        cells = [divmod(int(i), n) for i in self.gmap.selected.indices][:10]
        if not cells and self.live.last_cell is not None:
            cells = [self.live.last_cell]  # nothing selected: follow the latest cell
        return cells

    def _draw_traces(self) -> None:
        if self.live.info is None:
            return
        xs, ys, names, colours = [], [], [], []
        pulses: dict[str, list[Any]] = {"t": [], "v": [], "cell": [], "color": []}
        reads: dict[str, list[Any]] = {"t": [], "g": [], "cell": [], "color": []}
        for k, cell in enumerate(self._selected_cells()):
            tr = self.live.trace(cell)
            colour = Category10_10[k % 10]
            name = f"({cell[0]}, {cell[1]})"
            xs.append(tr["read_n"].tolist())
            ys.append((tr["read_g"] * MICRO).tolist())
            names.append(name)
            colours.append(colour)
            reads["t"] += xs[-1]
            reads["g"] += ys[-1]
            reads["cell"] += [name] * len(xs[-1])
            reads["color"] += [colour] * len(xs[-1])
            pulses["t"] += tr["pulse_n"].tolist()
            pulses["v"] += tr["pulse_v"].tolist()
            pulses["cell"] += [name] * len(tr["pulse_t"])
            pulses["color"] += [colour] * len(tr["pulse_t"])
        self.traces.data = {"xs": xs, "ys": ys, "cell": names, "color": colours}
        self.reads.data = reads
        self.pulses.data = pulses
        which = ", ".join(names) if self.gmap.selected.indices else (
            f"{names[0]} (latest cell; click cells to choose)" if names else "none yet")
        self.trace_fig.title.text = f"conductance at each read: {which}"

    def _draw_events(self) -> None:
        rows = list(reversed(self.live.annotations))  # newest first
        self.events.data = {"time": [_fmt_time(a.time) for a in rows],
                            "kind": [a.kind for a in rows], "cell": [a.cell for a in rows],
                            "message": [a.message for a in rows]}


def build_document(doc: Document, path: Path, poll_ms: int = 500) -> None:
    """Fill a new browser session's document; poll every `poll_ms` ms."""
    live = LiveLog(path)
    page = WatchPage(live)
    page.update()
    doc.add_root(page.layout())
    doc.title = f"xbarlab watch: {path.name}"
    doc.add_periodic_callback(page.update, poll_ms)
    doc.on_session_destroyed(partial(_close, live))


def _close(live: LiveLog, context: Any) -> None:
    live.close()

"""Tables for people and spreadsheets: units in the CSV header, ISO 8601 times."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def csv_ready(frame: pd.DataFrame, units: Mapping[str, str]) -> pd.DataFrame:
    """`frame` with each column named with its unit ("voltage (V)") and Unix times (s) turned
    into ISO 8601 UTC timestamps with microseconds ("time (UTC)"). Values stay in base SI
    units, so a spreadsheet or pandas reads them without scaling."""
    import pandas as pd

    out = frame.copy()
    if "time" in out.columns:
        out["time"] = pd.to_datetime(out["time"], unit="s", utc=True).dt.strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")
    names = {c: ("time (UTC)" if c == "time" else f"{c} ({units[c]})" if c in units else c)
             for c in out.columns}
    return out.rename(columns=names)

"""Byte-level links to instruments: VISA (pyvisa), serial (pyserial) and test transports.

A transport moves text lines, and reads IEEE 488.2 definite-length blocks
(``#<n><length><bytes>``, `query_block`) for binary replies; it knows nothing about any
instrument's language. Constructors do no I/O: `open()` connects, `close()` disconnects
(idempotent), `reopen()` drops the link and connects again (the safe-state path uses it once
when a link broke; bounded like `open()`); wire transports also have `clear()` (after a
timeout: drop any reply still on its way, see `Instrument.resync`). Every failure is raised
as a `TransportError` naming the address; a missing reply within the timeout is a
`TransportTimeout`; a reply that is not one complete, well-formed block is a `MalformedBlock`,
never a shorter payload.

- `VisaTransport`: any VISA resource (GPIB, USB, ``TCPIP::host::INSTR``,
  ``TCPIP::host::port::SOCKET``, ASRL). The default library ``"@py"`` is pyvisa-py, which needs
  no vendor VISA; ``"file.yaml@sim"`` is pyvisa-sim.
- `SerialTransport`: a serial port (or any pyserial URL, e.g. a pty path or ``loop://``).
- `TranscriptTransport`: plays back a scripted list of (sent, reply) pairs and fails on the
  first difference (pymeasure ``expected_protocol`` style).
- `CallbackTransport`: answers every line with a Python function (tests, quick fakes).

`read_block` reads one block off a byte stream (VISA, serial); `parse_block` checks one that
arrived whole (test transports).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from xbarlab.drivers.errors import SettingError


class TransportError(OSError):
    """A link that cannot be opened, or a write/read that failed. The message names the address."""


class TransportTimeout(TransportError, TimeoutError):
    """No (complete) reply arrived within the transport's timeout."""


class MalformedBlock(TransportError):
    """A reply to `query_block` that is not one complete IEEE 488.2 definite-length block: no
    ``#<n><length>`` header, fewer bytes than the header announces, or more (bytes after the
    block other than the termination)."""


class TranscriptMismatch(AssertionError):
    """A driver sent something other than the scripted transcript expected."""


Guard = Callable[[str], None]
"""Raises `SettingError` for a line that must not be sent (an SMU driver's limits check)."""


def check_guards(transport: object, line: str) -> None:
    """Let `line` through if the transport has no guards, or if one of them accepts it (the
    drivers sharing a link each accept their own lines); else raise the first refusal. Every
    transport calls it before a line goes out, so a line written straight to the transport of
    an SMU driver is held to that driver's limits too."""
    guards: list[Guard] = getattr(transport, "guards", [])
    refusal: SettingError | None = None
    for guard in guards:
        try:
            guard(line)
            return
        except SettingError as exc:
            refusal = refusal or exc
    if refusal is not None:
        raise refusal


def link_failure(exc: BaseException) -> bool:
    """Whether `exc` is a failure of the link (wrapped as a `TransportError`), as opposed to
    something raised through the I/O call, such as an abort from a signal handler, which must
    reach the caller unchanged."""
    return isinstance(exc, OSError | EOFError | ValueError) or \
        type(exc).__module__.split(".")[0] in ("pyvisa", "pyvisa_py", "serial")


def _block_header(head: bytes) -> int:
    """The number of length digits from the two bytes ``#<n>`` (n = 1..9)."""
    if len(head) == 2 and head[:1] == b"#" and head[1:2] in b"123456789":
        return int(head[1:2])
    raise MalformedBlock(f"not a definite-length block: starts {head!r}, expected '#<1-9>'")


def _block_length(digits: bytes, n: int) -> int:
    if len(digits) != n or not digits.isdigit():
        raise MalformedBlock(f"block header length field {digits!r} is not {n} digits")
    return int(digits)


def read_block(read_exact: Callable[[int], bytes], termination: bytes) -> bytes:
    """One block from a byte stream: ``#<n>``, `n` length digits, exactly that many payload
    bytes, then `termination` (which must follow: anything else means the block is longer than
    its header says). `read_exact(k)` returns `k` bytes or raises (a timeout); it is never
    asked for more than the block announces, so nothing after it is consumed."""
    n = _block_header(read_exact(2))
    length = _block_length(read_exact(n), n)
    payload = read_exact(length) if length else b""
    tail = read_exact(len(termination)) if termination else b""
    if tail != termination:
        raise MalformedBlock(f"the {length}-byte block is followed by {tail!r}, not the "
                             f"termination {termination!r} (longer than its header says)")
    return payload


def parse_block(raw: bytes, termination: bytes = b"\n") -> bytes:
    """The payload of `raw`, one complete block ``#<n><length><payload>`` with or without one
    trailing `termination`; a truncated block, a wrong length or extra bytes raise
    `MalformedBlock`."""
    n = _block_header(raw[:2])
    length = _block_length(raw[2:2 + n], n)
    start = 2 + n
    got = len(raw) - start
    if got < length:
        raise MalformedBlock(f"truncated block: the header announces {length} bytes, "
                             f"{got} arrived")
    rest = raw[start + length:]
    if rest not in (b"", termination):
        raise MalformedBlock(f"{len(rest)} bytes after the {length}-byte block ({rest[:16]!r}): "
                             "the block is longer than its header says")
    return raw[start:start + length]


@runtime_checkable
class Transport(Protocol):
    """A line-oriented link to one instrument."""

    address: str
    timeout: float  # s

    def open(self) -> None:
        """Connect. Raises `TransportError` (within `timeout`) when unreachable."""
        ...

    def write(self, line: str) -> None:
        """Send one line (the termination is added by the transport)."""
        ...

    def query(self, line: str) -> str:
        """Send one line and return the reply line, termination stripped."""
        ...

    def query_block(self, line: str) -> bytes:
        """Send one line and return the payload of the definite-length block answering it (the
        termination after it consumed). A reply that stops short is a `TransportTimeout`, one
        that is not a well-formed block a `MalformedBlock`; wire transports then close the
        link (the byte stream is out of step: a later reply could be misread; until it is
        opened again, "not open" errors name the bad block), and the safe state's `reopen()`
        starts clean."""
        ...

    def close(self) -> None:
        """Disconnect; idempotent."""
        ...

    def reopen(self) -> None:
        """Close (quietly) and open again; raises `TransportError` within `timeout`."""
        ...


REOPEN = "<reopen>"
"""How test transports record a `reopen()` among the lines sent (and script it)."""


class _WireLink:
    """What VISA and serial links share about blocks: a bad block reply closes the link (the
    byte stream is out of step), and until it is opened again its "not open" errors name that
    block, so a later step that meets the closed link does not hide the cause."""

    address: str
    _closed_by: str = ""

    def close(self) -> None:
        raise NotImplementedError

    def _not_open(self) -> TransportError:
        return TransportError(f"{self.address}: not open{self._closed_by}")

    def _bad_block(self, err: TransportError) -> TransportError:
        self.close()
        self._closed_by = f" (closed after a bad block: {err})"
        return type(err)(f"{err}; link closed")


class VisaTransport(_WireLink):
    """A VISA resource through pyvisa. `visa_library` ``"@py"`` (default) is pyvisa-py.

    pyvisa hands out one shared `ResourceManager` per VISA library, so a transport closes only
    its own resource, never the manager: closing it would close every other instrument's link.
    """

    def __init__(
        self,
        address: str,
        *,
        visa_library: str = "@py",
        timeout: float = 2.0,
        read_termination: str = "\n",
        write_termination: str = "\n",
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 s, got {timeout!r}")
        self.address = address
        self.guards: list[Guard] = []
        self.visa_library = visa_library
        self.timeout = float(timeout)
        self.read_termination = read_termination
        self.write_termination = write_termination
        self._rm: Any = None
        self._res: Any = None

    def open(self) -> None:
        """Open the resource. Some VISA opens (VXI-11 to a silent host) block far longer than
        the I/O timeout, so the open runs in a helper thread and is abandoned (and closed when
        it finally returns) after `timeout` + 0.25 s: an unreachable address never hangs."""
        if self._res is not None:
            return
        self._closed_by = ""
        import pyvisa

        ms = max(1, round(self.timeout * 1000))
        lock = threading.Lock()
        box: dict[str, Any] = {"abandoned": False}

        def target() -> None:
            rm: Any = None
            try:
                rm = pyvisa.ResourceManager(self.visa_library)
                res = rm.open_resource(
                    self.address,
                    open_timeout=ms,
                    timeout=ms,
                    read_termination=self.read_termination,
                    write_termination=self.write_termination,
                )
            except Exception as exc:  # pyvisa raises many types (VisaIOError, OSError, ...)
                box["error"] = exc
                return
            with lock:
                if box["abandoned"]:
                    with contextlib.suppress(Exception):
                        res.close()
                    return
                box["rm"], box["res"] = rm, res

        worker = threading.Thread(target=target, name=f"visa-open {self.address}", daemon=True)
        worker.start()
        worker.join(self.timeout + 0.25)
        with lock:
            if "res" not in box and "error" not in box:
                box["abandoned"] = True
                raise TransportTimeout(
                    f"{self.address}: cannot open ({self.visa_library}): no answer within "
                    f"{self.timeout:g} s"
                )
        if "error" in box:
            exc = box["error"]
            raise TransportError(
                f"{self.address}: cannot open ({self.visa_library}): {exc}"
            ) from exc
        self._rm, self._res = box["rm"], box["res"]

    def _resource(self) -> Any:
        if self._res is None:
            raise self._not_open()
        return self._res

    def _wrap(self, exc: Exception, what: str) -> TransportError:
        import pyvisa

        if isinstance(exc, pyvisa.errors.VisaIOError) and (
            exc.error_code == pyvisa.constants.StatusCode.error_timeout
        ):
            return TransportTimeout(f"{self.address}: {what}: no reply within {self.timeout:g} s")
        return TransportError(f"{self.address}: {what}: {exc}")

    def write(self, line: str) -> None:
        check_guards(self, line)
        res = self._resource()
        try:
            res.write(line)
        except Exception as exc:
            if not link_failure(exc):
                raise
            raise self._wrap(exc, f"write {line!r}") from exc

    def query(self, line: str) -> str:
        check_guards(self, line)
        res = self._resource()
        try:
            return str(res.query(line)).strip()
        except Exception as exc:
            if not link_failure(exc):
                raise
            raise self._wrap(exc, f"query {line!r}") from exc

    def query_block(self, line: str) -> bytes:
        res = self._resource()
        self.write(line)

        def read_exact(k: int) -> bytes:
            return bytes(res.read_bytes(k, break_on_termchar=False))

        try:
            return read_block(read_exact, self.read_termination.encode("ascii"))
        except Exception as exc:
            if not link_failure(exc):
                raise
            err = (MalformedBlock(f"{self.address}: query {line!r}: {exc}")
                   if isinstance(exc, MalformedBlock)
                   else self._wrap(exc, f"query {line!r} (binary block)"))
            raise self._bad_block(err) from exc

    def clear(self) -> None:
        """After a timeout: a device clear (viClear: the instrument drops its pending output)
        on GPIB/USB/VXI-11 resources, then a fresh connection (on raw sockets, which have no
        device clear, bytes still in flight are gone with the old connection; pyvisa-py's
        socket "clear" would also spin for ever on a connection the peer closed)."""
        if self._res is not None and not self.address.upper().endswith("::SOCKET"):
            with contextlib.suppress(Exception):
                self._res.clear()
        self.reopen()

    def _close_quietly(self) -> None:
        if self._res is not None:
            with contextlib.suppress(Exception):
                self._res.close()
        self._res = None
        self._rm = None  # shared by every resource of this VISA library: left open

    def close(self) -> None:
        self._close_quietly()

    def reopen(self) -> None:
        """A fresh connection (stale replies of the old one are gone with it)."""
        self._close_quietly()
        self.open()


class SerialTransport(_WireLink):
    """A serial port through pyserial (``serial_for_url``: device paths, ptys, ``loop://``)."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        timeout: float = 2.0,
        read_termination: str = "\n",
        write_termination: str = "\n",
        encoding: str = "ascii",
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 s, got {timeout!r}")
        self.address = port
        self.guards: list[Guard] = []
        self.baudrate = int(baudrate)
        self.timeout = float(timeout)
        self.read_termination = read_termination
        self.write_termination = write_termination
        self.encoding = encoding
        self._port: Any = None

    def open(self) -> None:
        if self._port is not None:
            return
        self._closed_by = ""
        import serial

        try:
            self._port = serial.serial_for_url(
                self.address, baudrate=self.baudrate, timeout=self.timeout,
                write_timeout=self.timeout,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"{self.address}: cannot open serial port: {exc}") from exc

    def _p(self) -> Any:
        if self._port is None:
            raise self._not_open()
        return self._port

    def write(self, line: str) -> None:
        check_guards(self, line)
        port = self._p()
        try:
            port.write((line + self.write_termination).encode(self.encoding))
            port.flush()
        except Exception as exc:
            if not link_failure(exc):
                raise
            raise TransportError(f"{self.address}: write {line!r}: {exc}") from exc

    def query(self, line: str) -> str:
        self.write(line)
        term = self.read_termination.encode(self.encoding)
        try:
            raw = self._p().read_until(term)
        except Exception as exc:
            if not link_failure(exc):
                raise
            raise TransportError(f"{self.address}: read after {line!r}: {exc}") from exc
        if not raw.endswith(term):
            raise TransportTimeout(
                f"{self.address}: query {line!r}: no complete reply within {self.timeout:g} s"
                + (f" (got {raw!r})" if raw else "")
            )
        try:
            return raw[: -len(term)].decode(self.encoding).strip()
        except UnicodeDecodeError as exc:
            raise TransportError(f"{self.address}: query {line!r}: undecodable {raw!r}") from exc

    def query_block(self, line: str) -> bytes:
        self.write(line)
        port = self._p()

        def read_exact(k: int) -> bytes:
            try:
                data = bytes(port.read(k))
            except Exception as exc:
                if not link_failure(exc):
                    raise
                raise TransportError(f"read: {exc}") from exc
            if len(data) < k:
                raise TransportTimeout(f"block stopped short ({len(data)} of {k} bytes "
                                       f"within {self.timeout:g} s)")
            return data

        try:
            return read_block(read_exact, self.read_termination.encode(self.encoding))
        except TransportError as exc:
            raise self._bad_block(type(exc)(f"{self.address}: query {line!r}: {exc}")) from exc

    def clear(self) -> None:
        """After a timeout: drop whatever arrived but was not read (a late reply)."""
        port = self._p()
        try:
            port.reset_input_buffer()
        except Exception as exc:
            raise TransportError(f"{self.address}: clearing the input failed: {exc}") from exc

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.close()
        self._port = None

    def reopen(self) -> None:
        self.close()
        self.open()


Exchange = tuple[str, str | bytes | None]
"""(line the driver must send, reply it gets) -- reply ``None`` for a plain write, bytes (the
block as it comes off the wire, termination optional) for `query_block`."""


class TranscriptTransport:
    """Plays a scripted transcript back; any deviation raises `TranscriptMismatch`.

    A reply given as an exception instance is raised instead of answering (e.g. a
    `TransportTimeout`). `reopen()` is the scripted step ``(REOPEN, None)`` (or
    ``(REOPEN, <exception>)`` for a reopen that fails). `sent` records every line in order;
    `done` tells whether the whole script was consumed.
    """

    def __init__(self, script: Sequence[Exchange | tuple[str, BaseException]],
                 address: str = "transcript") -> None:
        self.script: list[Any] = list(script)
        self.address = address
        self.timeout = 1.0
        self.sent: list[str] = []
        self.guards: list[Guard] = []
        self.is_open = False
        self._i = 0

    @property
    def done(self) -> bool:
        return self._i == len(self.script)

    def open(self) -> None:
        self.is_open = True

    def _next(self, line: str, query: bool) -> str | bytes | None:
        if line != REOPEN:
            check_guards(self, line)
        self.sent.append(line)
        if self._i >= len(self.script):
            raise TranscriptMismatch(f"unexpected {'query' if query else 'write'} {line!r}: "
                                     "transcript is exhausted")
        expected, reply = self.script[self._i]
        if line != expected:
            raise TranscriptMismatch(f"step {self._i}: expected {expected!r}, got {line!r}")
        self._i += 1
        if isinstance(reply, BaseException):
            raise reply
        if query and reply is None:
            raise TranscriptMismatch(f"step {self._i - 1}: {line!r} was queried but the "
                                     "transcript has no reply")
        if not query and reply is not None:
            raise TranscriptMismatch(f"step {self._i - 1}: {line!r} was written, but the "
                                     f"transcript expects a query answered {reply!r}")
        return reply

    def write(self, line: str) -> None:
        self._next(line, query=False)

    def query(self, line: str) -> str:
        reply = self._next(line, query=True)
        if not isinstance(reply, str):
            raise TranscriptMismatch(f"step {self._i - 1}: {line!r} was queried as text, but "
                                     f"the transcript answers with a block {reply!r}")
        return reply

    def query_block(self, line: str) -> bytes:
        reply = self._next(line, query=True)
        return _block_reply(self.address, line, reply)

    def close(self) -> None:
        self.is_open = False

    def reopen(self) -> None:
        self.is_open = False
        self._next(REOPEN, query=False)
        self.is_open = True


def _block_reply(address: str, line: str, reply: str | bytes | None) -> bytes:
    """A test transport's reply to `query_block`: text is taken as the ASCII bytes it would
    be on the wire (an instrument that ignored the binary format answers text)."""
    raw = reply.encode("ascii", errors="replace") if isinstance(reply, str) else reply
    if raw is None:
        raise TransportTimeout(f"{address}: query {line!r}: no reply")
    try:
        return parse_block(raw)
    except MalformedBlock as exc:
        raise MalformedBlock(f"{address}: query {line!r}: {exc}") from None


class CallbackTransport:
    """Answers with `handler(line, is_query)`; the reply of a write is ignored. Records `sent`
    (a `reopen()` as `REOPEN`; it always succeeds and is not passed to the handler)."""

    def __init__(self, handler: Callable[[str, bool], str | bytes | None],
                 address: str = "callback") -> None:
        self.handler = handler
        self.address = address
        self.timeout = 1.0
        self.sent: list[str] = []
        self.guards: list[Guard] = []
        self.is_open = False

    def open(self) -> None:
        self.is_open = True

    def write(self, line: str) -> None:
        check_guards(self, line)
        self.sent.append(line)
        self.handler(line, False)

    def query(self, line: str) -> str:
        check_guards(self, line)
        self.sent.append(line)
        reply = self.handler(line, True)
        if reply is None:
            raise TransportTimeout(f"{self.address}: query {line!r}: no reply")
        if isinstance(reply, bytes):
            raise TransportError(f"{self.address}: query {line!r}: a binary reply {reply!r} "
                                 "to a text query")
        return reply

    def query_block(self, line: str) -> bytes:
        check_guards(self, line)
        self.sent.append(line)
        return _block_reply(self.address, line, self.handler(line, True))

    def close(self) -> None:
        self.is_open = False

    def reopen(self) -> None:
        self.sent.append(REOPEN)
        self.is_open = True

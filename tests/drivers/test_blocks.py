"""IEEE 488.2 definite-length blocks (``#<n><length><bytes>``, IEEE 488.2 8.7.9): the parser of
whole replies (`parse_block`), the stream reader (`read_block`) and `query_block` on every
transport. Blocks are built here by hand from the standard's layout, never by the code under
test; a block cut short or of another length is always an error, never a shorter payload."""

from __future__ import annotations

import io
import os
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xbarlab.drivers.transports import (
    CallbackTransport,
    MalformedBlock,
    SerialTransport,
    TranscriptMismatch,
    TranscriptTransport,
    TransportError,
    TransportTimeout,
    parse_block,
    read_block,
)


def block(payload: bytes) -> bytes:
    """'#', the number of length digits, the length in decimal, the bytes."""
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


ONE = struct.pack(">d", 1.2345678901234567e-05)


# -- parse_block ---------------------------------------------------------------------------------
@pytest.mark.parametrize("tail", [b"", b"\n"])
def test_a_good_block_with_or_without_the_newline(tail: bytes) -> None:
    assert parse_block(b"#18" + ONE + tail) == ONE
    assert parse_block(b"#216" + ONE + ONE + tail) == ONE + ONE
    assert parse_block(b"#10" + tail) == b""  # an empty block is well formed


def test_a_newline_inside_the_payload_is_data() -> None:
    payload = b"\n\n\x00\n\xff\r\n\n"
    assert parse_block(block(payload) + b"\n") == payload


def test_other_terminations() -> None:
    assert parse_block(b"#18" + ONE + b"\r\n", termination=b"\r\n") == ONE
    with pytest.raises(MalformedBlock, match="after the 8-byte block"):
        parse_block(b"#18" + ONE + b"\r\n")  # '\r' is not part of a '\n' termination


@pytest.mark.parametrize("cut", [3, 4, 10])
def test_a_truncated_block_is_an_error(cut: int) -> None:
    with pytest.raises(MalformedBlock, match=rf"truncated block.*8 bytes, {cut - 3} arrived"):
        parse_block((b"#18" + ONE)[:cut])


@pytest.mark.parametrize(("raw", "why"), [
    (b"#216" + ONE + b"\n", "truncated"),  # announces 16, 8 (and the newline) came
    (b"#14" + ONE, "after the 4-byte block"),  # announces 4, 8 came
    (b"#18" + ONE + b"\x00\n", "after the 8-byte block"),  # one byte too many
    (b"#18" + ONE + b"\n\n", "after the 8-byte block"),
])
def test_a_block_of_another_length_than_announced_is_an_error(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedBlock, match=why):
        parse_block(raw)


@pytest.mark.parametrize("raw", [
    b"", b"#", b"+1.000000E-06", b"1#18" + ONE, b"#0" + ONE + b"\n",  # indefinite length
    b"#x8" + ONE, b"#2 8" + ONE, b"#28" + ONE, b"#9" + b"1" * 8,  # length digits missing
])
def test_a_bad_header_is_an_error(raw: bytes) -> None:
    with pytest.raises(MalformedBlock):
        parse_block(raw)


@given(payload=st.binary(max_size=300), newline=st.booleans())
def test_round_trip_and_every_prefix_is_refused(payload: bytes, newline: bool) -> None:
    raw = block(payload)
    assert parse_block(raw + (b"\n" if newline else b"")) == payload
    for k in range(len(raw)):  # cut anywhere: never a shorter payload
        with pytest.raises(MalformedBlock):
            parse_block(raw[:k])


# -- read_block (a byte stream) ------------------------------------------------------------------
def _reader(data: bytes) -> tuple[io.BytesIO, Callable[[int], bytes]]:
    stream = io.BytesIO(data)

    def read_exact(k: int) -> bytes:
        got = stream.read(k)
        if len(got) < k:
            raise TransportTimeout(f"{len(got)} of {k} bytes")
        return got

    return stream, read_exact


def test_read_block_takes_exactly_the_block_and_its_termination() -> None:
    stream, read_exact = _reader(block(b"a\nb") + b"\n" + b"0\n")
    assert read_block(read_exact, b"\n") == b"a\nb"
    assert stream.read() == b"0\n"  # the next reply is untouched


@pytest.mark.parametrize("data", [b"#18" + ONE[:5], b"#216" + ONE + b"\n", b"#18" + ONE])
def test_read_block_of_a_stream_that_stops_short_times_out(data: bytes) -> None:
    _, read_exact = _reader(data)
    with pytest.raises(TransportTimeout):
        read_block(read_exact, b"\n")


def test_read_block_longer_than_announced_is_malformed() -> None:
    _, read_exact = _reader(b"#14" + ONE + b"\n")
    with pytest.raises(MalformedBlock, match=r"4-byte block is followed by .*not the term"):
        read_block(read_exact, b"\n")


# -- test transports -----------------------------------------------------------------------------
def test_transcript_block_replies() -> None:
    t = TranscriptTransport([("Q?", b"#18" + ONE + b"\n"), ("Q?", b"#18" + ONE[:4]),
                             ("Q?", "+1.234568E-05"), ("Q?", b"#10")])
    assert t.query_block("Q?") == ONE
    with pytest.raises(MalformedBlock, match=r"transcript: query 'Q\?': truncated"):
        t.query_block("Q?")
    with pytest.raises(MalformedBlock, match="not a definite-length block"):
        t.query_block("Q?")  # text where a block is due (the format was not applied)
    with pytest.raises(TranscriptMismatch, match="queried as text"):
        t.query("Q?")  # a block where text is due


def test_callback_block_replies() -> None:
    replies = iter([b"#18" + ONE, None, b"#18" + ONE])
    t = CallbackTransport(lambda line, q: next(replies))
    assert t.query_block("Q?") == ONE
    with pytest.raises(TransportTimeout):
        t.query_block("Q?")
    with pytest.raises(TransportError, match="binary reply"):
        t.query("Q?")


# -- serial (a pseudo-terminal) ------------------------------------------------------------------
@pytest.fixture
def pty_peer() -> Iterator[tuple[str, int]]:
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield os.ttyname(slave), master
    finally:
        os.close(master)
        os.close(slave)


def _answer(master: int, reply: bytes) -> threading.Thread:
    """Read one line off the pty, then write `reply` back."""

    def run() -> None:
        buf = b""
        while not buf.endswith(b"\n"):
            buf += os.read(master, 64)
        os.write(master, reply)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def test_serial_block_then_text_stays_in_step(pty_peer: tuple[str, int]) -> None:
    path, master = pty_peer
    t = SerialTransport(path, timeout=0.5)
    t.open()
    try:
        payload = b"\n" + ONE + b"\n"
        th = _answer(master, block(payload) + b"\n")
        assert t.query_block(":MEAS?") == payload
        th.join()
        th = _answer(master, b"0\n")
        assert t.query(":OUTP?") == "0"
        th.join()
    finally:
        t.close()


@pytest.mark.parametrize(("reply", "error"), [
    (b"#18" + ONE[:5], TransportTimeout),  # stops short
    (b"#14" + ONE + b"\n", MalformedBlock),  # longer than announced
    (b"+1.234568E-05\n", MalformedBlock),  # text
])
def test_serial_bad_block_is_an_error_and_closes_the_port(
        pty_peer: tuple[str, int], reply: bytes, error: type[Exception]) -> None:
    path, master = pty_peer
    t = SerialTransport(path, timeout=0.3)
    t.open()
    th = _answer(master, reply)
    with pytest.raises(error, match=rf"{path}: query ':MEAS\?'.*link closed"):
        t.query_block(":MEAS?")
    th.join()
    with pytest.raises(TransportError, match=r"not open \(closed after a bad block: .*MEAS"):
        t.query(":OUTP?")  # out of step: nothing more is read from that link
    t.reopen()
    t.close()

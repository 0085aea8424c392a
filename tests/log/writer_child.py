"""Child process of the live and SIGKILL tests: writes the deterministic stream to a log.

Usage: python writer_child.py PATH N_EVENTS BLOCK_ROWS SLEEP_EVERY SLEEP_S [mixed FLUSH_EVERY]
Prints the number of flushed measurement rows each time it grows, then "done". With "mixed"
it writes the mixed stream (`mixed_event`) and also flushes every FLUSH_EVERY events, as a
timed flush would, so blocks end mid-chunk.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.log.docs import STREAM_SHAPE, mixed_event, run_start, run_stop, stream_event
from xbarlab.log.writer import HDF5Writer


def main() -> None:
    path, n, block, every, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(
        sys.argv[4]), float(sys.argv[5])
    mixed = len(sys.argv) > 6 and sys.argv[6] == "mixed"
    flush_every = int(sys.argv[7]) if mixed else 0
    make = mixed_event if mixed else stream_event
    flushed = 0
    with HDF5Writer(path, block_rows=block, flush_interval=None) as writer:
        writer(run_start(STREAM_SHAPE))
        print("started", flush=True)
        for seq in range(1, n + 1):
            writer(make(seq))
            if flush_every and seq % flush_every == 0:
                writer.flush()
            rows = writer.flushed_rows["measurements"]
            if rows != flushed:
                flushed = rows
                print(rows, flush=True)
            if every and seq % every == 0:
                time.sleep(pause)
        writer(run_stop(n))
    print("done", flush=True)


if __name__ == "__main__":
    main()

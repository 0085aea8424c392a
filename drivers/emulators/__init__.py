"""Emulated bench instruments: each speaks its instrument's own command language over a real
link (loopback TCP for VISA, a pseudo-terminal for the serial board) and computes replies from
a `SimCrossbar` wired by the bench config's pin map.

- `server`: `TcpServer` / `TcpHub` / `PtyServer` (line transport, fault injection, clean stop)
- `scpi`, `tsp`, `tsp_instrument`: SCPI parser + error queue, the TSP (Lua) statement subset
- `smu_2450`, `smu_b2900`, `smu_2600`, `matrix_707b`, `board`: the instruments
- `state`: an SMU channel's source state and its `Load`; `wiring`: `MatrixWiring`, the load
- `faults`: `FaultPlan` (latency, no reply, garbage, truncation, dropped link, error, trip)
- `bench`: `EmulatedBench`, every instrument of a bench config on one simulated crossbar
"""

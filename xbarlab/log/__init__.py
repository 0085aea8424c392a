"""The HDF5 measurement log, the record of truth of every run.

- `xbarlab.log.writer.HDF5Writer`: the run-engine subscriber that writes a log (SWMR, block
  appends, never overwrites silently).
- `xbarlab.log.reader.LogReader` / `follow`: numpy arrays and pandas DataFrames of a finished
  or live log.
- `xbarlab.log.recovery`: probe a suspect file in a child process; clear the "open for write"
  flag a killed writer left (``h5clear -s``).
- `xbarlab.log.schema`: the file layout, its version and units.

Only this package imports h5py.
"""

"""`xbarlab watch`: a live web view of a session, from its HDF5 log (Bokeh server)."""

"""Time series of the twin: the zarr/xarray store, ingest, cleaning, virtual sensors, privacy."""

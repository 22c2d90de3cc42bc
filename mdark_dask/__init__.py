"""mdark-dask."""

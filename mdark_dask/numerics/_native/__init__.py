"""C sources of the compiled kernels; ``setup.py`` builds each ``<name>.c`` into a shared
library here, which :mod:`mdark_dask.numerics.native` loads with ctypes."""

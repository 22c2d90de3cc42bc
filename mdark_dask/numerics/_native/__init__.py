"""C sources of the compiled kernels. ``setup.py`` builds each ``<name>.c`` into the plain
shared library ``<name>.so`` (``<name>.dll`` on Windows) here, which
:mod:`mdark_dask.numerics.native` loads with ctypes; ``native.h`` declares every exported
function."""

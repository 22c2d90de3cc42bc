"""mdark-dask: soxspipe's ``soxs_mdark`` master-dark recipe on Dask.

The main path: :mod:`~mdark_dask.cli` parses arguments for :mod:`~mdark_dask.app`, which
:mod:`~mdark_dask.api` calls too; a set is planned (:mod:`~mdark_dask.plan`), made a lazy
graph (:mod:`~mdark_dask.recipe`) of :mod:`~mdark_dask.numerics` and
:mod:`~mdark_dask.io` steps, computed (:mod:`~mdark_dask.scheduler`) on a cluster
(:mod:`~mdark_dask.cluster`) and reported (:mod:`~mdark_dask.report`).
"""

"""The house's rules, read from every module's syntax tree: only ``io/`` touches FITS,
only ``report/canvas.py`` touches pixels, only ``scheduler.py`` computes, only
``cluster.py`` makes clients and clusters, and the sub-packages depend on each other in
one direction."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mdark_dask"


#: Method and function names that run a dask graph.
COMPUTING = {"compute", "persist", "gather"}

#: Where clients and clusters come from.
CLUSTER_LIBRARIES = ("distributed", "dask_jobqueue", "dask_kubernetes")


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def imported(tree: ast.Module) -> Iterator[tuple[str, str]]:
    """Every ``(module, name)`` a tree imports; ``name`` is empty for ``import module``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ""
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                yield node.module, alias.name


def test_the_rules_see_every_module() -> None:
    names = {rel for rel, _ in modules()}
    assert {"io/fits.py", "scheduler.py", "cluster.py", "recipe.py", "app.py"} <= names


def test_only_io_imports_astropy_fits() -> None:
    offenders = sorted(
        rel
        for rel, tree in modules()
        if not rel.startswith("io/")
        for module, name in imported(tree)
        if module.startswith("astropy.io.fits") or (module == "astropy.io" and name == "fits")
    )
    assert offenders == []


def test_only_the_canvas_touches_pixels_and_nothing_imports_matplotlib() -> None:
    """Every picture (QC plots, history, thumbnails) is a value painted in one place."""
    offenders = sorted(
        f"{rel}: {module}"
        for rel, tree in modules()
        for module, _ in imported(tree)
        if module.split(".")[0] == "matplotlib"
        or (module.split(".")[0] == "PIL" and rel != "report/canvas.py")
    )
    assert offenders == []


def test_only_the_scheduler_computes() -> None:
    offenders = sorted(
        f"{rel}:{node.lineno}"
        for rel, tree in modules()
        if rel != "scheduler.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) in COMPUTING
    )
    assert offenders == []


def test_only_the_cluster_module_makes_clients_and_clusters() -> None:
    offenders = sorted(
        f"{rel}: {module}.{name}" if name else f"{rel}: {module}"
        for rel, tree in modules()
        if rel != "cluster.py"
        for module, name in imported(tree)
        if module.split(".")[0] in CLUSTER_LIBRARIES
        and (name.endswith(("Client", "Cluster")) or module.split(".")[0] != "distributed")
    )
    assert offenders == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        # arrays in, arrays out: no files, settings, plans, graphs or reports
        ("numerics/", ("mdark_dask.io", "mdark_dask.plan", "mdark_dask.settings", "dask")),
        # pure and printable: nothing computes or draws here
        ("plan/", ("mdark_dask.recipe", "mdark_dask.scheduler", "mdark_dask.report", "dask")),
        ("report/", ("mdark_dask.recipe", "mdark_dask.scheduler", "mdark_dask.app")),
        # files and formats: below the plans that use them
        (
            "io/",
            ("mdark_dask.plan", "mdark_dask.recipe", "mdark_dask.scheduler", "mdark_dask.report"),
        ),
    ],
)
def test_sub_packages_depend_in_one_direction(package: str, forbidden: tuple[str, ...]) -> None:
    offenders = sorted(
        f"{rel}: {module}"
        for rel, tree in modules()
        if rel.startswith(package)
        for module, _ in imported(tree)
        if any(module == f or module.startswith(f + ".") for f in forbidden)
    )
    assert offenders == []

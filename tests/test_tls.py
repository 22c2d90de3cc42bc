"""A night on an encrypted remote cluster: a ``dask scheduler`` and a ``dask worker`` started
with ``tls://`` and certificates of a self-signed test CA (made here with openssl), reached
through an address definition whose ``tls:`` names the client's PEM files.

A wrong certificate, a CA that does not sign the scheduler's, a missing file and a
``tcp://`` address for a TLS scheduler are each one line and a non-zero exit, before any
product is written."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_cluster import (
    HOST,
    DaskProcesses,
    Night,
    NightProcess,
    assert_same_products,
    make_night,
    read_report,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(name: str, folder: Path) -> None:
    """``NAME-ca.pem`` and ``NAME-ca.key``: a self-signed CA."""
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        f"{name}-ca.key",
        "-out",
        f"{name}-ca.pem",
        "-subj",
        f"/CN={name} test CA",
        cwd=folder,
    )


def make_leaf(name: str, ca: str, folder: Path) -> None:
    """``NAME.pem`` and ``NAME.key``: a certificate for 127.0.0.1 signed by CA ``ca``."""
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={HOST}",
        cwd=folder,
    )
    (folder / f"{name}.ext").write_text(f"subjectAltName=IP:{HOST}\n", encoding="utf-8")
    openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}-ca.pem",
        "-CAkey",
        f"{ca}-ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        f"{name}.pem",
        "-extfile",
        f"{name}.ext",
        cwd=folder,
    )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site's CA (``site``) with one certificate (``node``) for the scheduler, the
    workers and the client, and a stranger CA (``other``) with its own (``stranger``)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make test certificates")
    folder = tmp_path_factory.mktemp("tls")
    make_ca("site", folder)
    make_ca("other", folder)
    make_leaf("node", "site", folder)
    make_leaf("stranger", "other", folder)
    return folder


class TlsDaskProcesses(DaskProcesses):
    """:class:`DaskProcesses` speaking TLS: every process shows ``node.pem`` signed by the
    site CA and accepts only peers the site CA signed."""

    def __init__(self, logs: Path, certificates: Path) -> None:
        super().__init__(logs)
        self.address = f"tls://{HOST}:{self.port}"
        self.certificates = certificates
        self.EXTRA = (
            "--protocol",
            "tls",
            "--tls-ca-file",
            str(certificates / "site-ca.pem"),
            "--tls-cert",
            str(certificates / "node.pem"),
            "--tls-key",
            str(certificates / "node.key"),
        )

    def security(self) -> Any:
        from distributed.security import Security

        return Security(
            tls_ca_file=str(self.certificates / "site-ca.pem"),
            tls_client_cert=str(self.certificates / "node.pem"),
            tls_client_key=str(self.certificates / "node.key"),
            require_encryption=True,
        )


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Night:
    return make_night(tmp_path_factory, "tls-night")


@pytest.fixture(scope="module")
def tls_cluster(
    tmp_path_factory: pytest.TempPathFactory, certificates: Path
) -> Iterator[TlsDaskProcesses]:
    cluster = TlsDaskProcesses(tmp_path_factory.mktemp("tls-logs"), certificates)
    try:
        cluster.start(n_workers=1)
        yield cluster
    finally:
        cluster.stop()


def definition(folder: Path, address: str, **tls: Path) -> Path:
    """An address definition as a site would write it (``tls:`` only when given)."""
    data: dict[str, object] = {"type": "address", "address": address}
    if tls:
        data["tls"] = {key: str(path) for key, path in tls.items()}
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def run_night(
    raw: Path, workspace: Path, cluster: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mdark_dask.cli",
            "night",
            str(raw),
            "-o",
            str(workspace),
            "--cluster",
            str(cluster),
            "--no-plots",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return done, time.monotonic() - started


@pytest.mark.slow
def test_a_night_on_a_tls_scheduler_matches_the_in_process_one(
    tls_cluster: TlsDaskProcesses, certificates: Path, night: Night, tmp_path: Path
) -> None:
    cluster = definition(
        tmp_path,
        tls_cluster.address,
        ca_file=certificates / "site-ca.pem",
        cert=certificates / "node.pem",
        key=certificates / "node.key",
    )
    process = NightProcess(night.raw, tmp_path / "ws", str(cluster))
    code = process.finish()
    assert code == 0, process.output()
    reducing = f"ON SCHEDULER AT {tls_cluster.address.upper()}"
    assert any(reducing in line for line in process.lines), process.output()
    sets = read_report(night.reference)["sets"]
    assert_same_products(tmp_path / "ws", night.reference, len(sets))


@pytest.mark.parametrize(
    ("cert", "ca", "scheme", "says"),
    [
        # our certificate is signed by a CA the scheduler does not trust
        ("stranger", "site", "tls", "TLS handshake failed"),
        # we do not trust the CA that signed the scheduler's certificate
        ("node", "other", "tls", "TLS handshake failed"),
        # a plain address for a TLS scheduler
        ("node", "site", "tcp", "tls://"),
    ],
)
def test_a_wrong_certificate_is_one_line_before_any_work(
    tls_cluster: TlsDaskProcesses,
    certificates: Path,
    night: Night,
    tmp_path: Path,
    cert: str,
    ca: str,
    scheme: str,
    says: str,
) -> None:
    address = tls_cluster.address.replace("tls://", f"{scheme}://")
    files = {
        "ca_file": certificates / f"{ca}-ca.pem",
        "cert": certificates / f"{cert}.pem",
        "key": certificates / f"{cert}.key",
    }
    cluster = (
        definition(tmp_path, address, **files) if scheme == "tls" else definition(tmp_path, address)
    )
    done, seconds = run_night(night.raw, tmp_path / "ws", cluster)
    assert done.returncode != 0
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("ERROR: "), done.stderr
    assert says in errors[0] and "Traceback" not in done.stderr
    assert seconds < 30
    assert not list((tmp_path / "ws").glob("products/**/*.fits"))


def test_a_missing_certificate_file_is_one_line(
    certificates: Path, night: Night, tmp_path: Path
) -> None:
    cluster = definition(
        tmp_path,
        f"tls://{HOST}:1",
        ca_file=certificates / "site-ca.pem",
        cert=certificates / "absent.pem",
        key=certificates / "node.key",
    )
    done, _ = run_night(night.raw, tmp_path / "ws", cluster)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"ERROR: cluster definition {cluster}: tls.cert {certificates / 'absent.pem'}: no such file"
    ]

#!/usr/bin/env bash
# Build soxspipe 0.17.4, the reference oracle, in a virtual environment of its own.
#
# soxspipe pins old packages (numpy 2.1.0, astropy 6.1.2, ccdproc 2.4.2, bottleneck 1.4.0),
# so it cannot share mdark-dask's environment; the parity tests drive it through its command
# line (tests/oracle.py). `six` must be named: fundamentals 2.7.6 imports it
# without declaring it, and without it even `soxspipe --version` fails. A standalone
# `soxspipe mdark <sof>` works on Python 3.11 (only the data organiser needs 3.12).
#
# Usage:   scripts/build_oracle.sh          (the venv path is printed on the last line of stdout)
# Env:     MDARK_ORACLE_VENV   where to build (default ~/.cache/mdark-dask/oracle-venv)
#          MDARK_ORACLE_PYTHON the interpreter to build with (default python3.11)
# The data organiser's tests (`soxspipe prep`, `soxspipe reduce all`) need a second venv on
# Python 3.12 or newer; tests/oracle.py builds it with this script as
#   MDARK_ORACLE_PYTHON=python3.12 MDARK_ORACLE_VENV=~/.cache/mdark-dask/oracle-venv-312 \
#       scripts/build_oracle.sh
# Idempotent: a venv whose `soxspipe --version` already prints v0.17.4 is left alone.
set -euo pipefail

VERSION="0.17.4"
DIR="${MDARK_ORACLE_VENV:-$HOME/.cache/mdark-dask/oracle-venv}"
PYTHON="${MDARK_ORACLE_PYTHON:-python3.11}"

installed_version() {
    # soxspipe prints "v0.17.4"; anything else (missing, broken, other version) means rebuild.
    if [ -x "$DIR/bin/soxspipe" ]; then
        "$DIR/bin/soxspipe" --version 2>/dev/null | tr -d '[:space:]' || true
    fi
}

if [ "$(installed_version)" = "v$VERSION" ]; then
    echo "soxspipe v$VERSION already installed" >&2
    echo "$DIR"
    exit 0
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "build_oracle.sh: $PYTHON not found (set MDARK_ORACLE_PYTHON)" >&2
    exit 1
fi

echo "building soxspipe $VERSION in $DIR (takes a few minutes)" >&2
mkdir -p "$(dirname "$DIR")"
"$PYTHON" -m venv "$DIR"
"$DIR/bin/pip" install --quiet --disable-pip-version-check "soxspipe==$VERSION" six >&2

got="$(installed_version)"
if [ "$got" != "v$VERSION" ]; then
    echo "build_oracle.sh: soxspipe --version printed '$got', expected v$VERSION" >&2
    exit 1
fi
echo "$DIR"

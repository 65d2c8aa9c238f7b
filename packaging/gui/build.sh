#!/bin/sh
# Build cuegui as one executable file: packaging/gui/build.sh [DIST_DIR]  (default: ./dist)
#
# Builds the wheel from this repository, installs it with the [gui] extra and PyInstaller into a
# fresh virtual environment (so the bundle holds exactly what the wheel ships), then runs
# PyInstaller on cuegui.spec.  PYTHON picks the interpreter (default python3); BUILD_VENV keeps
# the build environment in that directory (default: a temporary one, removed afterwards);
# CUEFARM_WHEEL takes a wheel already built instead of building one.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIST=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

VENV=${BUILD_VENV:-$WORK/venv}
"${PYTHON:-python3}" -m venv "$VENV"
PY="$VENV/bin/python"
if [ -n "${CUEFARM_WHEEL:-}" ]; then
    WHEEL=$CUEFARM_WHEEL
else
    "$PY" -m pip wheel --quiet --no-deps -w "$WORK/wheel" "$ROOT"
    WHEEL=$(ls "$WORK"/wheel/cuefarm-*.whl)
fi
# No byte code: PyInstaller compiles the modules it bundles itself.
"$PY" -m pip install --quiet --no-compile "$WHEEL[gui]" "pyinstaller>=6,<7"
# Run from the work dir so nothing is imported from the source tree.
cd "$WORK"
# PyInstaller compresses the one file at zlib level 9 unless told otherwise: level 6 makes the
# same size (within 0.5 %) in two thirds of the time.
export PYINSTALLER_ZLIB_COMPRESSION_LEVEL="${PYINSTALLER_ZLIB_COMPRESSION_LEVEL:-6}"
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath "$WORK/build" \
    "$HERE/cuegui.spec"
echo "built $DIST/cuegui"

#!/usr/bin/env bash
# Run the test suite on the Python and packages that 3D Slicer bundles, so the extension keeps
# working on older Slicer releases than the dev env (.venv: Python 3.11, numpy 2.x, pydicom 3):
#
#   56   Slicer 5.6.2   Python 3.9   numpy 1.26.1  scipy 1.11.3  pydicom 2.4.3  SimpleITK 2.2.1
#   58   Slicer 5.8.1   Python 3.9   numpy 1.26.4  scipy 1.13.1  pydicom 2.4.4  SimpleITK 2.3.1
#   510  Slicer 5.10    Python 3.12  numpy 2.0.2   scipy 1.13.1  pydicom 2.4.4  SimpleITK 2.5.2
#        (+ slicer-core and pyside6-essentials, so the Slicer/Qt tests run too)
#
# Usage: scripts/test_slicer_compat.sh [56|58|510|all ...] [-- pytest args]   (default: 56 510)
# Each set gets its own venv .venv-slicer<set>/ (git-ignored), created once and rebuilt only when
# this script or pyproject.toml changes (stamp file). pandas/openpyxl/pytest/hypothesis are not
# Slicer's (the extension installs pandas/openpyxl on demand); pip picks versions for that Python.
# A set whose Python interpreter cannot be found is skipped with a message (exit 0); set
# PYTHON39 / PYTHON312 to point at one. Torch-, Slicer- and Qt-only tests skip where those
# packages have no wheel (Python 3.9).
set -euo pipefail
cd "$(dirname "$0")/.."

sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    56|58|510) sets+=("$1") ;;
    all) sets+=(56 58 510) ;;
    --) shift; break ;;
    *) echo "usage: $0 [56|58|510|all ...] [-- pytest args]" >&2; exit 2 ;;
  esac
  shift
done
[ ${#sets[@]} -gt 0 ] || sets=(56 510)

find_python() {  # $1 = X.Y; prints a working interpreter or nothing
  local version=$1 override candidate root
  override=$([ "$version" = 3.9 ] && echo "${PYTHON39:-}" || echo "${PYTHON312:-}")
  for candidate in "$override" "python$version"; do
    if [ -n "$candidate" ] && "$candidate" -c "import sys; assert sys.version_info[:2] == ($version)" \
        >/dev/null 2>&1; then
      command -v "$candidate"; return
    fi
  done
  # pyenv installs that are not the active version (the shim then refuses to run)
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for candidate in $(ls -d "$root/versions/$version".*/bin/"python$version" 2>/dev/null | sort -V -r); do
    if "$candidate" -c "" >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
}

run_set() {
  local name=$1 version packages venv python stamp
  shift
  case "$name" in
    56) version=3.9; packages="numpy==1.26.1 scipy==1.11.3 pydicom==2.4.3 SimpleITK==2.2.1 pandas<2.3" ;;
    58) version=3.9; packages="numpy==1.26.4 scipy==1.13.1 pydicom==2.4.4 SimpleITK==2.3.1 pandas<2.3" ;;
    510) version=3.12; packages="numpy==2.0.2 scipy==1.13.1 pydicom==2.4.4 SimpleITK==2.5.2 pandas<3
                                 slicer-core pyside6-essentials" ;;
  esac
  python=$(find_python "$version")
  if [ -z "$python" ]; then
    echo "== Slicer $name compat: SKIPPED (no python$version found; set PYTHON${version/./} to one)"
    return 0
  fi
  venv=.venv-slicer$name
  stamp=$venv/.pysera-compat-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/test_slicer_compat.sh -nt "$stamp" ]; then
    echo "== Slicer $name compat: building $venv with $python"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # word splitting of $packages is intended (the pins hold no spaces or globs)
    # shellcheck disable=SC2086
    if ! { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $packages openpyxl pytest hypothesis \
           && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .; } \
         >"$venv/pip.log" 2>&1; then
      cat "$venv/pip.log" >&2
      echo "== Slicer $name compat: pip install failed (log above)" >&2
      return 1
    fi
    "$venv/bin/python" -c "import numpy, scipy, pydicom, SimpleITK, pandas, openpyxl, pytest, hypothesis, PySERASlicerLib"
    touch "$stamp"
  fi
  # distribution versions (pydicom 2.4.3's own __version__ still says 2.4.2)
  echo "== Slicer $name compat: $("$venv/bin/python" -c 'import sys; from importlib.metadata import version
print("Python %d.%d.%d" % sys.version_info[:3],
      *("%s %s" % (name, version(name)) for name in ("numpy", "scipy", "pydicom", "SimpleITK")))')"
  QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen} "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
}

for name in "${sets[@]}"; do
  run_set "$name" "$@"
done

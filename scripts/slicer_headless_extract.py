"""Headless PySERA extraction: folders of images and masks -> Excel/CSV report.

Inside Slicer (no window)::

    Slicer --no-main-window --python-script scripts/slicer_headless_extract.py \
        --images DIR --masks DIR --output DIR [--settings s.json] [--preset ibsi_C]

Without Slicer (same features, read by process_batch)::

    python scripts/slicer_headless_extract.py --images DIR --masks DIR --output DIR

Exit status: 0 every case extracted, 1 a case failed / nothing extracted, 2 bad arguments,
settings or missing packages. The work is done by ``PySERASlicerLib.headless.main``.
"""

import sys
from pathlib import Path

# The bundled package sits next to the module file (source tree) or is already importable
# (installed extension: Slicer puts the module folder on sys.path).
_MODULE_DIR = Path(__file__).resolve().parents[1] / "PySERASlicer"
if _MODULE_DIR.is_dir() and str(_MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(_MODULE_DIR))

from PySERASlicerLib.__main__ import run  # noqa: E402  (the installed extension's entry point)

if __name__ == "__main__":
    run()

"""Headless PySERA extraction: folders of images and masks -> Excel/CSV report.

Inside Slicer (no window)::

    Slicer --no-main-window --python-script scripts/slicer_headless_extract.py \
        --images DIR --masks DIR --output DIR [--settings s.json] [--preset ibsi_C]

Without Slicer (same features, read by process_batch)::

    python scripts/slicer_headless_extract.py --images DIR --masks DIR --output DIR

Exit status: 0 every case extracted, 1 a case failed / nothing extracted, 2 the run could
not start (bad arguments, settings, missing packages, the package failing to import). The
work is done by ``PySERASlicerLib.headless.main`` through ``PySERASlicerLib.__main__.run``.
Slicer leaves ``--python-script`` running until the script exits the application, so even a
package that cannot be imported must end in an exit here.
"""

import sys
import traceback
from pathlib import Path

EXIT_USAGE = 2

# The bundled package sits next to the module file (source tree) or is already importable
# (installed extension: Slicer puts the module folder on sys.path).
_MODULE_DIR = Path(__file__).resolve().parents[1] / "PySERASlicer"
if _MODULE_DIR.is_dir() and str(_MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(_MODULE_DIR))


def _exit_without_the_package(status: int) -> None:
    """``PySERASlicerLib.__main__.exit_with`` when the package itself cannot be imported."""
    try:
        import slicer.util

        if getattr(slicer, "app", None) is not None:
            slicer.util.exit(status)
            return
    except ImportError:
        pass
    sys.exit(status)


if __name__ == "__main__":
    try:
        from PySERASlicerLib.__main__ import run  # the installed extension's entry point
    except BaseException as exc:  # ImportError, or any error while importing (SyntaxError...)
        traceback.print_exc()
        print(f"slicer_headless_extract: error: cannot import PySERASlicerLib ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        _exit_without_the_package(EXIT_USAGE)
    else:
        run()

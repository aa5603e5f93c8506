"""Headless PySERA extraction: folders of images and masks -> Excel/CSV report.

Inside Slicer (no window)::

    Slicer --no-main-window --python-script scripts/slicer_headless_extract.py \
        --images DIR --masks DIR --output DIR [--settings s.json] [--preset ibsi_C]

Without Slicer (same features, read by process_batch)::

    python scripts/slicer_headless_extract.py --images DIR --masks DIR --output DIR

Exit status: 0 every case extracted, 1 a case failed / nothing extracted, 2 the run could
not start (bad arguments, settings, missing packages, the package failing to import). The
work is done by ``PySERASlicerLib.headless.main``. Slicer leaves ``--python-script`` running
until the script exits the application, so every way out of this script goes through
``_exit``: nothing here may raise past it.
"""

import sys
from pathlib import Path

EXIT_FAILED, EXIT_USAGE = 1, 2


def _exit(code):
    """slicer.util.exit inside the Slicer application (ends its event loop), else sys.exit."""
    try:
        import slicer

        app = getattr(slicer, "app", None)
    except ImportError:
        app = None
    if app is not None:
        import slicer.util

        slicer.util.exit(code)
        return
    sys.exit(code)


def _run(argv):
    """The exit status of the extraction; 2 when the package cannot even be imported."""
    import traceback

    # The bundled package sits next to the module file (source tree) or is already importable
    # (installed extension: Slicer puts the module folder on sys.path).
    module_dir = Path(__file__).resolve().parents[1] / "PySERASlicer"
    if module_dir.is_dir() and str(module_dir) not in sys.path:
        sys.path.insert(0, str(module_dir))
    try:
        from PySERASlicerLib.headless import main
    except BaseException as exc:  # ImportError, or any error while importing (SyntaxError...)
        traceback.print_exc()
        print(f"slicer_headless_extract: error: cannot import PySERASlicerLib ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        return main(argv)
    except BaseException:  # never leave a headless Slicer running after a crash
        traceback.print_exc()
        return EXIT_FAILED


if __name__ == "__main__":
    _exit(_run(sys.argv[1:]))

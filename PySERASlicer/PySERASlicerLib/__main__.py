"""Headless extraction from an installed extension (``scripts/`` is not installed).

Slicer puts the module folder on ``sys.path`` and passes the arguments after the options it
knows on to ``sys.argv``, so with the extension installed::

    Slicer --no-main-window --python-code "import PySERASlicerLib.__main__ as m; m.run()" \\
        --images DIR --masks DIR --output DIR [--settings s.json | --preset ibsi_C]

and with any Python that has the package: ``python -m PySERASlicerLib --images DIR ...``.
The work is :func:`PySERASlicerLib.headless.main`; this module only ends the process with its
status (``slicer.util.exit`` inside Slicer, which ends the application's event loop).
"""

import sys
from typing import List, Optional


def exit_with(status: int) -> None:
    """End the process with ``status``: ``slicer.util.exit`` inside the Slicer application
    (a headless Slicer would otherwise keep running), ``sys.exit`` elsewhere."""
    try:
        import slicer

        app = getattr(slicer, "app", None)
    except ImportError:
        app = None
    if app is not None:
        import slicer.util

        slicer.util.exit(status)
        return
    sys.exit(status)


def run(argv: Optional[List[str]] = None) -> None:
    """Run the headless extraction on ``argv`` (default ``sys.argv[1:]``) and exit."""
    import traceback

    try:
        from .headless import main
    except Exception as exc:  # a broken installation must still end a headless Slicer (status 2)
        traceback.print_exc()
        print(f"PySERASlicerLib: error: cannot import the headless runner ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        exit_with(2)
        return
    try:
        status = main(sys.argv[1:] if argv is None else argv)
    except Exception:  # never leave a headless Slicer running after a crash
        traceback.print_exc()
        status = 1
    exit_with(status)


if __name__ == "__main__":
    run()

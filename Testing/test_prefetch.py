"""Background imports (prefetch.py): they run beside the cases, and the caller's own import after
``wait_for_prefetch`` never meets a half-initialised package. The race is reproduced in a real
process with a package shaped like openpyxl (a submodule that imports its parent): CI once lost a
batch's Excel file to "cannot import name 'Workbook' from partially initialized module"."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from PySERASlicerLib.prefetch import prefetch, wait_for_prefetch

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "PySERASlicer"


def test_prefetch_imports_in_the_background_and_skips_missing_modules():
    name = "xml.dom.minidom"
    sys.modules.pop(name, None)
    prefetch("no_such_module_pysera", name)
    wait_for_prefetch()
    assert name in sys.modules  # never imported by this thread
    assert "no_such_module_pysera" not in sys.modules


def _slow_circular_package(root: Path) -> None:
    """``circularpkg`` imports ``circularpkg.book`` slowly and ``book`` imports from its parent, as
    openpyxl's submodules do: fine in one thread; two threads that each hold one of the two module
    locks deadlock, and Python breaks the deadlock by failing one of the imports."""
    package = root / "circularpkg"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent("""
        import time
        helper = "ready"
        time.sleep(1.0)
        from circularpkg.book import Book  # noqa: E402
        """))
    (package / "book.py").write_text(textwrap.dedent("""
        from circularpkg import helper
        class Book:
            pass
        """))


def _import_while_prefetching(root: Path, wait: bool) -> subprocess.CompletedProcess:
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(root)!r}, {str(PACKAGE_ROOT)!r}]
        from PySERASlicerLib.prefetch import prefetch, wait_for_prefetch
        prefetch("circularpkg")
        while "circularpkg" not in sys.modules:  # until the background import is inside __init__
            time.sleep(0.001)
        if {wait!r}:
            wait_for_prefetch()
        from circularpkg.book import Book
        import circularpkg
        print("imported", Book.__name__, circularpkg.helper)
        """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_the_import_after_wait_for_prefetch_meets_a_whole_package(tmp_path):
    _slow_circular_package(tmp_path)
    started = time.monotonic()
    done = _import_while_prefetching(tmp_path, wait=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["imported", "Book", "ready"]
    assert time.monotonic() - started < 30


def test_the_stand_in_reproduces_the_race_without_the_wait(tmp_path):
    """The control: without the wait the same process fails (else the test above could not fail).
    Which import loses depends on the Python version; CI met "cannot import name 'Workbook' from
    partially initialized module 'openpyxl.workbook'", here the main thread meets the package the
    failed background import removed from ``sys.modules``."""
    _slow_circular_package(tmp_path)
    done = _import_while_prefetching(tmp_path, wait=False)
    assert done.returncode != 0
    assert "circularpkg" in done.stderr.splitlines()[-1]

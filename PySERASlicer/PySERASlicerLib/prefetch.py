"""Import modules in a background thread while the caller reads files and extracts features.

A fresh process spends much of its first case importing (pandas alone takes about as long as
one extraction). Modules needed only at the end of a run (pandas for the result table,
openpyxl for the Excel file) can load on the second core meanwhile: file reading and numpy's
heavy calls release the GIL. The real ``import`` later waits for the module if it is still
loading (Python's per-module import lock) and reports any error itself.
"""

from __future__ import annotations

import importlib
import sys
import threading


def prefetch(*modules: str) -> None:
    """Start importing ``modules`` (those not imported yet) in a background thread."""
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        return

    def load() -> None:
        for name in missing:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001, S112 - the caller's own import reports it
                continue

    threading.Thread(target=load, name="pysera-prefetch", daemon=True).start()

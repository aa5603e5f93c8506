"""Import modules in a background thread while the caller reads files and extracts features.

A fresh process spends much of its first case importing (pandas alone takes about as long as
one extraction). Modules needed only at the end of a run (pandas for the result table,
openpyxl for the Excel file) can load on the second core meanwhile: file reading and numpy's
heavy calls release the GIL.

The caller must call :func:`wait_for_prefetch` before it imports those modules itself. Python's
per-module import locks do not make a concurrent import of the same package safe: a package
whose submodules import their parent (openpyxl does) can deadlock between the two threads, and
Python breaks that deadlock by handing one thread a half-initialised module ("cannot import name
'Workbook' from partially initialized module 'openpyxl.workbook'").
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import List

_loaders: List[threading.Thread] = []
_loaders_lock = threading.Lock()


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

    loader = threading.Thread(target=load, name="pysera-prefetch", daemon=True)
    with _loaders_lock:
        _loaders.append(loader)
    loader.start()


def wait_for_prefetch() -> None:
    """Return once every background import started by :func:`prefetch` has finished (or failed),
    so that importing those modules here cannot meet a half-initialised package."""
    with _loaders_lock:
        loaders = list(_loaders)
    for loader in loaders:
        loader.join()
    with _loaders_lock:
        _loaders[:] = [t for t in _loaders if t.is_alive()]

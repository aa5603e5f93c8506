"""``batch_progress.jsonl``: each finished case appended as it completes, and ``resume``.

An interrupted run keeps its work; ``resume=True`` skips the cases already finished with the
same settings (see docs/batch.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from .case_extraction import CaseResult
from .cases import Case
from .runlog import RunLog
from .settings import Settings

#: Name of the file (in the output folder) that receives each finished case as one JSON line.
PROGRESS_FILE = "batch_progress.jsonl"


def _settings_digest(settings: Settings) -> str:
    return hashlib.sha256(json.dumps(settings.to_dict(), sort_keys=True).encode("utf-8")).hexdigest()


def case_key(case: Case) -> str:
    """Identity of a case for resume: id, inputs and selection (arrays: their id only)."""
    def describe(source: Any) -> str:
        return str(Path(source).resolve()) if isinstance(source, (str, os.PathLike)) else type(source).__name__

    text = json.dumps([case.case_id, describe(case.image), describe(case.mask), case.roi_label, case.series_uid,
                       case.volume, list(case.spacing) if case.spacing is not None else None])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class ProgressStore:
    """``batch_progress.jsonl`` in the output folder: a header line, then one line per finished case.

    The file exists while a batch is unfinished: it is removed once the Excel/CSV are written.
    ``resume=True`` reuses the successful cases of a file written with the same settings;
    without ``resume`` an old file is kept as ``batch_progress_<time>.jsonl`` and a new one starts.
    """

    def __init__(self, folder: Path, settings: Settings, resume: bool, log: RunLog):
        self.path = folder / PROGRESS_FILE
        self.done: Dict[str, CaseResult] = {}
        digest = _settings_digest(settings)
        folder.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if resume:
                self.done = self._load(digest, log)
            if not self.done:
                stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(self.path.stat().st_mtime))
                backup = folder / f"batch_progress_{stamp}.jsonl"
                counter = 2
                while backup.exists():
                    backup = folder / f"batch_progress_{stamp}_{counter}.jsonl"
                    counter += 1
                self.path.rename(backup)
                if resume:
                    log.warning(f"resume: nothing reusable in {self.path.name} (kept as {backup.name})")
                else:
                    log.info(f"an unfinished run's {PROGRESS_FILE} was kept as {backup.name}")
        elif resume:
            log.info(f"resume: no {PROGRESS_FILE} in {folder}; processing every case")
        if self.done:
            self.handle = open(self.path, "a", encoding="utf-8")
        else:
            self.handle = open(self.path, "w", encoding="utf-8")
            self._write({"type": "header", "settings_sha256": digest, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def _load(self, digest: str, log: RunLog) -> Dict[str, CaseResult]:
        done: Dict[str, CaseResult] = {}
        with open(self.path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
        if not records or records[0].get("type") != "header":
            return done
        if records[0].get("settings_sha256") != digest:
            log.warning(f"resume: {self.path.name} was written with other settings; its cases are processed again")
            return done
        for record in records[1:]:
            if record.get("type") == "case":
                result = CaseResult.from_json(record["result"])
                if not result.error:
                    done[record["key"]] = result
                else:
                    done.pop(record["key"], None)
        return done

    def _write(self, record: Dict[str, Any]) -> None:
        self.handle.write(json.dumps(record, default=_json_default) + "\n")
        self.handle.flush()

    def add(self, key: str, result: CaseResult) -> None:
        self._write({"type": "case", "key": key, "case_id": result.case_id, "result": result.to_json()})

    def close(self, finished: bool) -> None:
        self.handle.close()
        if finished:
            self.path.unlink(missing_ok=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


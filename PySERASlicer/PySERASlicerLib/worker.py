"""Worker process entry point: ``python -m PySERASlicerLib.worker <job folder>``.

Reads ``job.json`` (+ ``inputs.npz``), runs the extraction, appends progress events to
``progress.jsonl`` and writes ``result.json``. Plain Python: no slicer, no qt, no MRML.
Any uncaught exception ends the process with a traceback on stderr (``worker.log``), which
:class:`PySERASlicerLib.jobs.Job` hands to the caller.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from .image import Image
from .io.types import MaskData
from .jobs import _write_json
from .settings import Settings


class ProgressWriter:
    """Appends one JSON object per line; flushed at once so the GUI sees it while we work."""

    def __init__(self, path: Path):
        self.handle = open(path, "a", encoding="utf-8")
        self.done = 0
        self.total = 0

    def emit(self, **event: Any) -> None:
        event.setdefault("done", self.done)
        event.setdefault("total", self.total)
        event["time"] = time.time()
        self.handle.write(json.dumps(event) + "\n")
        self.handle.flush()


def run_case_job(folder: Path, job: Dict[str, Any], progress: ProgressWriter) -> Dict[str, Any]:
    from .case_extraction import extract_case
    from .cases import Case
    from .rois import discover_rois

    settings = Settings.from_dict(job["settings"])
    with np.load(folder / "inputs.npz") as inputs:
        image_array = inputs["image"]
        geometry = job["geometry"]
        image = Image(image_array, geometry["spacing"], geometry["origin"], np.array(geometry["direction"]),
                      modality=geometry.get("modality", "OTHER"), source=geometry.get("source", ""))
        size = image_array.size
        named = {
            name: np.unpackbits(inputs[f"roi_{index}"], count=size).astype(bool).reshape(image_array.shape)
            for index, name in enumerate(job["roi_names"])
        }
        labels = inputs["labels"] if "labels" in inputs.files else None
    masks = MaskData(labels=labels, named=named)
    progress.total = len(discover_rois(masks, settings.rois).rois)
    progress.emit(event="start", message=f"{progress.total} ROI(s) to extract")

    def on_roi(flag: str, case_id: str, roi: str) -> None:
        if flag == "END":
            progress.done += 1
        progress.emit(event=f"roi_{flag.lower()}", roi=roi, message=f"{roi}: {'done' if flag == 'END' else 'started'}")

    def on_step(roi: str, step: str) -> None:
        progress.emit(event="step", roi=roi, step=step, message=f"{roi}: {step}")

    result = extract_case(Case(job["case_id"], image, masks), settings, callback=on_roi, on_step=on_step)
    return {"rows": result.rows, "report": [e.as_row() for e in result.entries], "error": result.error,
            "seconds": result.seconds}


def run_batch_job(job: Dict[str, Any], progress: ProgressWriter) -> Dict[str, Any]:
    from .batch import process_batch

    settings = Settings.from_dict(job["settings"])
    progress.emit(event="start", message="batch started")

    def on_roi(flag: str, case_id: str, roi: str) -> None:
        if flag == "END":
            progress.done += 1
        progress.emit(event=f"roi_{flag.lower()}", case=case_id, roi=roi, message=f"{case_id} / {roi}")

    result = process_batch(job["image_input"], job["mask_input"], job["output_path"], settings=settings,
                           callback_fn=on_roi, **job.get("options", {}))
    frame = result["features_extracted"]
    rows = frame.to_dict(orient="records") if len(frame) else []
    return {"rows": rows, "report": [], "error": result["error"] or "", "seconds": result["processing_time"],
            "outputs": {"excel_path": result["excel_path"], "csv_path": result["csv_path"],
                        "processed_files": result["processed_files"], "logs": result["logs"]}}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m PySERASlicerLib.worker <job folder>", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    with open(folder / "job.json", encoding="utf-8") as handle:
        job = json.load(handle)
    progress = ProgressWriter(folder / "progress.jsonl")
    if job["kind"] == "case":
        result = run_case_job(folder, job, progress)
    elif job["kind"] == "batch":
        result = run_batch_job(job, progress)
    else:
        raise ValueError(f"unknown job kind {job['kind']!r}")
    _write_json(folder / "result.json", result)
    progress.emit(event="finished", message="finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())

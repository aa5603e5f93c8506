"""Extraction logic for the Slicer module, without Qt (usable from the console and headless).

``PySERASlicer.py``'s Logic class delegates here, so everything below the widget is tested
with the slicer-core wheel and real worker processes::

    logic = ExtractionLogic()
    frame, table = logic.extract(volumeNode, segmentationNode, categories="stat,glcm", dimensions="1st,3d")

or, without blocking (the GUI polls ``running.poll()`` from a QTimer)::

    running = logic.start(volumeNode, segmentationNode, settings)
    ...
    frame, table = running.finish()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

from . import slicer_bridge
from .jobs import Job, JobProgress, start_extraction
from .settings import Settings


def settings_from_params(settings: Optional[Settings] = None, **params: Any) -> Settings:
    """Settings from a Settings object and/or PySERA keyword arguments (``bin_size=25`` ...)."""
    base = settings or Settings()
    return Settings.from_pysera(base=base, **params) if params else base


@dataclass
class RunningExtraction:
    """A started job plus where its results go."""

    job: Job
    table_node: Any
    table_name: str

    def poll(self) -> JobProgress:
        return self.job.poll()

    def cancel(self) -> None:
        self.job.cancel()

    def finish(self, timeout: Optional[float] = None):
        """Wait for the job and fill the table node; returns (DataFrame, table node, result)."""
        result = self.job.wait(timeout=timeout)
        table = slicer_bridge.table_from_rows(result.rows, self.table_node, self.table_name)
        return result.frame(), table, result


class ExtractionLogic:
    """Turns MRML nodes into a background extraction job and its results into a table."""

    def __init__(self, python: Optional[str] = None):
        self.python = python  # worker interpreter; default sys.executable (PythonSlicer in Slicer)

    def start(self, volume_node, mask_node, settings: Optional[Settings] = None,
              segment_ids: Optional[Sequence[str]] = None, table_node=None, **params: Any) -> RunningExtraction:
        """Start extracting every chosen segment/label of ``mask_node`` on ``volume_node``."""
        settings = settings_from_params(settings, **params)
        image = slicer_bridge.image_from_volume(volume_node, modality=settings.modality.value)
        masks = slicer_bridge.masks_from_node(mask_node, volume_node, segment_ids)
        job = start_extraction(image, masks, settings, case_id=volume_node.GetName(), python=self.python)
        name = f"{volume_node.GetName()} features"
        return RunningExtraction(job, table_node, name)

    def extract(self, volume_node, mask_node, settings: Optional[Settings] = None,
                segment_ids: Optional[Sequence[str]] = None, table_node=None, timeout: Optional[float] = None,
                **params: Any) -> Tuple[Any, Any]:
        """Blocking extraction (console / headless): returns (DataFrame, vtkMRMLTableNode).

        Raises :class:`PySERASlicerLib.jobs.JobError` when the worker fails, and
        ``RuntimeError`` naming the problems when no ROI could be extracted.
        """
        running = self.start(volume_node, mask_node, settings, segment_ids, table_node, **params)
        frame, table, result = running.finish(timeout)
        if not result.rows:
            problems = "; ".join(r["Message"] for r in result.report if r["Level"] == "ERROR") or result.error
            raise RuntimeError(f"no ROI could be extracted: {problems}")
        return frame, table


def summary(frame, seconds: float) -> str:
    """One-line summary shown under the Apply button."""
    n_rois = len(frame)
    n_features = max(frame.shape[1] - 2, 0) if n_rois else 0
    return f"{n_rois} ROI(s) x {n_features} features in {seconds:.1f} s"


def report_rows(result) -> Dict[str, int]:
    """Counts of Report rows per level (for the status line)."""
    counts: Dict[str, int] = {}
    for row in result.report:
        counts[row["Level"]] = counts.get(row["Level"], 0) + 1
    return counts

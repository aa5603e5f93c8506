"""``process_batch``'s public face: PySERA 2.1.5's signature and its documentation.

This module is light (no numpy, pandas or engine imports) so that ``import PySERASlicerLib`` stays
cheap while ``inspect.signature(PySERASlicerLib.process_batch)`` and ``help()`` show every
parameter. The work is done by :func:`PySERASlicerLib.batch.run_batch`, imported on the first call.

As in PySERA, every settings keyword defaults to ``None``, meaning "not given": PySERA's default,
or the value in ``settings=``. A keyword the caller wrote therefore always wins over ``settings=``,
even when it equals PySERA's default.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Union

from .settings import DEFAULT_MAX_TASKS_PER_CHILD, SETTINGS_KEYWORDS, Settings  # noqa: F401

if TYPE_CHECKING:  # for the annotations only: importing them costs numpy
    from .io.readers import MaskData, Source

def process_batch(
    image_input: Union[Source, MaskData, None] = None,
    mask_input: Union[Source, MaskData, None] = None,
    output_path: Optional[str] = "./output_result",
    temporary_files_path: Optional[str] = "./temporary_files_path",
    apply_preprocessing: Optional[bool] = None,
    min_roi_volume: Optional[float] = None,
    num_workers: Union[str, int, None] = None,
    enable_parallelism: Optional[bool] = None,
    categories: Optional[str] = None,
    dimensions: Optional[str] = None,
    bin_size: Optional[float] = None,
    roi_num: Optional[int] = None,
    roi_selection_mode: Optional[str] = None,
    feature_value_mode: Optional[str] = None,
    report: Optional[str] = None,
    callback_fn: Optional[Callable[[str, str, str], None]] = None,
    extraction_mode: Optional[str] = None,
    deep_learning_model: Optional[str] = None,
    aggregation_lesion: Optional[bool] = None,
    IBSI_based_parameters: Optional[Dict[str, Any]] = None,
    *,
    column_names: Optional[str] = None,
    settings: Optional[Settings] = None,
    spacing: Optional[Sequence[float]] = None,
    cases_csv: Optional[str] = None,
    case_timeout: Optional[float] = None,
    resume: bool = False,
    split_dicom: bool = False,
    max_tasks_per_child: Optional[int] = DEFAULT_MAX_TASKS_PER_CHILD,
    progress_fn: Optional[Callable[[Dict[str, Any]], None]] = None,
    filters: Optional[Sequence[Dict[str, Any]]] = None,
    features: Union[str, Sequence[str], None] = None,
    scheduler: Any = None,
    cluster_retries: Optional[int] = None,
) -> Dict[str, Any]:
    """Extract radiomics features for one case or a batch (PySERA-compatible).

    Parameters follow PySERA 2.1.5, in its order; docs/parameters.md lists each with its meaning
    and default. Every settings keyword defaults to ``None`` = "not given": PySERA's default
    (``categories="diag,morph,glcm,glrlm,glszm,ngtdm,ngldm"``, ``dimensions="1st,2d"``,
    ``bin_size=25``, ...), or the value in ``settings``. ``output_path=None`` writes no files.

    Keyword-only extras (docs/batch.md):

    column_names : ``"ibsi"`` (default: IBSI tags such as ``cm_joint_max_2D_avg``) or
        ``"pysera"`` (the names PySERA 2.1.5 writes, such as ``glcm_joint_max_2D_avg``).
    settings : a full :class:`Settings` (e.g. ``Settings.from_json``); every keyword given
        (not ``None``) overrides it.
    spacing : voxel size (i, j, k) in mm for array / ``.npy`` inputs (default 1 mm, with a warning).
    cases_csv : a CSV with columns ``case_id, image, mask`` and optional ``roi_label``,
        ``series_uid`` (which series of a DICOM folder) and ``volume`` (which volume of a
        multi-volume series, from 0), instead of ``image_input``/``mask_input``.
    case_timeout : seconds one case may run; a case past it is stopped (its worker process is
        killed) and reported. Setting it runs cases in worker processes even with one worker.
    resume : reuse the finished cases of an interrupted run in the same ``output_path``.
    split_dicom : one case per series / volume of DICOM folders holding several.
    max_tasks_per_child : cases a pool worker runs before a fresh process replaces it.
    progress_fn : called with ``{"event": "case_start"|"case_end", "case_id", "index", ...}``.
    filters : IBSI-2 filter entries (docs/filters.md), e.g. ``[{"filter": "log", "sigma_mm": 1.5}]``;
        replace the filters of ``settings``; each response map adds ``<feature>_<label>`` columns.
    features : only these features, in place of ``categories`` x ``dimensions``: output column
        names (``["morph_volume", "stat_mean", "cm_contrast_3D_avg"]``, PySERA's names too, or
        one comma-separated string); only the families they need run. An unknown name stops the
        run before any case, naming the closest known feature.
    scheduler : run the cases on a Dask cluster: a scheduler address (``"tcp://host:8786"``), a
        scheduler file (``.json``) or a ``distributed.Client``; None (default) or "" = this machine.
        Needs ``pip install "PySERASlicerLib[dask]"`` and workers that see the same file paths.
    cluster_retries : worker deaths a case survives on the cluster before it becomes a Report
        row (default 1).

    Returns
    -------
    dict with ``success``, ``output_path`` (results folder), ``excel_path``, ``csv_path``,
    ``provenance_path``, ``processed_files`` (cases with at least one ROI extracted),
    ``failed_files`` (cases that failed, images without a mask included), ``features_extracted``
    (DataFrame: PatientID, ROI, features), ``processing_time`` (s), ``logs``, ``error`` (None, or
    one message per failed case). When nothing could start (bad settings or paths, a bad cases
    CSV, no image/mask pair) ``processed_files`` and ``failed_files`` are 0, ``error`` says why
    and no file is written.
    """
    call = dict(locals())  # every argument by name: run_batch reads them, so the signature lives here only
    from .batch import run_batch

    return run_batch(call)


def run_batch_csv(cases_csv: str, settings: Union[Settings, str, Dict[str, Any], None] = None,
                  output_path: Optional[str] = "./output_result", **options: Any) -> Dict[str, Any]:
    """MEDimage-style batch: a cases CSV, a settings file (path, JSON text, dict or Settings)
    and an output folder. ``options`` are further :func:`process_batch` keywords."""
    if isinstance(settings, (str, os.PathLike)):
        settings = Settings.from_json(str(settings))
    elif isinstance(settings, dict):
        settings = Settings.from_any(settings)
    return process_batch(output_path=output_path, settings=settings, cases_csv=cases_csv, **options)

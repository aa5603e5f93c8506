"""Headless batch extraction: the core of ``scripts/slicer_headless_extract.py``.

Run inside Slicer without a window::

    Slicer --no-main-window --python-script scripts/slicer_headless_extract.py \\
        --images DIR --masks DIR --output DIR [--settings s.json] [--preset ibsi_C]

or with any Python that has this package (no Slicer at all)::

    python scripts/slicer_headless_extract.py --images DIR --masks DIR --output DIR

Images and masks are paired by file name (``case01.nrrd`` <-> ``case01.nrrd``, as in
``process_batch``). Two engines give the same features:

* ``mrml`` (default inside Slicer): each case is loaded into the scene with Slicer's storage
  nodes (a ``.seg.nrrd`` mask becomes a segmentation, any other mask a labelmap), converted
  by the Slicer bridge and extracted by :class:`~PySERASlicerLib.slicer_logic.ExtractionLogic`
  in a worker process; the nodes are removed after each case.
* ``batch`` (default without a Slicer scene): :func:`PySERASlicerLib.process_batch`
  reads the files itself.

Both write PySERA's Excel report (Radiomics_Features, Parameters, Report) plus CSV/JSON into
``--output``. A case that fails for any reason (bad file, an exception of Slicer's or ours) is
that case's ERROR row and the other cases run. Exit status: 0 when every case was extracted,
1 when a case failed or nothing was extracted, 2 when the run could not start (bad arguments,
settings, missing packages, an unusable output folder, any other error before the first case).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import dependencies
from .settings import PRESET_DESCRIPTIONS, Settings, SettingsError, preset_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slicer_headless_extract",
        description="Extract PySERA radiomics features for folders of images and masks "
                    "(inside Slicer with --no-main-window, or with plain Python).",
    )
    parser.add_argument("--images", required=True, help="folder of images (or one image file)")
    parser.add_argument("--masks", required=True,
                        help="folder of masks matched to the images by file name (or one mask file); "
                             ".seg.nrrd files are read as segmentations, others as labelmaps")
    parser.add_argument("--output", required=True, help="folder for the Excel/CSV/JSON results")
    parser.add_argument("--settings", default=None, help="settings JSON (Settings.to_json, PySERA keys or a preset)")
    parser.add_argument("--preset", default=None, choices=sorted(PRESET_DESCRIPTIONS),
                        help="start from a named preset instead of a settings file")
    parser.add_argument("--engine", default="auto", choices=("auto", "mrml", "batch"),
                        help="auto: mrml when a Slicer scene exists, else batch")
    parser.add_argument("--install-missing", action="store_true",
                        help="inside Slicer: pip-install missing pandas/openpyxl (lower bounds) instead of failing")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per case (mrml engine)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run the cases on a Dask cluster (tcp://host:8786 or a scheduler file); the batch "
                             "engine reads the files on the workers, which must see the same paths")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    if args.settings and args.preset:
        raise SettingsError("--preset and --settings: give one of them (a settings file may name a preset)")
    if args.settings:
        if not Path(args.settings).is_file():
            raise SettingsError(f"--settings {args.settings}: file not found")
        return Settings.from_json(args.settings)
    if args.preset:
        return preset_settings(args.preset)
    return Settings()


def slicer_scene() -> Any:
    """The Slicer scene when running inside Slicer (or a slicer-core test scene), else None."""
    try:
        import slicer
    except ImportError:
        return None
    return getattr(slicer, "mrmlScene", None)


def choose_engine(requested: str, scheduler: Optional[str] = None) -> str:
    if requested != "auto":
        return requested
    # on a cluster the workers read the files: there is no scene to load them into
    return "mrml" if slicer_scene() is not None and not scheduler else "batch"


def ensure_packages(settings: Settings, install: bool, say, cluster: bool = False) -> bool:
    """pandas/openpyxl (torch for deep features, distributed for a cluster) present? Optionally
    pip-install them in Slicer."""
    wanted = dependencies.needed_for_settings(settings, cluster=cluster)
    items = dependencies.missing(wanted)
    if not items:
        return True
    if install:
        try:
            import slicer.util

            pip_install = slicer.util.pip_install
        except (ImportError, AttributeError):
            pip_install = None
        if pip_install is not None:
            say("installing " + " ".join(dependencies.pip_requirements(items)))
            pip_install(dependencies.pip_requirements(items))
            items = dependencies.missing(wanted)
            if not items:
                return True
    print("missing Python packages: " + "; ".join(m.describe() for m in items)
          + (" (run with --install-missing inside Slicer, or pip install "
             + " ".join(dependencies.pip_requirements(items)) + ")"), file=sys.stderr)
    return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the headless extraction; returns the exit status (never raises)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("slicer_headless_extract: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # an error outside the per-case handling: the run did not happen
        import traceback

        traceback.print_exc()
        print(f"slicer_headless_extract: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE


class _RunStarted(Exception):
    """Carries an exception raised after the first case started (exit status 1, not 2)."""


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse exits on --help and on errors
        return EXIT_OK if exc.code == 0 else EXIT_USAGE

    def say(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"slicer_headless_extract: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for option in ("images", "masks"):
        if not Path(getattr(args, option)).exists():
            print(f"slicer_headless_extract: error: --{option} {getattr(args, option)}: not found", file=sys.stderr)
            return EXIT_USAGE
    try:
        Path(args.output).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"slicer_headless_extract: error: --output {args.output}: cannot create the folder ({exc})",
              file=sys.stderr)
        return EXIT_USAGE
    if not ensure_packages(settings, args.install_missing, say, cluster=bool(args.scheduler)):
        return EXIT_USAGE
    if settings.features:  # a mistyped feature name is a usage error, not an error of every case
        from .engine.registry import select_named

        try:
            select_named(settings.features)
        except SettingsError as exc:
            print(f"slicer_headless_extract: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    engine = choose_engine(args.engine, args.scheduler)
    if engine == "mrml" and args.scheduler:
        print("slicer_headless_extract: error: --scheduler runs the batch engine (the workers read the files); "
              "drop --engine mrml", file=sys.stderr)
        return EXIT_USAGE
    if engine == "mrml" and slicer_scene() is None:
        print("slicer_headless_extract: error: --engine mrml needs a Slicer scene", file=sys.stderr)
        return EXIT_USAGE
    say(f"engine: {engine}")
    try:
        if engine == "mrml":
            return run_mrml(args, settings, say)
        return run_batch(args, settings, say)
    except _RunStarted as wrapped:  # cases ran, the end failed (e.g. writing the report)
        exc = wrapped.__cause__
        print(f"slicer_headless_extract: error after the cases ran: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


def run_batch(args: argparse.Namespace, settings: Settings, say) -> int:
    """No Slicer scene: process_batch reads the files itself."""
    from .api import process_batch
    from .cli import report_result

    result = process_batch(args.images, args.masks, args.output, settings=settings, scheduler=args.scheduler)
    status = report_result(result, say)
    if result["excel_path"] is None and not result["failed_files"]:  # no case could start
        return EXIT_USAGE
    return EXIT_OK if status == 0 else EXIT_FAILED


# ---------------------------------------------------------------------------------------------
# The MRML engine
# ---------------------------------------------------------------------------------------------
def load_volume_file(path: Path, labelmap: bool = False, name: Optional[str] = None):
    """Read an image file into a new scalar (or labelmap) volume node with Slicer's reader."""
    import slicer

    from .io.readers import InputError, case_name

    scene = slicer.mrmlScene
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode",
                                   name or case_name(path))
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetSingleFile(True)
    if not storage.ReadData(node) or node.GetImageData() is None:
        scene.RemoveNode(node)
        raise InputError(f"{path}: Slicer could not read the file")
    return node


def load_mask_file(path: Path, name: Optional[str] = None):
    """A ``.seg.nrrd`` file becomes a segmentation node, any other image a labelmap volume."""
    import slicer

    from .io.readers import InputError, case_name

    if path.name.lower().endswith(".seg.nrrd"):
        scene = slicer.mrmlScene
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or case_name(path))
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(path))
        if not storage.ReadData(node):
            scene.RemoveNode(node)
            raise InputError(f"{path}: Slicer could not read the segmentation")
        return node
    return load_volume_file(path, labelmap=True, name=name)


SEGMENTATION_SUFFIX = ".seg.nrrd"


def mask_case_name(path: Path) -> str:
    """``case01.seg.nrrd`` -> ``case01`` (Slicer segmentation files), else the usual case name."""
    from .io.readers import case_name

    if path.name.lower().endswith(SEGMENTATION_SUFFIX):
        return path.name[: -len(SEGMENTATION_SUFFIX)]
    return case_name(path)


def pair_files(images: Path, masks: Path, log) -> List[Tuple[str, Path, Path]]:
    """(case id, image file, mask file) by file name, like process_batch; a ``.seg.nrrd`` mask
    pairs with the image of the same name. Unmatched images are ERROR rows of the Report."""
    from .io.readers import InputError, case_name, is_image_file

    if images.is_file():
        if not masks.is_file():
            raise InputError(f"--masks {masks}: --images is a file, so --masks must be a file too")
        return [(case_name(images), images, masks)]
    if not masks.is_dir():
        raise InputError(f"--masks {masks}: --images is a folder, so --masks must be a folder too")
    image_files = {case_name(p): p for p in sorted(images.iterdir()) if p.is_file() and is_image_file(p)}
    if not image_files:
        raise InputError(f"--images {images}: no image files (the mrml engine reads files; use --engine batch "
                         "for DICOM folders)")
    mask_files = {mask_case_name(p): p for p in sorted(masks.iterdir()) if p.is_file() and is_image_file(p)}
    pairs = []
    for name, path in image_files.items():
        if name not in mask_files:
            log.error(f"No matching mask found for {path.name} in {masks}", patient_id=name)
            continue
        pairs.append((name, path, mask_files[name]))
    for name, path in mask_files.items():
        if name not in image_files:
            log.warning(f"Mask {path.name} has no matching image in {images}", patient_id=name)
    return pairs


def _node_ids(scene) -> set:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def run_mrml(args: argparse.Namespace, settings: Settings, say) -> int:
    """Inside Slicer: load each case into the scene, extract it with the module logic."""
    import slicer

    from .export import features_frame, write_outputs
    from .io.readers import InputError
    from .jobs import JobError
    from .runlog import ReportEntry, RunLog
    from .slicer_logic import ExtractionLogic

    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    clock = time.perf_counter()
    log = RunLog(settings.report)
    try:
        cases = pair_files(Path(args.images), Path(args.masks), log)
    except InputError as exc:
        print(f"slicer_headless_extract: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logic = ExtractionLogic()
    rows: List[Dict[str, Any]] = []
    failed = [e.patient_id for e in log.entries if e.level == "ERROR"]
    for number, (case_id, image_path, mask_path) in enumerate(cases, 1):
        say(f"[{number}/{len(cases)}] {case_id}")
        before = _node_ids(slicer.mrmlScene)
        try:
            volume = load_volume_file(image_path, name=case_id)
            mask = load_mask_file(mask_path, name=f"{case_id} mask")
            result = logic.start_pairs([(volume, mask)], settings).wait(timeout=args.timeout)
        except (InputError, ValueError, JobError, TimeoutError) as exc:
            log.error(f"{case_id}: {exc}", patient_id=case_id)
            failed.append(case_id)
            continue
        except Exception as exc:  # e.g. RuntimeError of slicer.util, OSError: this case only
            log.error(f"{case_id}: {type(exc).__name__}: {exc}", patient_id=case_id)
            failed.append(case_id)
            continue
        finally:  # the case's nodes and whatever loading/exporting added (display, color nodes)
            for node_id in _node_ids(slicer.mrmlScene) - before:
                node = slicer.mrmlScene.GetNodeByID(node_id)
                if node is not None:
                    slicer.mrmlScene.RemoveNode(node)
        rows.extend(result.rows)
        log.entries.extend(result.entries())  # Report rows, not log lines
        if result.errors or not result.rows:
            failed.append(case_id)
    frame = features_frame(rows)
    processed = len({row["PatientID"] for row in rows})
    entries: List[ReportEntry] = log.entries
    try:
        paths = write_outputs(args.output, frame, settings, entries, run_info={
            "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "engine": "mrml",
            "cases": len(cases), "processed_files": processed, "failed_cases": len(set(failed)),
        })
    except Exception as exc:
        raise _RunStarted() from exc
    excel, csv = paths[0], paths[1]
    say(f"cases processed: {processed}, ROIs: {len(frame)}, time: {time.perf_counter() - clock:.1f} s")
    say(f"Excel: {excel}\nCSV:   {csv}")
    if failed:
        print("failed cases: " + ", ".join(sorted(set(failed))), file=sys.stderr)
    return EXIT_OK if processed and not failed else EXIT_FAILED

"""Command line: ``pysera-slicer extract ...``, ``pysera-slicer batch ...`` and ``pysera-slicer filter ...``.

``extract``  one image/mask pair, two folders of them (flat or patient subfolders), or a cases
             CSV; every ``process_batch`` parameter is an option.
``batch``    the MEDimage-style batch: ``--cases cases.csv --settings s.json --output DIR``
             (the same options may override the settings file).
``filter``   one IBSI-2 filter on one image: ``--image CT.nii.gz --filter '{"filter": "log", "sigma_mm": 1.5}'
             --output map.nii.gz`` writes the response map (docs/filters.md).

Writes the Excel report (and CSV twin, provenance JSON) and prints a short summary. Exit codes:

* 0: every case was extracted;
* 1: some case failed (counted in ``failed_files`` and in the summary; the Report says why);
* 2: nothing could start: bad arguments, settings, paths, cases-CSV header, no image/mask pair.
  No output file is written then.

Options are spelled with dashes (``--bin-size``); PySERA's keyword spellings (``--bin_size``,
``--image_input``, ``--IBSI_based_parameters``) and its CLI's (``--image-input``) are accepted
too, and a mistyped option gets the closest one suggested.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from .settings import (
    CATEGORIES,
    DIMENSIONS,
    PRESET_DESCRIPTIONS,
    SETTINGS_KEYWORDS,
    ColumnNames,
    DeepModel,
    ExtractionMode,
    FeatureValueMode,
    ReportLevel,
    RoiSelectionMode,
    Settings,
    SettingsError,
    preset_settings,
    read_json_object,
)


def _bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false, 1/0, yes/no)")


def _choices(enum_cls) -> str:
    return ", ".join(m.value for m in enum_cls)


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``extract`` and ``batch``: every process_batch parameter."""
    run = parser.add_argument_group("run")
    run.add_argument("--output", default="./output_result", help="output_path: folder for the Excel/CSV/JSON results "
                     "(default ./output_result)")
    run.add_argument("--temporary-files-path", default="./temporary_files_path",
                     help="temporary_files_path: cache for RTSTRUCT per-ROI masks, cleared after the run")
    run.add_argument("--settings", default=None,
                     help="settings JSON file (our settings dict, PySERA keys incl. IBSI_based_parameters, or "
                          "{'preset': name, ...overrides}); options given on the command line override it")
    run.add_argument("--preset", default=None, choices=sorted(PRESET_DESCRIPTIONS),
                     help="start from a named preset: "
                     + "; ".join(f"{k}: {v}" for k, v in PRESET_DESCRIPTIONS.items()))
    run.add_argument("--num-workers", default=None, help="num_workers: 'auto' or a number of worker processes")
    run.add_argument("--enable-parallelism", type=_bool, default=None, metavar="BOOL",
                     help="enable_parallelism: true (default) runs cases in worker processes")
    run.add_argument("--case-timeout", type=float, default=None, metavar="SECONDS",
                     help="stop and report a case that runs longer than this")
    run.add_argument("--resume", action="store_true",
                     help="skip the cases an interrupted run already finished (batch_progress.jsonl in --output)")
    run.add_argument("--split-dicom", action="store_true",
                     help="one case per series/volume of DICOM folders holding several")
    run.add_argument("--max-tasks-per-child", type=int, default=None,
                     help="cases a worker process runs before it is replaced (default 10)")
    run.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="run the cases on a Dask cluster: scheduler address (tcp://host:8786) or scheduler file "
                          "(.json); workers must see the same file paths (needs PySERASlicerLib[dask])")
    run.add_argument("--cluster-retries", type=int, default=None, metavar="N",
                     help="with --scheduler: worker deaths a case survives before it is a Report row (default 1)")
    run.add_argument("--spacing", type=float, nargs=3, metavar=("I", "J", "K"), default=None,
                     help="voxel size in mm for .npy inputs (default 1 1 1, with a warning)")
    run.add_argument("--report", default=None, choices=[m.value for m in ReportLevel],
                     help="report: log detail level (each level keeps the more severe ones)")
    run.add_argument("--quiet", action="store_true", help="print nothing but errors")
    run.add_argument("--column-names", default=None, choices=[m.value for m in ColumnNames],
                     help="column_names: feature columns named by their IBSI tags (ibsi, default: cm_joint_max_2D_avg) "
                          "or as PySERA 2.1.5 names them (pysera: glcm_joint_max_2D_avg), for PySERA's spreadsheets "
                          "and scripts")

    features = parser.add_argument_group("features (PySERA parameters)")
    features.add_argument("--categories", default=None,
                          help=f"comma-separated feature categories or 'all'; choices: {', '.join(CATEGORIES)} "
                               "(default: diag,morph,glcm,glrlm,glszm,ngtdm,ngldm)")
    features.add_argument("--dimensions", default=None,
                          help=f"comma-separated dimensions or 'all'; choices: {', '.join(DIMENSIONS)} "
                               "(2.5d accepted; default: 1st,2d)")
    features.add_argument("--bin-size", type=float, default=None,
                          help="bin_size: bin width (FBS) or number of bins (FBN) (default 25)")
    features.add_argument("--min-roi-volume", type=float, default=None,
                          help="min_roi_volume: drop ROIs with fewer voxels (default 10)")
    features.add_argument("--roi-num", type=int, default=None, help="roi_num: ROIs kept per image/label (default 10)")
    features.add_argument("--roi-selection-mode", default=None, help=f"{_choices(RoiSelectionMode)} (default per_Img)")
    features.add_argument("--feature-value-mode", default=None,
                          help=f"{_choices(FeatureValueMode)} (default REAL_VALUE: keep NaN)")
    features.add_argument("--aggregation-lesion", type=_bool, default=None, metavar="BOOL",
                          help="aggregate lesions into one row per image (per_Img) or per label (per_region)")
    features.add_argument("--apply-preprocessing", type=_bool, default=None, metavar="BOOL",
                          help="round mask values to integers before finding labels")
    features.add_argument("--extraction-mode", default=None, help=f"{_choices(ExtractionMode)}")
    features.add_argument("--deep-learning-model", default=None, help=f"{_choices(DeepModel)}")
    features.add_argument("--weights", default=None, metavar="PATH",
                          help="deep features: ImageNet weights file (or a folder holding torchvision's file); "
                               "default: torchvision's file in the torch cache ($TORCH_HOME/hub/checkpoints)")
    features.add_argument("--filters", default=None, metavar="FILE",
                          help="IBSI-2 filters: a JSON file holding a list of filter entries, or an object with "
                               "'filters' (and optionally 'filter_categories'); adds <feature>_<filter label> columns "
                               "(docs/filters.md)")
    features.add_argument("--features", default=None, metavar="NAMES",
                          help="only these features, in place of --categories x --dimensions: comma-separated "
                               "output column names, e.g. morph_volume,stat_mean,cm_contrast_3D_avg (PySERA's "
                               "names too; docs/features.md)")
    features.add_argument("--ibsi-parameters", default=None, metavar="JSON",
                          help="IBSI_based_parameters as a JSON object or a JSON file, "
                               "e.g. '{\"radiomics_DiscType\": \"FBN\"}'")


EPILOG = ("PySERA's spellings work too (--bin_size, --image_input, --IBSI_based_parameters, --image-input). "
          "--settings also takes a run's provenance JSON (rerun with the same settings). Exit codes: 0 every "
          "case extracted, 1 some case failed, 2 nothing could start (no output written). Examples: examples/.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pysera-slicer",
        description="IBSI-compliant radiomics feature extraction (PySERA-compatible), without Slicer.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    extract = sub.add_parser(
        "extract",
        help="extract features for an image/mask pair, two folders of them, or a cases CSV",
        description="Extract radiomics features and write an Excel report (sheets Radiomics_Features, "
                    "Parameters, Report, Feature_Definitions) plus a CSV twin and a provenance JSON into --output.",
        epilog=EPILOG,
    )
    extract.add_argument("--image", default=None,
                         help="image_input: image file (NIfTI, NRRD, MHA, .npy, DICOM), DICOM series folder, or a "
                              "folder of images / patient subfolders")
    extract.add_argument("--mask", default=None,
                         help="mask_input: mask file or folder matching --image (names matched exactly); "
                              "label images, RTSTRUCT or SEG")
    extract.add_argument("--cases", default=None,
                         help="cases CSV (case_id,image,mask[,roi_label][,series_uid][,volume]) instead of "
                              "--image/--mask")
    _add_common(extract)
    batch = sub.add_parser(
        "batch",
        help="batch from a cases CSV and a settings file",
        description="Batch extraction: a cases CSV (columns case_id, image, mask and optionally roi_label, "
                    "series_uid (which series of a DICOM folder) and volume (which volume of a multi-volume "
                    "series, from 0); paths relative to the CSV), a settings JSON and an output folder.",
        epilog=EPILOG,
    )
    batch.add_argument("--cases", required=True, help="cases CSV")
    _add_common(batch)
    filter_parser = sub.add_parser(
        "filter",
        help="write the IBSI-2 response map of one filter on one image",
        description="Filter one image with one IBSI-2 filter (docs/filters.md) and write the response map "
                    "(float, same grid as the image).",
    )
    filter_parser.add_argument("--image", required=True, help="image file (NIfTI, NRRD, MHA, .npy, DICOM) or "
                                                              "DICOM series folder")
    filter_parser.add_argument("--filter", required=True, metavar="JSON",
                               help="one filter entry as a JSON object or a JSON file, e.g. "
                                    "'{\"filter\": \"log\", \"sigma_mm\": 1.5}'")
    filter_parser.add_argument("--output", required=True, help="response map file to write, e.g. map.nii.gz")
    filter_parser.add_argument("--spacing", type=float, nargs=3, metavar=("I", "J", "K"), default=None,
                               help="voxel size in mm for .npy inputs")
    return parser


#: Other spellings of options: PySERA's keyword names and its own CLI's (after the dashes-for-
#: underscores and lower-case normalisation of :func:`normalise_options`).
ALIASES = {"--image-input": "--image", "--mask-input": "--mask", "--output-path": "--output",
           "--cases-csv": "--cases", "--ibsi-based-parameters": "--ibsi-parameters"}


def subcommand(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand (``extract`` / ``batch``)."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]


def command_options(sub: argparse.ArgumentParser) -> List[str]:
    """The option strings of a subcommand's parser."""
    return [option for action in sub._actions for option in action.option_strings]


def normalise_options(argv: Sequence[str], options: Sequence[str]) -> List[str]:
    """PySERA spellings -> ours: ``--bin_size`` -> ``--bin-size``, ``--image-input`` -> ``--image``
    (``--name=value`` too). Known options and values are left alone."""
    known = set(options)
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if name.startswith("--") and name not in known:
            dashed = "--" + name[2:].replace("_", "-").lower()
            dashed = ALIASES.get(dashed, dashed)
            if dashed in known:
                arg = dashed + eq + value
        out.append(arg)
    return out


def unknown_options_message(unknown: Sequence[str], options: Sequence[str]) -> str:
    """``unrecognized arguments: --categores (did you mean --categories?)``."""
    parts = []
    for arg in unknown:
        name = arg.partition("=")[0]
        close = difflib.get_close_matches(name, options, n=1, cutoff=0.6) if name.startswith("-") else []
        parts.append(f"{arg} (did you mean {close[0]}?)" if close else arg)
    return "unrecognized arguments: " + " ".join(parts)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings file or preset, then the options given on the command line on top."""
    if args.settings:
        if args.preset:
            raise SettingsError("--preset and --settings: give one of them (a settings file may name a preset)")
        settings = Settings.from_json(args.settings)
    elif args.preset:
        settings = preset_settings(args.preset)
    else:
        settings = Settings()
    ibsi = read_json_object(args.ibsi_parameters, "--ibsi-parameters") if args.ibsi_parameters else None
    # an option not given is None: process_batch's convention, so only what was typed overrides
    settings = Settings.from_call(settings, ibsi, **{key: getattr(args, key) for key in SETTINGS_KEYWORDS})
    if args.weights:
        settings = settings.replace(deep=dataclasses.replace(settings.deep, weights_path=args.weights))
    if args.filters:
        settings = settings.replace(**_filters_file(args.filters))
    if args.features is not None:
        settings = settings.replace(features=args.features)
    return settings


def _filters_file(path: str) -> Dict[str, Any]:
    """``{"filters": [...], ...}`` from a --filters file holding a list or such an object."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise SettingsError(f"--filters {path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise SettingsError(f"--filters {path}: not valid JSON ({exc})") from None
    if isinstance(data, list):
        return {"filters": data}
    if isinstance(data, dict) and "filters" in data and set(data) <= {"filters", "filter_categories"}:
        return data
    raise SettingsError(f"--filters {path}: expected a list of filter entries or an object with 'filters' "
                        "(and optionally 'filter_categories')")


def run_filter(args: argparse.Namespace) -> int:
    """``pysera-slicer filter``: write one response map; exit 0, 1 (bad input) or 2 (bad filter)."""
    from .engine.filters import FilterSpecError, apply_filter, parse_filter
    from .io.readers import InputError, read_image
    from .io.writers import write_image

    try:
        spec = parse_filter(read_json_object(args.filter, "--filter"), "--filter")
    except (SettingsError, FilterSpecError) as exc:
        return not_started(str(exc))
    try:
        image = read_image(args.image, spacing=args.spacing)
        response = apply_filter(image, spec)
        write_image(response, args.output)
    except (InputError, OSError, ValueError) as exc:
        print(f"pysera-slicer: error: {exc}", file=sys.stderr)
        return 1
    print(f"{spec.label}: response map of {args.image} written to {args.output}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    sub = subcommand(parser, command) if command in ("extract", "batch") else None
    options = command_options(sub) if sub else []
    argv = normalise_options(argv, options)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        (sub or parser).error(unknown_options_message(unknown, options))
    if args.command == "filter":
        return run_filter(args)
    if args.command == "extract" and not args.cases and not (args.image and args.mask):
        sub.error("give --image and --mask, or --cases")
    if args.command == "extract" and args.cases and (args.image or args.mask):
        sub.error("give --image/--mask or --cases, not both")
    for option in ("image", "mask", "cases"):
        path = getattr(args, option, None)
        if path and not os.path.exists(path):
            return not_started(f"--{option} {path}: file or folder not found")
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        return not_started(str(exc))
    from .api import process_batch

    options: Dict[str, Any] = dict(
        settings=settings, spacing=args.spacing, case_timeout=args.case_timeout, resume=args.resume,
        split_dicom=args.split_dicom, temporary_files_path=args.temporary_files_path,
    )
    if args.max_tasks_per_child is not None:
        options["max_tasks_per_child"] = args.max_tasks_per_child
    if args.scheduler:
        options.update(scheduler=args.scheduler, cluster_retries=args.cluster_retries)
    if args.cases:
        result = process_batch(output_path=args.output, cases_csv=args.cases, **options)
    else:
        result = process_batch(args.image, args.mask, args.output, **options)
    return report_result(result, print if not args.quiet else (lambda _line: None))


EXIT_OK, EXIT_FAILED, EXIT_NOT_STARTED = 0, 1, 2


def exit_code(result: Dict[str, Any]) -> int:
    """0 every case extracted, 1 some case failed, 2 nothing could start (no case ran)."""
    if result["failed_files"]:
        return EXIT_FAILED
    if not result["processed_files"]:
        return EXIT_NOT_STARTED
    return EXIT_OK if not result["error"] else EXIT_FAILED


def not_started(message: str) -> int:
    """Say why nothing could start (once, on stderr); the exit code 2."""
    print(f"pysera-slicer: error: {message}", file=sys.stderr)
    return EXIT_NOT_STARTED


def report_result(result: Dict[str, Any], say) -> int:
    """Summary of a process_batch result through ``say``, errors on stderr (each once); the
    exit code of :func:`exit_code`. Shared by the CLI and the headless script."""
    code = exit_code(result)
    if code == EXIT_NOT_STARTED:
        return not_started(result["error"])
    frame = result["features_extracted"]
    n_features = max(frame.shape[1] - 2, 0)
    say(f"cases processed: {result['processed_files']}, failed: {result['failed_files']}, ROIs: {len(frame)}, "
        f"features per ROI: {n_features}, time: {result['processing_time']:.2f} s")
    if result["excel_path"]:
        say(f"Excel: {result['excel_path']}\nCSV:   {result['csv_path']}\nJSON:  {result['provenance_path']}")
        say(f"rerun with the same settings: --settings {result['provenance_path']}")
    if result["error"]:
        print(f"errors: {result['error']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``pysera-slicer extract --image ... --mask ... --output ...``.

Writes the Excel report (and CSV twin) and prints a short summary. Exit code 0 when at least
one case was extracted and none failed, 1 when some cases failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .settings import CATEGORIES, DIMENSIONS, PRESET_DESCRIPTIONS, Settings, SettingsError, preset_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pysera-slicer",
        description="IBSI-compliant radiomics feature extraction (PySERA-compatible), without Slicer.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    extract = sub.add_parser(
        "extract",
        help="extract features for an image/mask pair or two folders of them",
        description="Extract radiomics features and write an Excel report (sheets Radiomics_Features, "
                    "Parameters, Report) plus a CSV twin into --output.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    extract.add_argument("--image", required=True,
                         help="image file (NIfTI, NRRD, MHA, .npy, ...), DICOM series folder, or a folder of images")
    extract.add_argument("--mask", required=True,
                         help="mask file / folder matching --image (file names matched exactly), RTSTRUCT or SEG")
    extract.add_argument("--output", default="./output_result", help="folder for the Excel/CSV/JSON results")
    extract.add_argument("--categories", default=None,
                         help=f"comma-separated feature categories or 'all'; choices: {', '.join(CATEGORIES)} "
                              "(default: PySERA's diag,morph,glcm,glrlm,glszm,ngtdm,ngldm)")
    extract.add_argument("--dimensions", default=None,
                         help=f"comma-separated dimensions or 'all'; choices: {', '.join(DIMENSIONS)} "
                              "(2.5d accepted; default: 1st,2d)")
    extract.add_argument("--bin-size", type=float, default=None,
                         help="bin width (FBS) or number of bins (FBN), as PySERA's bin_size (default 25)")
    extract.add_argument("--preset", default=None, choices=sorted(PRESET_DESCRIPTIONS),
                         help="start from a named preset: " + "; ".join(
                             f"{k}: {v}" for k, v in PRESET_DESCRIPTIONS.items()))
    extract.add_argument("--settings", default=None,
                         help="settings JSON file (our settings dict, PySERA keys incl. IBSI_based_parameters, "
                              "or {'preset': name, ...overrides}); command-line options override it")
    extract.add_argument("--spacing", type=float, nargs=3, metavar=("I", "J", "K"), default=None,
                         help="voxel size in mm for .npy inputs (default 1 1 1, with a warning)")
    extract.add_argument("--num-workers", default=None, help="'auto' or a number of worker processes")
    extract.add_argument("--report", default=None, choices=["all", "info", "warning", "error", "none"],
                         help="log detail level")
    extract.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    if args.settings:
        settings = Settings.from_json(args.settings)
        if args.preset:
            raise SettingsError("--preset and --settings: give one of them (a settings file may name a preset)")
    elif args.preset:
        settings = preset_settings(args.preset)
    else:
        settings = Settings()
    overrides = {}
    for option, key in (("categories", "categories"), ("dimensions", "dimensions"), ("bin_size", "bin_size"),
                        ("num_workers", "num_workers"), ("report", "report")):
        value = getattr(args, option)
        if value is not None:
            overrides[key] = value
    return Settings.from_pysera(base=settings, **overrides) if overrides else settings


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .batch import process_batch

    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"pysera-slicer: error: {exc}", file=sys.stderr)
        return 2
    result = process_batch(args.image, args.mask, args.output, settings=settings, spacing=args.spacing)
    frame = result["features_extracted"]
    if not args.quiet:
        n_features = max(frame.shape[1] - 2, 0)
        print(f"cases processed: {result['processed_files']}, ROIs: {len(frame)}, features per ROI: {n_features}, "
              f"time: {result['processing_time']:.2f} s")
        if result["excel_path"]:
            print(f"Excel: {result['excel_path']}\nCSV:   {result['csv_path']}")
    if result["error"]:
        print(f"errors: {result['error']}", file=sys.stderr)
    if not result["success"]:
        return 1
    return 1 if result["error"] else 0



if __name__ == "__main__":
    sys.exit(main())

"""IBSI-2 phase 2: every filter id (1.A ... 9.B) on the IBSI CT phantom through ``process_batch``,
written as ``filter_id, feature_tag, value`` rows to a CSV (default ``ibsi2_phase2.csv``).

The reference values are held out; this script produces the values to submit / compare. Chain
(CONFIGURATIONS.md section 4): configuration A (ids x.A) keeps the original grid and filters per
axial slice; B (x.B) interpolates to 1 mm (tricubic image, trilinear ROI, partial volume 0.5, rounded
HU) and filters in 3D; both re-segment to [-1000, 400] HU on the unfiltered image; boundary mirror;
18 intensity statistics of each response map. The Simoncelli ids use the periodic boundary (FFT of
the unpadded image), as MIRP, whose tests assert the phase 2 reference values with it.

Run from the repository root: ``.venv/bin/python scripts/ibsi2_phase2.py [--output file.csv]``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "PySERASlicer"))

from PySERASlicerLib import process_batch  # noqa: E402
from PySERASlicerLib.settings import (  # noqa: E402
    Interpolator,
    Modality,
    ResamplingSettings,
    ResegmentationSettings,
    Settings,
)

PHANTOM = ROOT / "Testing" / "Data" / "ibsi" / "ibsi_1_ct_radiomics_phantom" / "nifti"
IMAGE, MASK = PHANTOM / "image" / "phantom.nii.gz", PHANTOM / "mask" / "mask.nii.gz"

_RI = {"rotation_invariant": True}
#: filter number -> (entry, its 2D part, its 3D part); ids are number + ".A" (2D) / ".B" (3D).
#: ``dimensions`` and the boundary (mirror unless given) are added by :func:`phase2_entries`.
PHASE2 = {
    "1": ({"filter": "none"}, {}, {}),
    "2": ({"filter": "mean", "support": 5}, {}, {}),
    "3": ({"filter": "log", "sigma_mm": 1.5, "cutoff": 4}, {}, {}),
    "4": ({"filter": "laws", "energy_delta": 7, "pooling": "max", **_RI}, {"kernel": "L5E5"}, {"kernel": "L5E5E5"}),
    "5": ({"filter": "gabor", "sigma_mm": 5.0, "lambda_mm": 2.0, "gamma": 1.5, "theta_step_deg": 22.5, **_RI},
          {}, {}),
    "6": ({"filter": "wavelet", "wavelet": "db3", "level": 1, **_RI}, {"set": "LH"}, {"set": "LLH"}),
    "7": ({"filter": "wavelet", "wavelet": "db3", "level": 2, **_RI}, {"set": "HH"}, {"set": "HHH"}),
    "8": ({"filter": "simoncelli", "level": 1}, {}, {}),
    "9": ({"filter": "simoncelli", "level": 2}, {}, {}),
}


def configuration(dimensions: str) -> Settings:
    """Settings of phase 2 configuration A ("2D") or B ("3D"), without filters."""
    resampling = (ResamplingSettings() if dimensions == "2D" else ResamplingSettings(
        enabled=True, voxel_size_mm=1.0, image_interpolator=Interpolator.CUBIC,
        roi_interpolator=Interpolator.LINEAR, roi_partial_volume=0.5, round_intensities=True))
    return Settings(modality=Modality.CT, categories=("stat",), dimensions=("1st",), resampling=resampling,
                    resegmentation=ResegmentationSettings(range_enabled=True, range_lower=-1000, range_upper=400),
                    enable_parallelism=False)


def phase2_entries(dimensions: str, simoncelli_boundary: str = "periodic"):
    """(filter id, filter entry with ``label`` = ``ibsi2_<id>``) of configuration A or B."""
    letter, part = ("A", 1) if dimensions == "2D" else ("B", 2)
    entries = []
    for number, parts in PHASE2.items():
        entry = {"boundary": "mirror", **parts[0], **parts[part], "dimensions": dimensions,
                 "label": f"ibsi2_{number}{letter}"}
        if entry["filter"] == "simoncelli":
            entry["boundary"] = simoncelli_boundary
        entries.append((f"{number}.{letter}", entry))
    return entries


def run(dimensions: str, output_folder: str, simoncelli_boundary: str = "periodic"):
    """``[(filter_id, feature_tag, value)]`` of configuration A or B via process_batch."""
    entries = phase2_entries(dimensions, simoncelli_boundary)
    result = process_batch(str(IMAGE), str(MASK), output_folder, settings=configuration(dimensions),
                           filters=[entry for _, entry in entries])
    if not result["success"]:
        raise SystemExit(f"phase 2 {dimensions}: {result['error']}")
    row = result["features_extracted"].iloc[0]
    rows = []
    for fid, entry in entries:
        suffix = "_" + entry["label"]
        rows += [(fid, column[:-len(suffix)], float(row[column])) for column in row.index if column.endswith(suffix)]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="ibsi2_phase2.csv", help="CSV to write (default %(default)s)")
    parser.add_argument("--only", choices=("2D", "3D"), help="run configuration A (2D) or B (3D) only")
    parser.add_argument("--simoncelli-boundary", default="periodic", choices=("periodic", "mirror"),
                        help="boundary of filter ids 8 and 9 (default periodic, as MIRP; the IBSI table says mirror)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for dimensions in ("2D", "3D"):
            if args.only and args.only != dimensions:
                continue
            start = time.perf_counter()
            rows += run(dimensions, folder, args.simoncelli_boundary)
            print(f"configuration {'A' if dimensions == '2D' else 'B'} ({dimensions}): "
                  f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    with open(args.output, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filter_id", "feature_tag", "value"])
        writer.writerows((fid, tag, repr(value)) for fid, tag, value in rows)
    ids = sorted({fid for fid, _, _ in rows})
    print(f"phase 2: {len(rows)} values for {len(ids)} filter ids written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

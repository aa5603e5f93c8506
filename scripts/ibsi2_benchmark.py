"""Filter speed on the benchmark case (scripts/benchmark.py: synthetic 256 x 256 x 64 CT,
0.8 x 0.8 x 2.5 mm, lesion 1 of ~32,000 voxels): the filtered-image features of lesion 1 through
``engine.filters.features.filtered_features`` (chain + filtering of the ROI box plus the filter's
reach + 18 statistics), and the filter alone on that box. Median of ``--repeats`` warm runs.

Run from the repository root: ``.venv/bin/python scripts/ibsi2_benchmark.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "PySERASlicer"))
sys.path.insert(0, str(ROOT / "scripts"))

from benchmark import synthetic_case, time_call  # noqa: E402
from PySERASlicerLib.engine.bounding_box import bounding_box  # noqa: E402
from PySERASlicerLib.engine.filters import apply_filter, parse_filter  # noqa: E402
from PySERASlicerLib.engine.filters.features import filtered_features, margin_for  # noqa: E402
from PySERASlicerLib.engine.processing import crop  # noqa: E402
from PySERASlicerLib.settings import ResegmentationSettings, Settings  # noqa: E402

FILTERS = (
    {"filter": "log", "sigma_mm": 1.5},
    {"filter": "log", "sigma_mm": 3.0},
    {"filter": "wavelet", "wavelet": "coif1", "set": "LLH", "level": 1},
    {"filter": "wavelet", "wavelet": "db3", "set": "HHH", "level": 1, "rotation_invariant": True},
    {"filter": "laws", "kernel": "L5E5E5", "energy_delta": 7, "rotation_invariant": True},
    {"filter": "gabor", "sigma_mm": 5, "lambda_mm": 2, "gamma": 1.5, "theta_step_deg": 22.5,
     "rotation_invariant": True, "dimensions": "2D"},
    {"filter": "simoncelli", "level": 1},
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    image, labels = synthetic_case()
    mask = labels == 1
    base = Settings(categories=("stat",), dimensions=("1st",),
                    resegmentation=ResegmentationSettings(range_enabled=True, range_lower=-1000, range_upper=400))
    print(f"lesion 1: {int(mask.sum())} voxels, image {image.array.shape} (k, j, i)")
    print("| filter | box filtered (k, j, i) | filter alone (s) | features of the response map (s) |")
    print("| --- | --- | --- | --- |")
    for entry in FILTERS:
        spec = parse_filter(entry)
        margin = margin_for([spec], image.spacing, image.size_ijk)
        box = bounding_box(mask, margin=(margin[2], margin[1], margin[0]))
        boxed = crop(image, box)
        alone = time_call(functools.partial(apply_filter, boxed, spec), args.repeats)
        settings = base.replace(filters=(spec,))
        features = time_call(functools.partial(filtered_features, image, mask, settings), args.repeats)
        print(f"| {spec.label} | {boxed.array.shape} | {alone:.3f} | {features:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

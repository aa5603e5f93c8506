"""Speed and memory benchmark of the handcrafted-feature engine (run by hand, not in CI).

Case: a deterministic synthetic CT of 256 x 256 x 64 int16 voxels (spacing 0.8 x 0.8 x 2.5 mm)
with a ~32,000-voxel lesion (label 1) and a ~500-voxel lesion (label 2).

For each feature set (the full 3D set = dimensions "1st,3d", all 557 features, each family
alone) it prints the median of 5 warm runs per lesion, then one cold run (a fresh Python
process, imports included) and the peak memory (``ru_maxrss``) of this process and its
children. pyradiomics / pictologics are timed on the same case where they can be imported.

Usage::

    .venv/bin/python scripts/benchmark.py [--repeats 5] [--profile FAMILY_OR_SET]

Sections are functions (``section_handcrafted``, ``section_cold``, ``section_others``) so a
``--model`` deep-feature timing section can be added beside them.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "PySERASlicer"))

from PySERASlicerLib.engine.pipeline import extract_roi  # noqa: E402
from PySERASlicerLib.image import Image  # noqa: E402
from PySERASlicerLib.settings import CATEGORIES, Settings  # noqa: E402

SHAPE = (64, 256, 256)  # (k, j, i)
SPACING = (0.8, 0.8, 2.5)  # (i, j, k) mm


def synthetic_case(seed: int = 20240601) -> Tuple[Image, np.ndarray]:
    """Deterministic CT-like image and a label mask (1: ~32,000 voxels, 2: ~500 voxels)."""
    rng = np.random.default_rng(seed)
    k, j, i = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    sk, sj, si = SPACING[2], SPACING[1], SPACING[0]
    # body: soft tissue ellipse in air, lung-like darker region, smooth + white noise
    body = ((j - 128) / 110.0) ** 2 + ((i - 128) / 120.0) ** 2 <= 1.0
    image = np.where(body, 40.0, -1000.0) + np.zeros(SHAPE)
    lung = ((j - 110) / 60.0) ** 2 + ((i - 80) / 40.0) ** 2 <= 1.0
    image[np.broadcast_to(lung, SHAPE)] = -820.0
    image += ndimage.gaussian_filter(rng.normal(0, 60, SHAPE), 2.0) + rng.normal(0, 12, SHAPE)

    def lesion(centre_mm, radius_mm, wobble):
        ck, cj, ci = centre_mm
        r = np.sqrt((k * sk - ck) ** 2 + (j * sj - cj) ** 2 + (i * si - ci) ** 2)
        angle = np.arctan2(j * sj - cj, i * si - ci)
        return r <= radius_mm * (1 + wobble * np.sin(3 * angle) * np.cos(k * sk / 7.0))

    labels = np.zeros(SHAPE, dtype=np.uint8)
    big = lesion((80.0, 110.0, 150.0), 23.2, 0.08)
    small = lesion((100.0, 150.0, 70.0), 5.9, 0.05)
    labels[big] = 1
    labels[small & ~big] = 2
    texture = ndimage.gaussian_filter(rng.normal(0, 80, SHAPE), 1.2)
    image = np.where(labels > 0, 45.0 + texture + rng.normal(0, 15, SHAPE), image)
    array = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
    return Image(array, spacing=SPACING, origin=(0.0, 0.0, 0.0), direction=np.eye(3), modality="CT"), labels


def feature_sets() -> List[Tuple[str, Settings]]:
    base = dict(resegmentation=dict(range_enabled=True, range_lower=-1000, range_upper=400))
    sets = [("full 3D set (1st,3d)", dict(categories="all", dimensions="1st,3d")),
            ("all 557", dict(categories="all", dimensions="all"))]
    sets += [(f"{family} alone", dict(categories=family, dimensions="all")) for family in CATEGORIES]
    return [(name, Settings.from_dict({**base, **options})) for name, options in sets]


def time_call(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def section_handcrafted(image: Image, labels: np.ndarray, repeats: int) -> List[Dict[str, object]]:
    rows = []
    masks = {1: labels == 1, 2: labels == 2}
    for name, settings in feature_sets():
        row: Dict[str, object] = {"set": name}
        for label, mask in masks.items():
            result = extract_roi(image, mask, settings)
            row["n"] = len(result.values)
            row[f"lesion {label} (s)"] = time_call(lambda m=mask, s=settings: extract_roi(image, m, s), repeats)
        rows.append(row)
    return rows


COLD_SNIPPET = """
import sys, time
sys.path.insert(0, {src!r}); sys.path.insert(0, {scripts!r})
start = time.perf_counter()
import benchmark
image, labels = benchmark.synthetic_case()
build = time.perf_counter() - start
start = time.perf_counter()
from PySERASlicerLib.engine.pipeline import extract_roi
extract_roi(image, labels == 1, dict(benchmark.feature_sets())[{name!r}])
print(build, time.perf_counter() - start)
"""


def section_cold(set_name: str = "full 3D set (1st,3d)") -> Tuple[float, float]:
    """``(cold, first_call)`` seconds of a fresh interpreter: ``cold`` is the child's wall time
    (interpreter start-up, imports, first extraction) minus the time it spends building the
    synthetic case; ``first_call`` is the first ``extract_roi`` alone (lazy imports included)."""
    code = COLD_SNIPPET.format(src=str(ROOT / "PySERASlicer"), scripts=str(ROOT / "scripts"), name=set_name)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    build, first_call = (float(x) for x in out.stdout.split()[-2:])
    return wall - build, first_call


def section_others(image: Image, labels: np.ndarray, repeats: int) -> List[str]:
    """Time pyradiomics / pictologics on the same lesion when importable."""
    lines = []
    try:
        import radiomics  # noqa: F401
        import SimpleITK as sitk
        from radiomics import featureextractor

        extractor = featureextractor.RadiomicsFeatureExtractor(binWidth=25)
        extractor.enableAllFeatures()
        img = sitk.GetImageFromArray(image.array)
        img.SetSpacing(image.spacing)
        msk = sitk.GetImageFromArray((labels == 1).astype(np.uint8))
        msk.CopyInformation(img)
        seconds = time_call(lambda: extractor.execute(img, msk), repeats)
        lines.append(f"pyradiomics {radiomics.__version__}: {seconds:.3f} s (lesion 1, all features)")
    except ImportError as exc:
        lines.append(f"pyradiomics: not importable ({exc}); it does not build in this venv")
    try:
        import pictologics  # noqa: F401

        lines.append("pictologics: importable but no timing harness written yet")
    except ImportError as exc:
        lines.append(f"pictologics: not importable ({exc}); PyPI releases need Python >= 3.12")
    return lines


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def markdown_table(rows: List[Dict[str, object]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile(image: Image, labels: np.ndarray, set_name: str) -> None:
    settings = dict(feature_sets())[set_name]
    mask = labels == 1
    extract_roi(image, mask, settings)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(3):
        extract_roi(image, mask, settings)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", help="profile one feature set (e.g. 'all 557') and stop")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start subprocess")
    args = parser.parse_args(argv)

    image, labels = synthetic_case()
    if args.profile:
        profile(image, labels, args.profile)
        return
    print(f"# PySERASlicer benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}")
    print(f"Machine: {machine()}")
    print(f"Case: {SHAPE[::-1]} voxels (i, j, k), spacing {SPACING} mm; lesion 1 {(labels == 1).sum()} voxels, "
          f"lesion 2 {(labels == 2).sum()} voxels; FBS 25 HU, range [-1000, 400], no interpolation\n")
    rows = section_handcrafted(image, labels, args.repeats)
    print(f"Warm: median of {args.repeats} runs of extract_roi per lesion\n")
    print(markdown_table(rows))
    if not args.no_cold:
        cold, first_call = section_cold()
        print(f"\nCold (fresh process, full 3D set, lesion 1): {cold:.2f} s wall incl. interpreter start-up and "
              f"imports, excluding building the synthetic case (first extract_roi call {first_call:.2f} s)")
    print()
    for line in section_others(image, labels, args.repeats):
        print(line)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\nPeak memory (ru_maxrss): this process {own:.0f} MB, largest child {children:.0f} MB")


if __name__ == "__main__":
    main()

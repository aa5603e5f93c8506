"""Speed and memory benchmark of PySERASlicer (run by hand, not in CI).

Case: a deterministic synthetic CT of 256 x 256 x 64 int16 voxels (spacing 0.8 x 0.8 x 2.5 mm)
with a ~32,000-voxel lesion (label 1) and a ~500-voxel lesion (label 2); FBS 25 HU, range
[-1000, 400] HU, no interpolation.

Sections (each prints a markdown table; warm figures are medians of ``--repeats`` runs after one
warm-up run):

* handcrafted sets through ``engine.pipeline.extract_roi``: the full 3D set (dimensions
  "1st,3d", all categories), all 557 features, the non-texture set (diag, morph, ip, stat, ih,
  ivh), each family alone, and the pictologics-comparable set (the 170 features of pictologics'
  default families and aggregations, :func:`comparable_specs`), for both lesions; threads per
  ROI as the engine defaults (``--roi-threads N`` to choose);
* ``process_batch`` end to end on NIfTI files of the case written to a temporary folder (both
  lesions, one worker, no output files);
* cold run: a fresh Python process (interpreter start-up, imports and the first extraction);
* peak memory of the cold process (one extraction) and of this whole benchmark process;
* ``--deep MODEL[,MODEL]``: ``engine.deep.benchmark_deep(model)`` seconds per ROI with RANDOM
  weights (speed only; the features of random weights mean nothing);
* ``--worker-scaling [N]`` (only this section, then stop): ``process_batch`` on N copies (default
  20) of the lesion-1 case as NIfTI files: in this process, then in a pool of 1 and of 2 worker
  processes; seconds, speed-up of 2 workers over 1, and each worker's peak resident memory
  (``VmHWM``, read while it waits for its next case);
* ``--dask``: only this section (issue 11): ``process_batch`` on ``--dask-cases`` cases (default 40,
  the case above and its lesion 1 written once as NIfTI, the full 3D set) with ``--dask-workers``
  (default 2) in the local process pool and on a Dask ``LocalCluster`` of as many single-threaded
  worker processes (started beforehand; its start-up is reported apart); overhead per case;
* ``--pictologics-python PATH`` / ``--pyradiomics-python PATH``: the competitor timed on the same
  case (the image and the lesion-1 mask written as NIfTI to a temporary folder) in a subprocess of
  that interpreter (scratch venvs, never project dependencies): pyradiomics' default original-image
  extraction with binWidth 25; pictologics' default feature families with FBS 25 HU from -1000 HU
  and range [-1000, 400]; no resampling, texture in 3D; median of ``--repeats`` warm runs inside
  the subprocess; then the ratios against ours and against the published reference figures below;
  also each tool's cold figure (a fresh process: start-up, imports, first extraction, numba
  compilation or cache loading included) next to ours (``--first-ever-cold``: also the very first
  process, with an empty numba cache).

Usage::

    .venv/bin/python scripts/benchmark.py [--repeats 5] [--deep resnet50,vgg16] [--quick]
    .venv/bin/python scripts/benchmark.py --profile "full 3D set"    # cProfile one set and stop
    .venv/bin/python scripts/benchmark.py --dask --repeats 3         # local pool vs Dask LocalCluster
    .venv/bin/python scripts/benchmark.py --pictologics-python .bench-venvs/pictologics/bin/python \
        --pyradiomics-python .bench-venvs/pyradiomics39/bin/python
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "PySERASlicer"))

from PySERASlicerLib.engine.pipeline import extract_roi  # noqa: E402
from PySERASlicerLib.image import Image  # noqa: E402
from PySERASlicerLib.settings import CATEGORIES, Settings  # noqa: E402

#: Reference figures to beat: (what, seconds, number of features, source). They are the figures
#: the project was given (not measured here, other machines and cases).
REFERENCES = (
    ("pyradiomics", 0.7, 107, "project brief: pyradiomics 0.7 s for 107 features"),
    ("pictologics", 0.13, None, "project brief: pictologics 0.13 s"),
)
#: Families without texture matrices.
NON_TEXTURE = "diag,morph,ip,stat,ih,ivh"

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
    """(name, settings) of every timed handcrafted set."""
    base = dict(resegmentation=dict(range_enabled=True, range_lower=-1000, range_upper=400))
    sets = [("full 3D set", dict(categories="all", dimensions="1st,3d")),
            ("all 557", dict(categories="all", dimensions="all")),
            ("non-texture set", dict(categories=NON_TEXTURE, dimensions="all"))]
    sets += [(f"{family} alone", dict(categories=family, dimensions="all")) for family in CATEGORIES]
    return [(name, Settings.from_dict({**base, **options})) for name, options in sets]


#: What pictologics 0.9 computes by default (its families intensity, morphology, texture,
#: histogram and IVH; 170 features): the statistics, the morphology without Moran's I and
#: Geary's C, the intensity histogram, the IVH, and one 3D matrix per texture family (GLCM and
#: GLRLM merged over the 13 directions). Spatial (local intensity peaks) and moment invariants
#: are not in its default set.
COMPARABLE_AGGREGATIONS = {"glcm": "3D_comb", "glrlm": "3D_comb", "glszm": "3D", "gldzm": "3D",
                           "ngtdm": "3D", "ngldm": "3D"}
COMPARABLE_NAME = "pictologics-comparable set"


def comparable_specs():
    """The registry entries of :data:`COMPARABLE_NAME` (170 features)."""
    from PySERASlicerLib.engine.registry import select

    keep = []
    for spec in select(CATEGORIES, "all"):
        if spec.family in ("stat", "ih", "ivh") or (
                spec.family == "morph" and spec.tag not in ("morph_moran_i", "morph_geary_c")):
            keep.append(spec)
        elif COMPARABLE_AGGREGATIONS.get(spec.family) == spec.aggregation:
            keep.append(spec)
    return keep


def time_call(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def section_handcrafted(image: Image, labels: np.ndarray, repeats: int,
                        names: Optional[Sequence[str]] = None) -> List[Dict[str, object]]:
    rows = []
    masks = {1: labels == 1, 2: labels == 2}
    for name, settings in feature_sets():
        if names is not None and name not in names:
            continue
        row: Dict[str, object] = {"set": name}
        for label, mask in masks.items():
            row["features"] = len(extract_roi(image, mask, settings).values)
            row[f"lesion {label} (s)"] = time_call(lambda m=mask, s=settings: extract_roi(image, m, s), repeats)
        rows.append(row)
    if names is None or COMPARABLE_NAME in names:
        settings, specs = dict(feature_sets())["all 557"], comparable_specs()
        row = {"set": COMPARABLE_NAME, "features": len(extract_roi(image, masks[1], settings, specs=specs).values)}
        for label, mask in masks.items():
            row[f"lesion {label} (s)"] = time_call(lambda m=mask: extract_roi(image, m, settings, specs=specs), repeats)
        rows.append(row)
    return rows


def section_batch(image: Image, labels: np.ndarray, repeats: int) -> Dict[str, object]:
    """``process_batch`` on NIfTI files (both lesions, one worker, results kept in memory)."""
    import SimpleITK as sitk
    from PySERASlicerLib import process_batch

    settings = dict(feature_sets())["full 3D set"].replace(enable_parallelism=False, num_workers=1)
    with tempfile.TemporaryDirectory(prefix="pysera_bench_") as folder:
        image_path, mask_path = Path(folder) / "image.nii.gz", Path(folder) / "mask.nii.gz"
        for array, path in ((image.array, image_path), (labels, mask_path)):
            itk = sitk.GetImageFromArray(array)
            itk.SetSpacing(tuple(float(s) for s in image.spacing))
            sitk.WriteImage(itk, str(path))

        def run() -> int:
            result = process_batch(str(image_path), str(mask_path), output_path=None,
                                   temporary_files_path=str(Path(folder) / "tmp"), settings=settings)
            if not result["success"]:
                raise RuntimeError(f"process_batch failed: {result['error']}")
            return len(result["features_extracted"])

        rois = run()
        seconds = time_call(run, repeats)
    return {"set": "process_batch, full 3D set, NIfTI, 1 worker", "ROIs": rois, "total (s)": seconds,
            "per ROI (s)": seconds / max(rois, 1)}


COLD_SNIPPET = """
import sys, time
start = time.perf_counter()
sys.path.insert(0, {src!r}); sys.path.insert(0, {scripts!r})
from PySERASlicerLib.engine.pipeline import extract_roi
imports = time.perf_counter() - start
start = time.perf_counter()
import benchmark
image, labels = benchmark.synthetic_case()
name = {name!r}
comparable = name == benchmark.COMPARABLE_NAME
settings = dict(benchmark.feature_sets())["all 557" if comparable else name]
build = time.perf_counter() - start
start = time.perf_counter()
extract_roi(image, labels == 1, settings, specs=benchmark.comparable_specs() if comparable else None)
print(imports, build, time.perf_counter() - start, benchmark.own_peak_mb())
"""


def own_peak_mb() -> float:
    """Peak resident memory of this process in MB. ``VmHWM`` where Linux has it: ``ru_maxrss`` of
    a child started by fork + exec also counts its parent's memory at the fork."""
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024


def section_cold(set_name: str = "full 3D set") -> Tuple[float, float, float, float]:
    """``(cold, imports, first_call, peak_mb)`` of a fresh interpreter: ``cold`` is the child's
    wall time (interpreter start-up, imports, first extraction) minus the time it spends building
    the synthetic case; ``imports`` the import of ``engine.pipeline``; ``first_call`` the first
    ``extract_roi`` alone (lazy imports and one-off tables included); ``peak_mb`` the child's
    peak memory."""
    code = COLD_SNIPPET.format(src=str(ROOT / "PySERASlicer"), scripts=str(ROOT / "scripts"), name=set_name)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    imports, build, first_call, peak = (float(x) for x in out.stdout.split()[-4:])
    return wall - build, imports, first_call, peak


def section_deep(models: Sequence[str]) -> List[Dict[str, object]]:
    """Seconds per ROI of each deep model with random weights (speed only)."""
    from PySERASlicerLib.engine.deep import benchmark_deep

    rows = []
    for model in models:
        try:
            rows.append({"model": model, "weights": "RANDOM (speed only)", "per ROI (s)": benchmark_deep(model)})
        except Exception as exc:  # report and go on with the next model: this is a benchmark
            rows.append({"model": model, "weights": "RANDOM (speed only)", "per ROI (s)": f"failed: {exc}"})
    return rows


#: Timing harness run by a competitor's interpreter: ``python - TOOL IMAGE MASK REPEATS`` prints one
#: JSON line {"tool", "version", "features", "seconds", "first", "read", "setup"} (seconds: median
#: of REPEATS warm runs after one warm-up run, all inside that process, None when REPEATS is 0;
#: first: the warm-up run, numba compilation or cache loading included; read: reading the two
#: files; setup: imports + reading + pipeline set-up, from the snippet's first line to the warm-up
#: run). Reading the files is not timed in any figure. pictologics runs its numba kernels on all
#: cores (2 here).
COMPETITOR_SNIPPET = r"""
import time
snippet_start = time.perf_counter()
import json, statistics, sys
tool, image_path, mask_path, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if tool == "pysera":
    # PySERA 2.1.5's own entry point (it reads the files itself: "read" is 0, reading is in the
    # figures); all 557 features, FBS 25 HU, range [-1000, 400], one process, no resampling
    import tempfile
    import pysera
    from importlib.metadata import version as _version
    version = _version("pysera")
    read = 0.0
    out_folder = tempfile.mkdtemp(prefix="pysera_bench_out_")
    ibsi = {"radiomics_DataType": "CT", "radiomics_isReSegRng": 1, "radiomics_ReSegIntrvl01": -1000,
            "radiomics_ReSegIntrvl02": 400}
    def prepare():
        return image_path, mask_path
    def run(data):
        result = pysera.process_batch(image_input=data[0], mask_input=data[1], output_path=out_folder,
                                      categories="all", dimensions="all", bin_size=25, enable_parallelism=False,
                                      num_workers="1", report="error", IBSI_based_parameters=ibsi)
        return int(result["features_extracted"].shape[1]) - 2  # minus PatientID, ROI
elif tool == "pyradiomics":
    import logging
    import radiomics
    from radiomics import featureextractor
    radiomics.setVerbosity(logging.ERROR)
    # default "original image" extraction (all default feature classes, 3D), binWidth 25, no resampling
    extractor = featureextractor.RadiomicsFeatureExtractor(binWidth=25)
    import SimpleITK as sitk
    version = radiomics.__version__
    read_start = time.perf_counter()
    image, mask = sitk.ReadImage(image_path), sitk.ReadImage(mask_path)  # read once, outside the timing
    read = time.perf_counter() - read_start
    def prepare():
        return image, mask
    def run(data):
        result = extractor.execute(data[0], data[1], label=1)
        return sum(1 for key in result if not key.startswith("diagnostics"))
else:
    import pictologics
    from pictologics import RadiomicsPipeline, load_image
    version = pictologics.__version__
    read_start = time.perf_counter()
    image, mask = load_image(image_path), load_image(mask_path)
    read = time.perf_counter() - read_start
    pipeline = RadiomicsPipeline()
    # its default feature families (intensity, morphology, texture, histogram, IVH; spatial and
    # local intensity off by default), FBS 25 HU from -1000 HU, range [-1000, 400], no resampling
    steps = [{"step": "resegment", "params": {"range_min": -1000.0, "range_max": 400.0}},
             {"step": "discretise", "params": {"method": "FBS", "bin_width": 25.0, "min_val": -1000.0}},
             {"step": "extract_features", "params": {}}]
    pipeline.add_config("bench", steps)
    import copy
    def prepare():
        # fresh copies (made outside the timing) so that no cache keyed on the objects can help
        return copy.deepcopy(image), copy.deepcopy(mask)
    def run(data):
        series = pipeline.run(data[0], data[1], config_names=["bench"])["bench"]
        return int(series.notna().sum())
data = prepare()
start = time.perf_counter()
setup = start - snippet_start
n_features = run(data)
first = time.perf_counter() - start
times = []
for _ in range(repeats):
    data = prepare()
    start = time.perf_counter()
    run(data)
    times.append(time.perf_counter() - start)
print(json.dumps({"tool": tool, "version": version, "features": n_features,
                  "seconds": statistics.median(times) if times else None, "first": first,
                  "read": read, "setup": setup}))
"""


def write_case_nifti(image: Image, labels: np.ndarray, folder: Path) -> Tuple[Path, Path]:
    """The synthetic case as NIfTI: the image and the lesion-1 mask (0/1, uint8)."""
    import SimpleITK as sitk

    paths = (folder / "image.nii.gz", folder / "mask_lesion1.nii.gz")
    for array, path in ((image.array, paths[0]), ((labels == 1).astype(np.uint8), paths[1])):
        itk = sitk.GetImageFromArray(array)
        itk.SetSpacing(tuple(float(s) for s in image.spacing))
        sitk.WriteImage(itk, str(path))
    return paths


def section_others(image: Image, labels: np.ndarray, repeats: int, interpreters: Dict[str, Optional[str]],
                   first_ever_cold: bool = False) -> Tuple[List[Dict[str, object]], List[str]]:
    """Time each competitor on lesion 1 in a subprocess of its own interpreter (``interpreters``:
    tool -> python path; tools without one are only compared by their published figure)."""
    rows: List[Dict[str, object]] = []
    notes: List[str] = []
    with tempfile.TemporaryDirectory(prefix="pysera_bench_others_") as folder:
        image_path, mask_path = write_case_nifti(image, labels, Path(folder))
        for tool, python in interpreters.items():
            if not python:
                notes.append(f"{tool}: not measured (pass --{tool}-python PATH, an interpreter with {tool} "
                             "installed); only its published figure is compared")
                continue
            # cold first: a fresh interpreter with an empty numba cache folder (first-ever run:
            # every kernel compiled and written there), then a second fresh interpreter reading
            # that cache (numba cache=True: later processes load the compiled kernels). The 1st
            # takes minutes for pictologics: only with first_ever_cold; else one fresh process with
            # the interpreter's own (already filled) cache stands for the 2nd.
            if first_ever_cold:
                with tempfile.TemporaryDirectory(prefix="pysera_bench_numba_") as numba_cache:
                    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NUMBA_CACHE_DIR": numba_cache}
                    cold = [_run_competitor(python, tool, image_path, mask_path, 0, folder, env) for _ in range(2)]
            else:
                env = {**os.environ, "PYTHONWARNINGS": "ignore"}
                cold = [({}, "not run (--first-ever-cold)"), _run_competitor(python, tool, image_path, mask_path, 0,
                                                                             folder, env)]
            warm = _run_competitor(python, tool, image_path, mask_path, repeats, folder,
                                   {**os.environ, "PYTHONWARNINGS": "ignore"})
            failed = [r for r in cold + [warm] if isinstance(r, str)]
            if failed:
                notes.append(f"{tool}: the run with {python} failed: {failed[0]}")
                continue
            result = warm[0]
            rows.append({"tool": f"{tool} {result['version']}", "features": result["features"],
                         "lesion 1 (s)": float(result["seconds"]), "first run (s)": float(result["first"]),
                         "cold, 1st process (s)": cold[0][1], "cold, 2nd process (s)": cold[1][1]})
    return rows, notes


def _run_competitor(python: str, tool: str, image_path: Path, mask_path: Path, repeats: int, folder: str,
                    env: Dict[str, str]):
    """``(result, cold)`` of one run of :data:`COMPETITOR_SNIPPET` (cold: the process's wall time,
    interpreter start-up + imports + set-up + first extraction, minus the file reading), or the
    error text."""
    command = [os.path.abspath(python), "-", tool, str(image_path), str(mask_path), str(repeats)]
    start = time.perf_counter()
    done = subprocess.run(command, input=COMPETITOR_SNIPPET, capture_output=True, text=True, cwd=folder, env=env)
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
    result = json.loads(lines[-1])
    return result, (wall if repeats == 0 else float("nan")) - float(result["read"])


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
    return (f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}")


def markdown_table(rows: List[Dict[str, object]]) -> str:
    keys: List[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{row[k]:.3f}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reference_rows(rows: List[Dict[str, object]], others: List[Dict[str, object]],
                   colds: Optional[Dict[str, float]] = None) -> List[Dict[str, object]]:
    """Our time against each published figure (ratio > 1: we are faster); against a competitor
    measured here also the cold figures (fresh process: start-up, imports, first extraction;
    ``colds``: ours per set name)."""
    colds = colds or {}
    ours = {row["set"]: row for row in rows}
    out = []
    for name, seconds, n_features, source in REFERENCES:
        mine = ours.get("all 557") if n_features == 557 else ours.get("full 3D set")
        if mine is None:
            continue
        t = float(mine["lesion 1 (s)"])
        out.append({"reference": name, "their figure (s)": seconds, "their features": n_features or "n/a",
                    "ours": f"{mine['set']} ({mine['features']})", "ours (s)": t,
                    "speed-up": f"{seconds / t:.1f}x", "source": source})
    for other in others:
        # pictologics: also against the same feature families and aggregations (apples to apples)
        mine_sets = ["full 3D set"] + ([COMPARABLE_NAME] if "pictologics" in other["tool"] else [])
        if other["tool"].startswith("pysera"):  # PySERA computes all 557: compare with the same set
            mine_sets = ["all 557"]
        for set_name in mine_sets:
            if set_name not in ours:
                continue
            t = float(ours[set_name]["lesion 1 (s)"])
            out.append({"reference": other["tool"] + " (measured here)", "their figure (s)": other["lesion 1 (s)"],
                        "their features": other["features"], "ours": f"{set_name} ({ours[set_name]['features']})",
                        "ours (s)": t, "speed-up": f"{other['lesion 1 (s)'] / t:.1f}x",
                        "their cold, 1st process (s)": other["cold, 1st process (s)"],
                        "their cold, 2nd process (s)": other["cold, 2nd process (s)"],
                        "ours cold (s)": colds.get(set_name, "n/a"),
                        "source": "this run, same case"})
    return out


def profile(image: Image, labels: np.ndarray, set_name: str) -> None:
    """cProfile 3 warm runs of one set on one thread (cProfile sees only its own thread)."""
    comparable = set_name == COMPARABLE_NAME
    settings = dict(feature_sets())["all 557" if comparable else set_name]
    specs = comparable_specs() if comparable else None
    mask = labels == 1
    extract_roi(image, mask, settings, specs=specs, threads=1)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(3):
        extract_roi(image, mask, settings, specs=specs, threads=1)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


# ---------------------------------------------------------------------------------------------
# Worker scaling (issue 10): process_batch with 1 and 2 worker processes
# ---------------------------------------------------------------------------------------------
def _peak_mb_of(pid: int) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def section_worker_scaling(image: Image, labels: np.ndarray, n_cases: int) -> List[Dict[str, object]]:
    """``process_batch`` over ``n_cases`` copies of the lesion-1 case: in-process (the engine's
    threads per ROI), and pools of 1 and 2 workers (one thread per ROI each). A pool of one is
    forced with a huge ``case_timeout``; workers are kept (``max_tasks_per_child=None``) so that
    each one's peak memory can be read between its cases."""
    import shutil

    from PySERASlicerLib import process_batch

    settings = dict(feature_sets())["full 3D set"]
    rows: List[Dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="pysera_bench_workers_") as folder:
        images, masks = Path(folder) / "images", Path(folder) / "masks"
        images.mkdir()
        masks.mkdir()
        image_path, mask_path = write_case_nifti(image, labels, Path(folder))
        for index in range(n_cases):
            shutil.copyfile(image_path, images / f"case{index:02d}.nii.gz")
            shutil.copyfile(mask_path, masks / f"case{index:02d}.nii.gz")
        seconds: Dict[str, float] = {}
        for label, workers, pool in (("in this process", 1, False), ("pool of 1 worker", 1, True),
                                     ("pool of 2 workers", 2, True)):
            peaks: Dict[int, float] = {}

            def sample(event: Dict[str, object], peaks: Dict[int, float] = peaks) -> None:
                pid = event.get("pid")
                if isinstance(pid, int) and pid != os.getpid():
                    peaks.setdefault(pid, 0.0)
                for known in peaks:
                    peaks[known] = max(peaks[known], _peak_mb_of(known) or 0.0)

            start = time.perf_counter()
            result = process_batch(str(images), str(masks), output_path=None,
                                   settings=settings.replace(num_workers=workers, enable_parallelism=True),
                                   case_timeout=1e9 if pool else None, max_tasks_per_child=None,
                                   progress_fn=sample)
            seconds[label] = time.perf_counter() - start
            if result["processed_files"] != n_cases:
                raise RuntimeError(f"{label}: {result['processed_files']} of {n_cases} cases ({result['error']})")
            rows.append({"run": f"{n_cases} cases, {label}", "total (s)": seconds[label],
                         "per case (s)": seconds[label] / n_cases,
                         "peak RSS per worker (MB)": ", ".join(f"{v:.0f}" for v in peaks.values()) or "-"})
    rows.append({"run": "speed-up, pool of 2 over pool of 1",
                 "total (s)": f"{seconds['pool of 1 worker'] / seconds['pool of 2 workers']:.2f}x"})
    rows.append({"run": "speed-up, pool of 2 over in this process",
                 "total (s)": f"{seconds['in this process'] / seconds['pool of 2 workers']:.2f}x"})
    return rows


# ---------------------------------------------------------------------------------------------
# --dask: the local process pool against a Dask LocalCluster (issue 11)
# ---------------------------------------------------------------------------------------------
def section_dask(image: Image, labels: np.ndarray, n_cases: int, n_workers: int,
                 repeats: int) -> List[Dict[str, object]]:
    """Wall time of ``process_batch`` (outputs written) on ``n_cases`` cases: the local pool
    (fresh worker processes each run, as in real use) and a running LocalCluster (warm workers).
    The two alternate, run by run, so that a change in the machine's load hits both alike; the
    mean time inside a case (``case_end`` seconds) tells compute from overhead."""
    import logging

    from distributed import LocalCluster
    from PySERASlicerLib import process_batch

    settings = dict(feature_sets())["full 3D set"].replace(num_workers=n_workers)
    walls: Dict[str, List[float]] = {"pool": [], "dask": []}
    in_case: Dict[str, List[float]] = {"pool": [], "dask": []}
    with tempfile.TemporaryDirectory(prefix="pysera_bench_dask_") as folder:
        image_path, mask_path = write_case_nifti(image, labels, Path(folder))
        cases_csv = Path(folder) / "cases.csv"
        cases_csv.write_text("case_id,image,mask\n" + "".join(
            f"case{i:03d},{image_path},{mask_path}\n" for i in range(n_cases)))
        start = time.perf_counter()
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster:
            cluster_start = time.perf_counter() - start
            options = {"pool": {}, "dask": {"scheduler": cluster.scheduler_address}}
            for run in range(repeats + 1):  # run 0 warms up both
                for name in ("pool", "dask"):
                    seconds: List[float] = []
                    start = time.perf_counter()
                    result = process_batch(output_path=str(Path(folder) / f"out_{name}_{run}"),
                                           cases_csv=str(cases_csv), settings=settings, **options[name],
                                           progress_fn=lambda e, s=seconds: s.append(e["seconds"])
                                           if e["event"] == "case_end" else None)
                    wall = time.perf_counter() - start
                    if result["processed_files"] != n_cases:
                        raise RuntimeError(f"process_batch failed: {result['error']}")
                    if run:
                        walls[name].append(wall)
                        in_case[name].append(statistics.mean(seconds))
    pool, dask = statistics.median(walls["pool"]), statistics.median(walls["dask"])
    rows: List[Dict[str, object]] = []
    for name, label, seconds in (
            ("pool", f"local pool, {n_workers} worker processes (spawned by each run)", pool),
            ("dask", f"Dask LocalCluster, {n_workers} single-threaded worker processes (running)", dask)):
        rows.append({"run": label, "cases": n_cases, "total (s)": seconds, "per case (s)": seconds / n_cases,
                     "mean time inside a case (s)": statistics.median(in_case[name])})
    overhead = (dask - pool) / n_cases
    rows.append({"run": "Dask overhead per case (Dask - pool)", "per case (s)": overhead,
                 "total (s)": f"{100 * overhead / (pool / n_cases):+.1f} %"})
    rows.append({"run": "LocalCluster start-up (once, not in the figures above)", "total (s)": cluster_start})
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="warm runs per figure (median)")
    parser.add_argument("--profile", metavar="SET", help="cProfile one feature set (e.g. 'all 557') and stop")
    parser.add_argument("--deep", metavar="MODEL[,MODEL]", help="also time these deep models (random weights)")
    parser.add_argument("--quick", action="store_true", help="only the three main sets; no batch, cold run")
    parser.add_argument("--pictologics-python", metavar="PATH",
                        help="a Python (>= 3.12) with pictologics installed: time it on the same case")
    parser.add_argument("--pyradiomics-python", metavar="PATH",
                        help="a Python with pyradiomics installed: time it on the same case")
    parser.add_argument("--pysera-python", metavar="PATH",
                        help="a Python with pysera 2.1.5 installed: time it on the same case (all 557 features)")
    parser.add_argument("--roi-threads", type=int, metavar="N",
                        help="threads per ROI (sets PYSERA_ROI_THREADS; default: the engine's, min(2, cores))")
    parser.add_argument("--first-ever-cold", action="store_true",
                        help="also time each competitor's first-ever process (empty numba cache: pictologics "
                             "compiles every kernel, minutes)")
    parser.add_argument("--others-only", action="store_true", help="only time the competitors (needs the paths)")
    parser.add_argument("--worker-scaling", type=int, nargs="?", const=20, metavar="N_CASES",
                        help="only time process_batch on N_CASES (default 20) cases with 1 and 2 worker processes")
    parser.add_argument("--dask", action="store_true",
                        help="only compare the local pool with a Dask LocalCluster (needs PySERASlicerLib[dask])")
    parser.add_argument("--dask-cases", type=int, default=40, metavar="N", help="--dask: number of cases")
    parser.add_argument("--dask-workers", type=int, default=2, metavar="N", help="--dask: worker processes")
    args = parser.parse_args(argv)

    if args.roi_threads:
        os.environ["PYSERA_ROI_THREADS"] = str(args.roi_threads)
    image, labels = synthetic_case()
    if args.profile:
        profile(image, labels, args.profile)
        return
    if args.worker_scaling:
        print(f"# Worker scaling, {datetime.datetime.now():%Y-%m-%d %H:%M}; machine: {machine()}; "
              f"load average before: {os.getloadavg()[0]:.2f}\n")
        print(markdown_table(section_worker_scaling(image, labels, args.worker_scaling)))
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
        return
    if args.dask:
        print(f"# PySERASlicer: local pool vs Dask LocalCluster, {datetime.datetime.now():%Y-%m-%d %H:%M}\n")
        print(f"Machine: {machine()}. process_batch, full 3D set, the case above with its lesion 1 as each case, "
              f"outputs written; median of {args.repeats} runs after a warm-up run, pool and Dask runs "
              "alternating.\n")
        print(markdown_table(section_dask(image, labels, args.dask_cases, args.dask_workers, args.repeats)))
        return
    print(f"# PySERASlicer benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}\n")
    from PySERASlicerLib.engine.pipeline import default_threads

    print(f"Machine: {machine()}; threads per ROI: {default_threads()}\n")
    print(f"Case: {SHAPE[::-1]} voxels (i, j, k), spacing {SPACING} mm; lesion 1 {(labels == 1).sum()} voxels, "
          f"lesion 2 {(labels == 2).sum()} voxels; FBS 25 HU, range [-1000, 400], no interpolation. "
          f"Warm figures: median of {args.repeats} runs after a warm-up run.\n")
    names = ("full 3D set", "all 557", "non-texture set", COMPARABLE_NAME) if args.quick or args.others_only else None
    if args.others_only:
        args.quick = True
    rows = section_handcrafted(image, labels, args.repeats, names)
    print("## extract_roi per lesion\n")
    print(markdown_table(rows))
    summary: List[Dict[str, object]] = []
    if not args.quick:
        summary.append(section_batch(image, labels, args.repeats))
        cold, imports, first_call, cold_peak = section_cold()
        summary.append({"set": "cold: fresh process, full 3D set, lesion 1 (start-up + imports + 1st call)",
                        "total (s)": cold, "engine imports (s)": imports, "first extract_roi call (s)": first_call,
                        "peak memory (MB)": f"{cold_peak:.0f}"})
    others, notes = section_others(image, labels, args.repeats, {"pictologics": args.pictologics_python,
                                                                   "pyradiomics": args.pyradiomics_python,
                                                                   "pysera": args.pysera_python},
                                   args.first_ever_cold)
    colds: Dict[str, float] = {}
    if others:
        for name in (["full 3D set"] + ([COMPARABLE_NAME] if any("pictologics" in o["tool"] for o in others) else [])
                     + (["all 557"] if any(o["tool"].startswith("pysera") for o in others) else [])):
            colds[name] = section_cold(name)[0]
            summary.append({"set": f"cold: fresh process, {name}, lesion 1", "total (s)": colds[name]})
    summary.append({"set": "this benchmark process (case building and every run above)",
                    "peak memory (MB)": f"{own_peak_mb():.0f}"})
    print("\n## End to end, cold start, memory\n")
    print(markdown_table(summary))
    if args.deep:
        print("\n## Deep features (RANDOM weights: seconds per ROI, speed only)\n")
        print(markdown_table(section_deep([m.strip() for m in args.deep.split(",") if m.strip()])))
    print("\n## Against published figures\n")
    print(markdown_table(reference_rows(rows, others, colds)))
    if others:
        print("\nCold: a fresh interpreter process, start-up + imports + set-up + the first extraction "
              "(file reading / case building excluded). A competitor's 1st process (--first-ever-cold) runs "
              "with an empty NUMBA_CACHE_DIR (every numba kernel compiled), its 2nd process with the cache the "
              "1st wrote, or without --first-ever-cold with its own filled cache (pictologics declares its "
              "kernels cache=True); its table row above is the warm run.")
    for note in notes:
        print(f"\n* {note}")


if __name__ == "__main__":
    main()

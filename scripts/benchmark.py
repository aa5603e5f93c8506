"""Speed and memory benchmark of PySERASlicer against its peers (run by hand, not in CI).

Case: a deterministic synthetic CT of 256 x 256 x 64 int16 voxels (spacing 0.8 x 0.8 x 2.5 mm)
with a ~32,000-voxel lesion (label 1) and a ~500-voxel lesion (label 2); FBS 25 HU, range
[-1000, 400] HU, no interpolation. docs/speed.md explains every measure; in short:

* ``extract_roi`` per lesion (warm, median of ``--repeats``): the full 3D set (dimensions
  "1st,3d", all categories), all 557 features, the non-texture set, the pictologics-comparable
  set (the 170 features of pictologics' default families, :func:`comparable_specs`), and with
  ``--all-sets`` each family alone;
* per case in a batch: one ``process_batch`` over ``--cases`` copies of the case (NIfTI folders,
  1 worker, Excel/CSV report), for the full 3D set and for all 557 features;
* one case in a fresh process (``process_batch`` on the two files, imports included) and the
  import of the package;
* ``--pictologics-python`` / ``--pyradiomics-python`` / ``--pysera-python PATH``: the peer, in a
  subprocess of its own interpreter (scratch venvs, never project dependencies), on the same files:
  warm extraction, its read + extract call in a loop over the batch's files, and its cold process;
* the figures compared with a peer are measured in ``--rounds`` rounds (default 3), ours and each
  peer back to back in each round; each figure is the median over the rounds and each ratio the
  median of the rounds' ratios (with their range), so that a change of load on a shared machine
  hits both sides of a ratio alike;
* cost against ROI size: ROIs of 1 k, 10 k, 100 k and 1 M voxels in a 512 x 512 x 400 CT, one fresh
  process each (time, peak memory), drawn to docs/benchmark_scaling.png with matplotlib from
  ``--plot-python`` (a benchmark venv; ``--no-scaling`` skips it);
* a closing table of the issue-14 targets, ours next to the peers from the same run, each with
  the load average when it was taken (the machine may be shared).
* ``--worker-scaling [N]`` (only this section, then stop): ``process_batch`` on N copies (default
  20) of the lesion-1 case as NIfTI files: in this process, then in a pool of 1 and of 2 worker
  processes; seconds, speed-up of 2 workers over 1, and each worker's peak resident memory
  (``VmHWM``, read while it waits for its next case);
* ``--dask``: only this section (issue 11): ``process_batch`` on ``--dask-cases`` cases (default 40,
  the case above and its lesion 1 written once as NIfTI, the full 3D set) with ``--dask-workers``
  (default 2) in the local process pool and on a Dask ``LocalCluster`` of as many single-threaded
  worker processes (started beforehand; its start-up is reported apart); overhead per case.

Usage::

    .venv/bin/python scripts/benchmark.py --plot-python .bench-venvs/plot/bin/python \
        --pictologics-python .bench-venvs/pictologics/bin/python \
        --pyradiomics-python .bench-venvs/pyradiomics39/bin/python
    .venv/bin/python scripts/benchmark.py --profile "full 3D set"    # cProfile one set and stop
    .venv/bin/python scripts/benchmark.py --dask --repeats 3         # local pool vs Dask LocalCluster
"""

from __future__ import annotations

import argparse
import contextlib
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "PySERASlicer"))

from PySERASlicerLib.engine.pipeline import extract_roi  # noqa: E402
from PySERASlicerLib.image import Image  # noqa: E402
from PySERASlicerLib.settings import CATEGORIES, RoiSettings, Settings  # noqa: E402

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
cases = json.load(open(sys.argv[5])) if len(sys.argv) > 5 else []
if tool == "pysera":
    # PySERA 2.1.5's own entry point (it reads the files itself: reading is in its figures); all
    # 557 features, FBS 25 HU, range [-1000, 400], one process, no resampling
    import tempfile
    import pysera
    from importlib.metadata import version as _version
    version = _version("pysera")
    out_folder = tempfile.mkdtemp(prefix="pysera_bench_out_")
    ibsi = {"radiomics_DataType": "CT", "radiomics_isReSegRng": 1, "radiomics_ReSegIntrvl01": -1000,
            "radiomics_ReSegIntrvl02": 400}
    def load(image_file, mask_file):
        return image_file, mask_file
    def prepare(data):
        return data
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
    def load(image_file, mask_file):
        return sitk.ReadImage(image_file), sitk.ReadImage(mask_file)
    def prepare(data):
        return data
    def run(data):
        result = extractor.execute(data[0], data[1], label=1)
        return sum(1 for key in result if not key.startswith("diagnostics"))
else:
    import pictologics
    from pictologics import RadiomicsPipeline, load_image
    version = pictologics.__version__
    def load(image_file, mask_file):
        return load_image(image_file), load_image(mask_file)
    pipeline = RadiomicsPipeline()
    # its default feature families (intensity, morphology, texture, histogram, IVH; spatial and
    # local intensity off by default), FBS 25 HU from -1000 HU, range [-1000, 400], no resampling
    steps = [{"step": "resegment", "params": {"range_min": -1000.0, "range_max": 400.0}},
             {"step": "discretise", "params": {"method": "FBS", "bin_width": 25.0, "min_val": -1000.0}},
             {"step": "extract_features", "params": {}}]
    pipeline.add_config("bench", steps)
    import copy
    def prepare(data):
        # fresh copies (made outside the timing) so that no cache keyed on the objects can help
        return copy.deepcopy(data[0]), copy.deepcopy(data[1])
    def run(data):
        series = pipeline.run(data[0], data[1], config_names=["bench"])["bench"]
        return int(series.notna().sum())
read_start = time.perf_counter()
loaded = load(image_path, mask_path)
read = time.perf_counter() - read_start
data = prepare(loaded)
start = time.perf_counter()
setup = start - snippet_start
n_features = run(data)
first = time.perf_counter() - start
times = []
for _ in range(repeats):
    data = prepare(loaded)
    start = time.perf_counter()
    run(data)
    times.append(time.perf_counter() - start)
batch = []
for _ in range(repeats and 2):  # a batch as a user's loop: read each case's files, extract
    start = time.perf_counter()
    for image_file, mask_file in cases:
        run(load(image_file, mask_file))
    batch.append((time.perf_counter() - start) / max(len(cases), 1))
print(json.dumps({"tool": tool, "version": version, "features": n_features,
                  "seconds": statistics.median(times) if times else None, "first": first,
                  "read": read, "setup": setup, "batch_per_case": min(batch) if cases and batch else None}))
"""


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


def gzip_decoder_name() -> str:
    """Which decoder inflates the cases' .nii.gz files (the optional ``fast`` extra, or zlib)."""
    from PySERASlicerLib.io.readers import whole_gzip_decoder

    if whole_gzip_decoder() is None:
        return "zlib (ITK's NIfTI reader)"
    from importlib.metadata import version

    return f"libdeflate (deflate {version('deflate')}, the fast extra)"


@contextlib.contextmanager
def zlib_decoder():
    """.nii.gz files inflated by zlib / ITK, as in Slicer's Python without the ``fast`` extra."""
    from PySERASlicerLib.io.readers import GZIP_DECODER_ENV

    before = os.environ.get(GZIP_DECODER_ENV)
    os.environ[GZIP_DECODER_ENV] = "zlib"
    try:
        yield
    finally:
        if before is None:
            del os.environ[GZIP_DECODER_ENV]
        else:
            os.environ[GZIP_DECODER_ENV] = before


def markdown_table(rows: List[Dict[str, object]]) -> str:
    keys: List[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{row[k]:.3f}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def load_average() -> str:
    """The 1-minute load average (``uptime``), printed with each figure: the machine is shared."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def write_nifti(array: np.ndarray, spacing, path: Path) -> Path:
    import SimpleITK as sitk

    itk = sitk.GetImageFromArray(array)
    itk.SetSpacing(tuple(float(s) for s in spacing))
    sitk.WriteImage(itk, str(path))
    return path


def write_case_nifti(image: Image, labels: np.ndarray, folder: Path) -> Tuple[Path, Path]:
    """The case as NIfTI: the image and the lesion-1 mask (0/1, uint8)."""
    return (write_nifti(image.array, image.spacing, folder / "image.nii.gz"),
            write_nifti((labels == 1).astype(np.uint8), image.spacing, folder / "mask_lesion1.nii.gz"))


def write_case_folders(image: Image, labels: np.ndarray, folder: Path, n_cases: int) -> List[Tuple[str, str]]:
    """``n_cases`` copies of the case (image + lesion-1 mask, NIfTI) as PySERA's folder pair
    ``images/caseNN.nii.gz`` / ``masks/caseNN.nii.gz``; returns the (image, mask) paths."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    lesion = (labels == 1).astype(np.uint8)
    pairs = []
    for index in range(n_cases):
        name = f"case{index:02d}.nii.gz"
        pairs.append((str(write_nifti(image.array, image.spacing, folder / "images" / name)),
                      str(write_nifti(lesion, image.spacing, folder / "masks" / name))))
    return pairs


def batch_settings(set_name: str) -> Settings:
    return dict(feature_sets())[set_name].replace(enable_parallelism=False, num_workers=1)


def batch_runner(folder: Path, set_name: str, n_cases: int, features: Sequence[str] = ()) -> Callable[[], float]:
    """A function that runs one ``process_batch`` over the folder pair (1 worker, in this process,
    the Excel/CSV report written) and returns its seconds per case; a warm-up batch is run first.
    ``features``: only those (``features=``), e.g. pictologics' 170."""
    from PySERASlicerLib import process_batch

    settings = batch_settings(set_name).replace(features=tuple(features))

    def run() -> float:
        start = time.perf_counter()
        result = process_batch(str(folder / "images"), str(folder / "masks"), output_path=str(folder / "out"),
                               temporary_files_path=str(folder / "tmp"), settings=settings)
        seconds = (time.perf_counter() - start) / n_cases
        if not result["success"] or result["error"] or len(result["features_extracted"]) != n_cases:
            raise RuntimeError(f"process_batch failed: {result['error']}")
        return seconds

    run()
    return run


#: One case in a fresh interpreter, as a user's script: import, ``process_batch`` on the two
#: files (features returned as a DataFrame, no output files), print the wall time from the first line.
COLD_CASE_SNIPPET = """
import time
start = time.perf_counter()
import sys
sys.path.insert(0, {src!r})
from PySERASlicerLib import process_batch
result = process_batch({image!r}, {mask!r}, output_path=None, temporary_files_path=None,
                       categories="all", dimensions="1st,3d", num_workers=1, enable_parallelism=False,
                       IBSI_based_parameters={{"radiomics_BinSize": 25, "radiomics_isReSegRng": 1,
                                               "radiomics_ReSegIntrvl01": -1000, "radiomics_ReSegIntrvl02": 400}})
assert result["success"] and len(result["features_extracted"].columns) > 280, result["error"]
print(time.perf_counter() - start)
"""
#: Importing the package in a fresh interpreter (numpy included, as a user meets it).
IMPORT_SNIPPET = """
import time
start = time.perf_counter()
import sys
sys.path.insert(0, {src!r})
import PySERASlicerLib
print(time.perf_counter() - start)
"""


def byte_compile_package() -> None:
    """Byte-compile the package as an installed one is (pip, or Python on first import), so that a
    fresh process reads .pyc files like the peers' site-packages do, even where
    PYTHONDONTWRITEBYTECODE is set."""
    import compileall

    compileall.compile_dir(str(ROOT / "PySERASlicer" / "PySERASlicerLib"), quiet=1)
    compileall.compile_file(str(ROOT / "scripts" / "benchmark.py"), quiet=1)


def fresh_process_seconds(code: str, runs: int) -> Tuple[float, float, List[float]]:
    """(median wall time of the whole process, median figure it prints, every wall time) over
    ``runs`` fresh interpreters."""
    byte_compile_package()
    walls, inner = [], []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"fresh process failed: {done.stderr.strip().splitlines()[-3:]}")
        inner.append(float(done.stdout.split()[-1]))
    return statistics.median(walls), statistics.median(inner), walls


COLD_EXTRACT_SNIPPET = """
import sys, time
start = time.perf_counter()
sys.path.insert(0, {src!r}); sys.path.insert(0, {scripts!r})
from PySERASlicerLib.engine.pipeline import extract_roi
imports = time.perf_counter() - start
import benchmark
image, labels = benchmark.synthetic_case()
start = time.perf_counter()
extract_roi(image, labels == 1, dict(benchmark.feature_sets())["full 3D set"])
print(imports, time.perf_counter() - start, benchmark.own_peak_mb())
"""


def section_cold_extract() -> Tuple[float, float, float]:
    """``(imports, first_call, peak_mb)`` of a fresh interpreter that imports the engine and runs
    one ``extract_roi`` (full 3D set, lesion 1) on the case built in memory."""
    code = COLD_EXTRACT_SNIPPET.format(src=str(ROOT / "PySERASlicer"), scripts=str(ROOT / "scripts"))
    byte_compile_package()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    imports, first_call, peak = (float(x) for x in out.stdout.split()[-3:])
    return imports, first_call, peak




@dataclass
class Round:
    """One round of :func:`section_rounds`: tool -> figure -> seconds, and the load at its end."""

    figures: Dict[str, Dict[str, float]]
    load: float


def section_rounds(image: Image, labels: np.ndarray, folder: Path, pairs: List[Tuple[str, str]], repeats: int,
                   rounds: int, interpreters: Dict[str, Optional[str]],
                   first_ever_cold: bool = False) -> Tuple[List[Round], Dict[str, Dict[str, object]], List[str]]:
    """The figures compared with the peers, measured in ``rounds`` rounds. In each round ours and
    then each peer (``interpreters``: tool -> python path) are measured back to back on the same
    files: per case of a batch over ``pairs`` (the best of two), one fresh process for one case, and warm extraction
    (median of ``repeats``; ours: the 170-feature set and the full 3D set). A change of the
    machine's load then hits both sides of a round alike, and each ratio is taken round by round
    (:func:`paired_ratios`) instead of between figures taken minutes apart.

    Returns (the rounds, per tool: version / features / first-run figures, notes). Ours have
    two more figures than the peers: ``batch_per_case_170`` and ``seconds_170`` (pictologics'
    170 features), compared with the peers' ``batch_per_case`` and ``seconds``. PySERA 2.1.5
    (``pysera``: ~20 s a case) is run once, warm, outside the rounds.
    """
    mask = labels == 1
    settings = dict(feature_sets())["all 557"]
    specs = comparable_specs()
    full_3d = dict(feature_sets())["full 3D set"]
    cold_code = COLD_CASE_SNIPPET.format(src=str(ROOT / "PySERASlicer"), image=pairs[0][0], mask=pairs[0][1])
    batch = batch_runner(folder, "full 3D set", len(pairs))
    batch_170 = batch_runner(folder, "full 3D set", len(pairs), [spec.tag for spec in specs])
    cases_file = folder / "cases.json"
    cases_file.write_text(json.dumps(pairs))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    peers = {tool: python for tool, python in interpreters.items() if python and tool != "pysera"}
    meta: Dict[str, Dict[str, object]] = {}
    notes = [f"{tool}: not measured (pass --{tool}-python PATH, an interpreter with {tool} installed)"
             for tool, python in interpreters.items() if not python]
    failed: set = set()
    per_round: List[Round] = []
    for _ in range(rounds):
        figures: Dict[str, Dict[str, float]] = {"ours": {
            "seconds_170": time_call(lambda: extract_roi(image, mask, settings, specs=specs), repeats),
            "seconds": time_call(lambda: extract_roi(image, mask, full_3d), repeats),
            "batch_per_case": min(batch(), batch()),  # the best of two batches, as the peers' loops
            "batch_per_case_170": min(batch_170(), batch_170()),
            "cold": fresh_process_seconds(cold_code, 1)[0]}}
        for tool, python in peers.items():
            if tool in failed:
                continue
            warm = _run_competitor(python, tool, pairs[0][0], pairs[0][1], repeats, folder, env, cases_file)
            cold = _run_competitor(python, tool, pairs[0][0], pairs[0][1], 0, folder, env)
            problem = next((r for r in (warm, cold) if isinstance(r, str)), None)
            if problem is not None:
                notes.append(f"{tool}: the run with {python} failed: {problem}")
                failed.add(tool)
                continue
            meta.setdefault(tool, warm[0])
            figures[tool] = {"batch_per_case": warm[0]["batch_per_case"], "cold": cold[1],
                             "seconds": warm[0]["seconds"]}
        per_round.append(Round(figures, os.getloadavg()[0]))
    if interpreters.get("pysera"):
        warm = _run_competitor(interpreters["pysera"], "pysera", pairs[0][0], pairs[0][1], 1, folder, env)
        if isinstance(warm, str):
            notes.append(f"pysera: the run with {interpreters['pysera']} failed: {warm}")
        else:
            meta["pysera"] = warm[0]
    if first_ever_cold:
        for tool, python in peers.items():
            # an empty numba cache folder: every kernel compiled (minutes for pictologics)
            with tempfile.TemporaryDirectory(prefix="pysera_bench_numba_") as numba_cache:
                first = _run_competitor(python, tool, pairs[0][0], pairs[0][1], 0, folder,
                                        {**env, "NUMBA_CACHE_DIR": numba_cache})
            if tool in meta:
                meta[tool]["first_ever_cold"] = first[1] if not isinstance(first, str) else float("nan")
    return per_round, meta, notes


def round_rows(per_round: List[Round]) -> List[Dict[str, object]]:
    """One row per round: each tool's figures (seconds) and the load at the round's end."""
    names = {"batch_per_case": "per case", "batch_per_case_170": "per case, 170", "cold": "fresh process",
             "seconds_170": "warm 170", "seconds": "warm default"}
    rows = []
    for index, one in enumerate(per_round, 1):
        row: Dict[str, object] = {"round": index, "load": f"{one.load:.2f}"}
        for tool, values in one.figures.items():
            row.update({f"{tool}: {label}": f"{values[figure]:.3f}" for figure, label in names.items()
                        if figure in values})
        rows.append(row)
    return rows


def round_median(per_round: List[Round], tool: str, figure: str) -> Optional[float]:
    """The median over the rounds of one tool's figure (None when it was not measured)."""
    values = [r.figures[tool][figure] for r in per_round if r.figures.get(tool, {}).get(figure) is not None]
    return statistics.median(values) if values else None


def paired_ratios(per_round: List[Round], tool: str, figure: str, theirs: Optional[str] = None) -> List[float]:
    """Ours / the peer's figure (``theirs``, default the same one), round by round (both measured
    within seconds of each other)."""
    theirs = theirs or figure
    return [r.figures["ours"][figure] / r.figures[tool][theirs] for r in per_round
            if r.figures.get(tool, {}).get(theirs) and r.figures["ours"].get(figure) is not None]


def _run_competitor(python: str, tool: str, image_path: str, mask_path: str, repeats: int, folder: Path,
                    env: Dict[str, str], cases_file: Optional[Path] = None):
    """``(result, wall)`` of one run of :data:`COMPETITOR_SNIPPET` (wall: the whole process,
    interpreter start-up, imports, reading, set-up and the first extraction when ``repeats`` is 0),
    or the error text."""
    command = [os.path.abspath(python), "-", tool, str(image_path), str(mask_path), str(repeats)]
    if cases_file is not None:
        command.append(str(cases_file))
    start = time.perf_counter()
    done = subprocess.run(command, input=COMPETITOR_SNIPPET, capture_output=True, text=True, cwd=folder, env=env)
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
    return json.loads(lines[-1]), wall


# ---------------------------------------------------------------------------------------------
# Cost against ROI size
# ---------------------------------------------------------------------------------------------
SCALING_SHAPE = (400, 512, 512)  # (k, j, i): a 512 x 512 x 400 CT
SCALING_SPACING = (0.8, 0.8, 1.0)  # (i, j, k) mm
SCALING_VOXELS = (1_000, 10_000, 100_000, 1_000_000)


def scaling_case(folder: Path, sizes: Sequence[int] = SCALING_VOXELS) -> Tuple[str, Dict[int, Tuple[str, int]]]:
    """A 512 x 512 x 400 int16 CT (uncompressed NIfTI, 210 MB) and one mask per ROI size: a
    wobbly sphere of about ``size`` voxels at the centre (NIfTI .gz, 0/1). Built slab by slab so
    that building it stays well below the engine's own memory."""
    rng = np.random.default_rng(7)
    n_k, n_j, n_i = SCALING_SHAPE
    si, sj, sk = SCALING_SPACING
    j, i = np.ogrid[:n_j, :n_i]
    body = ((j - n_j / 2) / (0.43 * n_j)) ** 2 + ((i - n_i / 2) / (0.47 * n_i)) ** 2 <= 1.0
    image = np.empty(SCALING_SHAPE, dtype=np.int16)
    for k in range(n_k):
        image[k] = np.where(body, 40, -1000) + rng.integers(-30, 31, (n_j, n_i), dtype=np.int16)
    centre = np.array([n_k / 2, n_j / 2, n_i / 2])
    largest = max(sizes)
    radius_mm = (3 * largest * si * sj * sk / (4 * np.pi)) ** (1 / 3) * 1.1
    half = np.ceil(radius_mm / np.array([sk, sj, si])).astype(int) + 2
    box = tuple(slice(int(c - h), int(c + h)) for c, h in zip(centre, half))
    kk, jj, ii = np.ogrid[box]
    dist = np.sqrt(((kk - centre[0]) * sk) ** 2 + ((jj - centre[1]) * sj) ** 2 + ((ii - centre[2]) * si) ** 2)
    angle = np.arctan2((jj - centre[1]) * sj, (ii - centre[2]) * si)
    shape_factor = 1 + 0.08 * np.sin(3 * angle) * np.cos(kk * sk / 7.0)
    texture = ndimage.gaussian_filter(rng.normal(0, 80, dist.shape), 1.2)
    image[box] = np.where(dist <= radius_mm * shape_factor, np.clip(np.rint(45 + texture), -1000, 3000),
                          image[box]).astype(np.int16)
    image_path = write_nifti(image, SCALING_SPACING, folder / "ct_512x512x400.nii")
    del image
    masks = {}
    relative = np.sort((dist / shape_factor).ravel())  # voxels ordered by their scaled radius
    mask = np.zeros(SCALING_SHAPE, dtype=np.uint8)
    for size in sizes:
        threshold = relative[size - 1]
        mask[box] = dist / shape_factor <= threshold
        masks[size] = (str(write_nifti(mask, SCALING_SPACING, folder / f"mask_{size}.nii.gz")), int(mask.sum()))
    return str(image_path), masks


#: One ROI size in a fresh interpreter: ``process_batch`` on the CT and the mask (full 3D set, one
#: worker, no output files): its wall time (interpreter start-up included) and the peak resident
#: memory; then the ROI's extraction alone, timed on its own (the files read again, the engine
#: warm, no background work of the batch running beside it).
SCALING_SNIPPET = """
import time
start = time.perf_counter()
import sys
sys.path.insert(0, {src!r}); sys.path.insert(0, {scripts!r})
from PySERASlicerLib import process_batch
import benchmark
settings = benchmark.batch_settings("full 3D set").replace(rois=benchmark.single_roi())
result = process_batch({image!r}, {mask!r}, output_path=None, temporary_files_path=None, settings=settings)
assert result["success"] and len(result["features_extracted"]) == 1, result["error"]
total, peak = time.perf_counter() - start, benchmark.own_peak_mb()
from PySERASlicerLib.engine.pipeline import extract_roi
from PySERASlicerLib.io.readers import read_image, read_mask
from PySERASlicerLib.rois import discover_rois
image = read_image({image!r})
roi = discover_rois(read_mask({mask!r}, image), settings.rois).rois[0]
boxed = hasattr(roi, "box")  # ROIs carry their box since issue 14
start = time.perf_counter()
extract_roi(image, roi.box_mask if boxed else roi.mask, settings, **({{"box": roi.box}} if boxed else {{}}))
print(total, time.perf_counter() - start, peak)
"""


def single_roi() -> RoiSettings:
    """ROI settings that keep the one lesion of a mask as it is (one ROI, no size filter)."""
    return RoiSettings(min_roi_volume=1, roi_num=1)


def section_scaling(folder: Path, sizes: Sequence[int] = SCALING_VOXELS) -> List[Dict[str, object]]:
    image_path, masks = scaling_case(folder, sizes)
    byte_compile_package()
    rows = []
    for mask_path, voxels in masks.values():
        load = load_average()
        code = SCALING_SNIPPET.format(src=str(ROOT / "PySERASlicer"), scripts=str(ROOT / "scripts"),
                                      image=image_path, mask=mask_path)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"scaling run ({voxels} voxels) failed: {done.stderr.strip().splitlines()[-3:]}")
        total, extraction, peak = (float(x) for x in done.stdout.split()[-3:])
        rows.append({"ROI voxels": voxels, "fresh process, total (s)": total, "extraction, warm (s)": extraction,
                     "extraction per voxel (us)": extraction / voxels * 1e6, "peak RSS (MB)": round(peak),
                     "load": load})
    return rows


#: Draws the curve from the JSON rows given on stdin (run by an interpreter that has matplotlib).
PLOT_SNIPPET = r"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows, path, title = json.load(sys.stdin)
voxels = [r["ROI voxels"] for r in rows]
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.loglog(voxels, [r["extraction, warm (s)"] for r in rows], "o-", label="extraction of the ROI (warm)")
left.loglog(voxels, [r["fresh process, total (s)"] for r in rows], "s--", label="fresh process, total")
scale = rows[-2]["extraction, warm (s)"] / voxels[-2]
left.loglog(voxels, [v * scale for v in voxels], ":", color="grey", label="linear (through 100k)")
left.set_xlabel("ROI voxels"); left.set_ylabel("seconds"); left.grid(True, which="both", alpha=0.3)
left.legend(fontsize=8)
right.semilogx(voxels, [r["peak RSS (MB)"] for r in rows], "o-", color="tab:red")
right.axhline(1500, color="grey", ls=":", label="1.5 GB target")
right.set_xlabel("ROI voxels"); right.set_ylabel("peak RSS (MB)"); right.grid(True, which="both", alpha=0.3)
right.set_ylim(bottom=0); right.legend(fontsize=8)
fig.suptitle(title, fontsize=9)
fig.tight_layout()
fig.savefig(path, dpi=110)
"""


def plot_scaling(rows: List[Dict[str, object]], path: Path, plot_python: Optional[str], title: str) -> str:
    """Write the curve as a PNG with matplotlib, in ``plot_python`` (a benchmark venv; matplotlib is
    no dependency of the project) or in this interpreter if it has matplotlib."""
    python = plot_python or sys.executable
    done = subprocess.run([python, "-c", PLOT_SNIPPET], input=json.dumps([rows, str(path), title]),
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"no plot ({python}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'})"
    return f"curve written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"


def _ratio(ours: Optional[float], theirs: Optional[float], paired: Optional[Sequence[float]] = None) -> str:
    """Ours / theirs; with ``paired`` (the ratio of each round) their median and range instead."""
    if paired:
        text = f"{statistics.median(paired):.2f}"
        return text if len(paired) == 1 else f"{text} ({min(paired):.2f}–{max(paired):.2f}, {len(paired)} rounds)"
    if ours is None or theirs is None or not theirs or theirs != theirs:
        return "–"
    return f"{ours / theirs:.2f}"


def _cell(value: Optional[float], digits: int = 3) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def target_rows(measures: Dict[str, Dict[str, object]]) -> List[Dict[str, object]]:
    """One row per target of issue 14: ours, the peers from the same run (medians over the
    rounds), the ratio (the median of the rounds' ratios, and their range) and the target."""
    rows = []
    with_pysera = any("pysera" in m for m in measures.values())
    for name, m in measures.items():
        ours, pict, pyrad = m.get("ours"), m.get("pictologics"), m.get("pyradiomics")
        paired = m.get("paired", {})
        row = {"measure": name, "ours": _cell(ours, m.get("digits", 3)), "pictologics": _cell(pict),
               "pyradiomics": _cell(pyrad),
               "ours / pictologics": _ratio(ours, pict, paired.get("pictologics")),
               "ours / pyradiomics": _ratio(ours, pyrad, paired.get("pyradiomics"))}
        if with_pysera:
            row.update({"PySERA": _cell(m.get("pysera")), "ours / PySERA": _ratio(ours, m.get("pysera"))})
        rows.append({**row, "target": m["target"], "load": m.get("load", "")})
    return rows


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


def _cpu_seconds_and_parent_of(pid: int) -> Tuple[Optional[float], Optional[int]]:
    """(user + system CPU seconds so far, parent pid) of process ``pid`` from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None, None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[1])


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
        steady: Dict[str, float] = {}
        for label, workers, pool in (("in this process", 1, False), ("pool of 1 worker", 1, True),
                                     ("pool of 2 workers", 2, True)):
            peaks: Dict[int, float] = {}
            ends: List[float] = []
            # CPU seconds of every other process of the run (workers, the fork server), last sampled
            cpu: Dict[int, float] = {}

            def sample(event: Dict[str, object], peaks: Dict[int, float] = peaks, ends: List[float] = ends,
                       cpu: Dict[int, float] = cpu) -> None:
                pid = event.get("pid")
                if isinstance(pid, int) and pid != os.getpid():
                    peaks.setdefault(pid, 0.0)
                    parent = _cpu_seconds_and_parent_of(pid)[1]
                    if parent is not None and parent != os.getpid():
                        cpu.setdefault(parent, 0.0)  # the fork server
                for known in peaks:
                    peaks[known] = max(peaks[known], _peak_mb_of(known) or 0.0)
                for known in list(peaks) + list(cpu):
                    seconds = _cpu_seconds_and_parent_of(known)[0]
                    if seconds is not None:
                        cpu[known] = seconds
                if event["event"] == "case_end":
                    ends.append(time.perf_counter())

            start, own_cpu = time.perf_counter(), _own_cpu_seconds()
            result = process_batch(str(images), str(masks), output_path=None,
                                   settings=settings.replace(num_workers=workers, enable_parallelism=True),
                                   case_timeout=1e9 if pool else None, max_tasks_per_child=None,
                                   progress_fn=sample)
            seconds[label] = time.perf_counter() - start
            cpu_total = _own_cpu_seconds() - own_cpu + sum(cpu.values())
            if result["processed_files"] != n_cases:
                raise RuntimeError(f"{label}: {result['processed_files']} of {n_cases} cases ({result['error']})")
            # after the first result the workers are started: the rate at which results then come
            steady[label] = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else float("nan")
            rows.append({"run": f"{n_cases} cases, {label}", "total (s)": seconds[label],
                         "per case (s)": seconds[label] / n_cases,
                         "first result after (s)": ends[0] - start if ends else float("nan"),
                         "per case after the first result (s)": steady[label],
                         "CPU s per case, all processes": cpu_total / n_cases,
                         "cores busy": cpu_total / seconds[label],
                         "peak RSS per worker (MB)": ", ".join(f"{v:.0f}" for v in peaks.values()) or "-"})
    rows.append({"run": "speed-up, pool of 2 over pool of 1",
                 "total (s)": f"{seconds['pool of 1 worker'] / seconds['pool of 2 workers']:.2f}x"})
    rows.append({"run": "speed-up, pool of 2 over in this process",
                 "total (s)": f"{seconds['in this process'] / seconds['pool of 2 workers']:.2f}x"})
    rows.append({"run": "speed-up after the first result, pool of 2 over pool of 1",
                 "total (s)": f"{steady['pool of 1 worker'] / steady['pool of 2 workers']:.2f}x"})
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
    parser.add_argument("--cases", type=int, default=10, help="cases of the batch measure")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the figures compared with the peers (ours and each peer back to back "
                             "in each; medians over the rounds, ratios round by round)")
    parser.add_argument("--profile", metavar="SET", help="cProfile one feature set (e.g. 'all 557') and stop")
    parser.add_argument("--deep", metavar="MODEL[,MODEL]", help="also time these deep models (random weights)")
    parser.add_argument("--all-sets", action="store_true", help="also time each family alone")
    parser.add_argument("--no-scaling", action="store_true", help="skip the ROI-size curve (512x512x400 CT)")
    parser.add_argument("--plot-python", metavar="PATH",
                        help="a Python with matplotlib (a benchmark venv) to draw docs/benchmark_scaling.png")
    parser.add_argument("--pictologics-python", metavar="PATH",
                        help="a Python (>= 3.12) with pictologics installed: time it on the same files")
    parser.add_argument("--pyradiomics-python", metavar="PATH",
                        help="a Python with pyradiomics installed: time it on the same files")
    parser.add_argument("--pysera-python", metavar="PATH",
                        help="a Python with pysera 2.1.5 installed: time it on the same case (all 557 features)")
    parser.add_argument("--roi-threads", type=int, metavar="N",
                        help="threads per ROI (sets PYSERA_ROI_THREADS; default: the engine's, min(2, cores))")
    parser.add_argument("--worker-scaling", type=int, nargs="?", const=20, metavar="N_CASES",
                        help="only time process_batch on N_CASES (default 20) cases with 1 and 2 worker processes")
    parser.add_argument("--dask", action="store_true",
                        help="only compare the local pool with a Dask LocalCluster (needs PySERASlicerLib[dask])")
    parser.add_argument("--dask-cases", type=int, default=40, metavar="N", help="--dask: number of cases")
    parser.add_argument("--dask-workers", type=int, default=2, metavar="N", help="--dask: worker processes")
    parser.add_argument("--first-ever-cold", action="store_true",
                        help="also time each competitor's first-ever process (empty numba cache: pictologics "
                             "compiles every kernel, minutes)")
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
    from PySERASlicerLib.engine.pipeline import default_threads

    print(f"# PySERASlicer benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}\n")
    print(f"Machine: {machine()}; threads per ROI: {default_threads()}; load average at start {load_average()}\n")
    print(f".nii.gz decoder: {gzip_decoder_name()}; the figures marked 'zlib' are taken with "
          "PYSERA_GZIP_DECODER=zlib, as in Slicer without the fast extra\n")
    print(f"Case: {SHAPE[::-1]} voxels (i, j, k), spacing {SPACING} mm; lesion 1 {(labels == 1).sum()} voxels, "
          f"lesion 2 {(labels == 2).sum()} voxels; FBS 25 HU, range [-1000, 400], no interpolation. "
          f"Warm figures: median of {args.repeats} runs after a warm-up run. 'load': the 1-minute load "
          "average when the figure was taken (2 cores; above ~1 the figures are inflated).\n")
    names = None if args.all_sets else ("full 3D set", "all 557", "non-texture set", COMPARABLE_NAME)
    load = load_average()
    rows = section_handcrafted(image, labels, args.repeats, names)
    print(f"## extract_roi per lesion (load {load})\n")
    print(markdown_table(rows))
    warm = {row["set"]: row for row in rows}
    measures: Dict[str, Dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="pysera_bench_") as tmp:
        folder = Path(tmp)
        pairs = write_case_folders(image, labels, folder, args.cases)
        load = load_average()
        interpreters = {"pictologics": args.pictologics_python, "pyradiomics": args.pyradiomics_python,
                        "pysera": args.pysera_python}
        per_round, others, notes = section_rounds(image, labels, folder, pairs, args.repeats, args.rounds,
                                                  interpreters, args.first_ever_cold)
        import_wall, import_seconds, _ = fresh_process_seconds(IMPORT_SNIPPET.format(src=str(ROOT / "PySERASlicer")),
                                                               args.rounds)
        # all 557 against the full 3D set: the two batches alternate, the best of two each
        batches = {name: batch_runner(folder, name, args.cases) for name in ("full 3D set", "all 557")}
        per_case = {name: min(run() for run in (runner, runner)) for name, runner in batches.items()}
        with zlib_decoder():
            zlib_per_case = min(batches["full 3D set"]() for _ in range(2))
            zlib_cold = fresh_process_seconds(
                COLD_CASE_SNIPPET.format(src=str(ROOT / "PySERASlicer"), image=pairs[0][0], mask=pairs[0][1]),
                args.rounds)[2]
        load = f"{load} → {load_average()}"

        def compared(figure: str, target: str, peers: Sequence[str], theirs: Optional[str] = None) -> Dict[str, object]:
            """Our ``figure`` against the peers' ``theirs`` (default the same figure)."""
            measure: Dict[str, object] = {"ours": round_median(per_round, "ours", figure), "target": target,
                                          "load": load, "paired": {}}
            for tool in peers:
                measure[tool] = round_median(per_round, tool, theirs or figure)
                measure["paired"][tool] = paired_ratios(per_round, tool, figure, theirs)
            return measure

        measures[f"per case in a {args.cases}-case batch, 1 process, warm, read + extract (+ our report) (s)"] = \
            compared("batch_per_case", "≤ 0.7 × pictologics", ("pictologics", "pyradiomics"))
        measures["the same, ours with pictologics' 170 features only (features=) (s)"] = \
            compared("batch_per_case_170", "(like for like)", ("pictologics",), "batch_per_case")
        measures["one case in a fresh process, imports + reading included (s)"] = \
            compared("cold", "≤ 0.8 × pyradiomics and ≤ 1.0 s", ("pictologics", "pyradiomics"))
        measures["import PySERASlicerLib in a fresh process, numpy included (s)"] = {
            "ours": import_seconds, "target": "≤ 0.1 s", "load": load}
        measures["warm extraction, pictologics' 170 features, lesion 1 (s)"] = \
            compared("seconds_170", "≤ pictologics", ("pictologics",), "seconds")
        measures["warm extraction, each tool's default set, lesion 1 (s; ours: full 3D set)"] = \
            dict(compared("seconds", "(information)", ("pictologics", "pyradiomics")))
        if "pysera" in others:
            measures["warm extraction, all 557 features, lesion 1, against PySERA 2.1.5 (s)"] = {
                "ours": warm["all 557"]["lesion 1 (s)"], "pysera": others["pysera"]["seconds"],
                "target": "(information)", "load": load}
        ratio = per_case["all 557"] / per_case["full 3D set"]
        measures[f"all 557 per case in the batch: {per_case['all 557']:.3f} s = {ratio:.2f} × the 3D set's"] = {
            "ours": ratio, "target": "≤ 2 × the 3D set", "load": load}
        cold_walls = [r.figures["ours"]["cold"] for r in per_round]
        summary = [{"figure": "process_batch per case, full 3D set (285 features)", "seconds": per_case["full 3D set"]},
                   {"figure": "process_batch per case, all 557", "seconds": per_case["all 557"]},
                   {"figure": "process_batch per case, full 3D set, zlib", "seconds": zlib_per_case},
                   {"figure": "import PySERASlicerLib, fresh process (wall of the whole process)",
                    "seconds": import_wall},
                   {"figure": "one case in a fresh process (wall; median of "
                              f"{', '.join(f'{w:.2f}' for w in cold_walls)})",
                    "seconds": statistics.median(cold_walls)},
                   {"figure": "one case in a fresh process, zlib (wall; median of "
                              f"{', '.join(f'{w:.2f}' for w in zlib_cold)})",
                    "seconds": statistics.median(zlib_cold)}]
        imports, first_call, cold_peak = section_cold_extract()
        summary.append({"figure": f"fresh process: engine imports {imports:.3f} s, first extract_roi "
                                  f"(full 3D set) {first_call:.3f} s, peak {cold_peak:.0f} MB",
                        "seconds": imports + first_call})
        for tool, result in others.items():
            summary.append({"figure": f"{tool} {result['version']}: {result['features']} features, warm "
                                      f"{result['seconds']:.3f} s, first run in a process {result['first']:.3f} s",
                            "seconds": result["seconds"]})
            if "first_ever_cold" in result:
                summary.append({"figure": f"{tool}: first-ever process (empty numba cache)",
                                "seconds": result["first_ever_cold"]})
    print("\n## Rounds (seconds; ours and each peer back to back in each round)\n")
    print(markdown_table(round_rows(per_round)))
    print(f"\n## End to end (load {load})\n")
    print(markdown_table(summary))
    if not args.no_scaling:
        with tempfile.TemporaryDirectory(prefix="pysera_bench_scaling_") as tmp:
            scaling = section_scaling(Path(tmp))
        print("\n## Cost against ROI size (512 × 512 × 400 CT, 0.8 × 0.8 × 1.0 mm, full 3D set, fresh process "
              "per size)\n")
        print(markdown_table(scaling))
        big, ref = scaling[-1], scaling[-2]
        per_voxel = big["extraction per voxel (us)"] / ref["extraction per voxel (us)"]
        measures[f"per-voxel extraction cost, {big['ROI voxels']} vs {ref['ROI voxels']} voxels (ratio)"] = {
            "ours": per_voxel, "target": "≤ 2", "load": big["load"]}
        measures[f"peak RSS, {big['ROI voxels']}-voxel ROI in a 512×512×400 CT (MB)"] = {
            "ours": float(big["peak RSS (MB)"]), "digits": 0, "target": "≤ 1500", "load": big["load"]}
        print("\n" + plot_scaling(scaling, ROOT / "docs" / "benchmark_scaling.png", args.plot_python,
                                  f"PySERASlicer, full 3D set, {datetime.date.today()}, {machine().split(',')[0]}"))
    if args.deep:
        print("\n## Deep features (RANDOM weights: seconds per ROI, speed only)\n")
        print(markdown_table(section_deep([m.strip() for m in args.deep.split(",") if m.strip()])))
    print(f"\n## Targets (issue 14), peers in the same run; load average now {load_average()}\n")
    print(markdown_table(target_rows(measures)))
    print("\nPeers: pyradiomics' default original-image extraction (binWidth 25); pictologics' default "
          "families (FBS 25 HU from -1000, range [-1000, 400]); both read the files with their own readers. "
          "Batch: their read + extract call in a loop over the same files; ours one process_batch over the "
          "folders with the Excel/CSV report. Cold: the wall time of a fresh process (start-up, imports, "
          "reading, set-up, one extraction; pictologics' numba kernels from its on-disk cache).")
    for note in notes:
        print(f"\n* {note}")


if __name__ == "__main__":
    main()

"""Deep features: ImageNet CNN embeddings of an ROI (``extraction_mode="deep_feature"``).

Method (see ``docs/deep_features.md`` for the reasoning and figures):

1. **Crop** the ROI's in-plane bounding box plus ``settings.deep.margin_voxels``, widened to a
   physical square (real image context where it exists, padding only past the image edge). The
   crop is taken from the native-dtype array, so only the crop is ever converted to float.
2. **Window** intensities to [0, 1]: CT uses the HU window ``settings.deep.ct_window``; every
   other modality uses the ROI's own percentiles ``settings.deep.percentiles``. Voxels outside
   the mask keep their (windowed) values: the mask chooses slices and field of view only.
3. **One input per k-slice that contains ROI voxels**: the square crop is resized to 224 x 224
   (bilinear, antialiased; aspect kept because the crop is square in mm), replicated to three
   channels and normalised with the ImageNet mean/std.
4. **Features** are the globally average-pooled last convolutional stage: resnet50 ``layer4``
   (2048), vgg16 ``features`` (512; the fully connected classifier is deleted), densenet121
   ``relu(features)`` (1024). Slice features are combined by ``settings.deep.slice_aggregation``
   ("mean" or "max"). Columns are ``<model>_0000``, ``<model>_0001``, ...

Weights are torchvision's ImageNet V1 files, read from the torch hub cache
(``torch.hub.get_dir()/checkpoints/<file>``, i.e. ``$TORCH_HOME/hub/checkpoints``) or from
``settings.deep.weights_path`` (a file, or a folder holding the official file name). Nothing is
ever downloaded and nothing ever falls back to random weights: a missing file raises
:class:`WeightsUnavailableError`. Random weights exist only as an explicit opt-in for tests and
smoke runs: ``weights_path="random"`` or ``"random:SEED"``.

torch and torchvision are optional dependencies: this module imports them on first use only
(:func:`import_torch`), so the rest of the engine works without them.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..image import Image
from ..settings import DeepSettings, ExtractionMode, Modality, Settings

#: Where torchvision publishes the weight files.
DOWNLOAD_ROOT = "https://download.pytorch.org/models/"
#: Side of the square network input (ImageNet training resolution).
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ``weights_path`` prefix that selects seeded random weights (tests, smoke runs; never a default).
RANDOM_WEIGHTS_PREFIX = "random"

ProgressCallback = Optional[Callable[[int, int], None]]

INSTALL_HINT = (
    "Deep features need PyTorch and torchvision. Install them into this Python environment with "
    "'pip install torch torchvision' (CPU-only, without CUDA downloads: "
    "'pip install torch==2.13.0 torchvision==0.28.0' or the wheels from "
    "https://download.pytorch.org/whl/cpu); inside 3D Slicer install the 'PyTorch' extension from "
    "the Extensions Manager and use its 'Install PyTorch' button."
)


class DeepDependencyError(ImportError):
    """torch/torchvision are not installed (or cannot be imported); the message says how to install."""


class WeightsUnavailableError(RuntimeError):
    """The pretrained weights file is missing or unreadable. Nothing is downloaded, nothing falls back.

    Attributes: ``model``, ``path`` (where the file was looked for), ``url`` (official download).
    """

    def __init__(self, message: str, model: str = "", path: str = "", url: str = ""):
        super().__init__(message)
        self.model = model
        self.path = path
        self.url = url


@dataclass(frozen=True)
class ModelSpec:
    """One supported network: torchvision builder name, official V1 weights file, feature size."""

    name: str
    weights_file: str
    size_mb: float
    feature_dim: int

    @property
    def url(self) -> str:
        return DOWNLOAD_ROOT + self.weights_file


#: The supported networks (torchvision ImageNet-1k V1 weights).
MODELS: Dict[str, ModelSpec] = {
    "resnet50": ModelSpec("resnet50", "resnet50-0676ba61.pth", 97.8, 2048),
    "vgg16": ModelSpec("vgg16", "vgg16-397923af.pth", 527.8, 512),
    "densenet121": ModelSpec("densenet121", "densenet121-a639ec97.pth", 30.8, 1024),
}

#: torchvision's remap of the old DenseNet checkpoint keys ("denselayer1.norm.1.weight" ->
#: "denselayer1.norm1.weight"); the official densenet121 file still uses the old keys.
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def model_spec(model: Any) -> ModelSpec:
    """The :class:`ModelSpec` of a model name or ``DeepModel`` member."""
    name = str(getattr(model, "value", model)).strip().lower()
    if name not in MODELS:
        raise ValueError(f"deep model {model!r} is not supported; accepted values: {', '.join(MODELS)}")
    return MODELS[name]


def feature_names(model: Any) -> List[str]:
    """Column names of a model's features: ``resnet50_0000`` ... (no torch needed)."""
    spec = model_spec(model)
    return [f"{spec.name}_{index:04d}" for index in range(spec.feature_dim)]


# ---------------------------------------------------------------------------------------------
# Optional imports
# ---------------------------------------------------------------------------------------------
_TV_STUB_LIBRARY = None  # keeps the stub op schemas registered for the life of the process


def import_torch() -> Tuple[Any, Any]:
    """Import and return ``(torch, torchvision)``, or raise :class:`DeepDependencyError`.

    PyPI's Linux torchvision wheels are CUDA builds whose ``_C.so`` does not load next to a
    CPU-only torch; torchvision then dies at import with "operator torchvision::nms does not
    exist" (an unguarded fake registration). Only in that case we define the two op schemas
    (``nms``, ``qnms``) and import again: the models are pure Python and work; only the
    detection ops (``torchvision.ops.nms`` ...) stay unusable, and radiomics does not need them.
    Where ``_C.so`` loads, the first import succeeds and nothing is registered (registering up
    front would clash with ``_C.so``'s own library).
    """
    global _TV_STUB_LIBRARY
    try:
        import torch
    except ImportError as error:
        raise DeepDependencyError(f"{INSTALL_HINT} (import torch failed: {error})") from error
    try:
        import torchvision
    except ImportError as error:
        raise DeepDependencyError(f"{INSTALL_HINT} (import torchvision failed: {error})") from error
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        if _TV_STUB_LIBRARY is None:
            library = torch.library.Library("torchvision", "DEF")
            library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _TV_STUB_LIBRARY = library
        import torchvision
    return torch, torchvision


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------
def official_weights_path(model: Any) -> Path:
    """Where torchvision caches the model's ImageNet V1 file: ``torch.hub.get_dir()/checkpoints``.

    ``torch.hub.get_dir()`` is ``$TORCH_HOME/hub`` (TORCH_HOME defaults to
    ``$XDG_CACHE_HOME/torch``, then ``~/.cache/torch``) unless ``torch.hub.set_dir`` was called.
    """
    torch, _ = import_torch()
    return Path(torch.hub.get_dir()) / "checkpoints" / model_spec(model).weights_file


def _random_seed(weights_path: str) -> Optional[int]:
    """The seed of ``"random"`` / ``"random:SEED"``, or None for a real weights path."""
    text = weights_path.strip()
    if text.lower() == RANDOM_WEIGHTS_PREFIX:
        return 0
    if text.lower().startswith(RANDOM_WEIGHTS_PREFIX + ":"):
        seed = text.split(":", 1)[1].strip()
        if not re.fullmatch(r"\d+", seed):
            raise ValueError(f"deep.weights_path: {weights_path!r}: the random seed must be an integer >= 0")
        return int(seed)
    return None


def resolve_weights(model: Any, weights_path: str = "") -> Path:
    """The weights file to load: ``weights_path`` (a file, or a folder holding the official file
    name) or, when empty, the official file in the torch hub cache.

    Raises :class:`WeightsUnavailableError` naming the path, the download URL and the two ways to
    provide the file when it does not exist.
    """
    spec = model_spec(model)
    if weights_path:
        path = Path(os.path.expanduser(weights_path))
        if path.is_dir():
            path = path / spec.weights_file
        where = f"at the given weights path {path}"
    else:
        path = official_weights_path(spec.name)
        where = f"at {path} (torch hub cache)"
    if path.is_file():
        return path
    message = (
        f"Pretrained ImageNet weights for {spec.name} were not found {where}. Deep features are never "
        f"computed with random weights and nothing is downloaded. Download {spec.url} "
        f"({spec.size_mb:.0f} MB) on a computer with internet access, then either copy it to "
        f"$TORCH_HOME/hub/checkpoints/{spec.weights_file} (TORCH_HOME defaults to ~/.cache/torch; "
        f"currently expected at {official_weights_path(spec.name)}), or pass the file (or its folder) as "
        f"the weights path: settings.deep.weights_path / process_batch(..., deep weights) / "
        f"CLI --weights PATH."
    )
    raise WeightsUnavailableError(message, model=spec.name, path=str(path), url=spec.url)


def check_deep_weights(settings: Settings) -> None:
    """Once per run, before any case: raise :class:`DeepDependencyError` when torch/torchvision
    are not installed (found without importing them) and :class:`WeightsUnavailableError` (the
    message of :func:`resolve_weights`) when a deep-feature run's weights file is missing,
    instead of every case failing with it after its work started. Nothing to check for
    handcrafted features; the explicit random opt-in needs no file. The file is only looked
    for, not read (a broken file is still reported when the model loads)."""
    if settings.extraction_mode != ExtractionMode.DEEP:
        return
    from .. import dependencies

    if dependencies.missing([dependencies.TORCH, dependencies.TORCHVISION]):
        raise DeepDependencyError(INSTALL_HINT)
    if _random_seed(settings.deep.weights_path) is None:
        resolve_weights(settings.deep.model, settings.deep.weights_path)


def _read_state_dict(torch: Any, spec: ModelSpec, path: Path) -> Dict[str, Any]:
    """``torch.load(weights_only=True)`` plus the checks and remaps torchvision applies."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise WeightsUnavailableError(
            f"{path} could not be read as {spec.name} weights ({type(error).__name__}: {error}). Replace it "
            f"with the official file {spec.url}.",
            model=spec.name, path=str(path), url=spec.url,
        ) from error
    if isinstance(state, dict) and len(state) == 1 and next(iter(state)) in ("state_dict", "model"):
        state = next(iter(state.values()))  # a training checkpoint wrapping the state dict
    if not isinstance(state, dict):
        raise WeightsUnavailableError(
            f"{path} does not hold a state dict (found {type(state).__name__}); expected the official "
            f"file {spec.url}.",
            model=spec.name, path=str(path), url=spec.url,
        )
    if spec.name == "densenet121":
        state = {_DENSENET_OLD_KEY.sub(r"\1\2", key): value for key, value in state.items()}
    return state


def _build_network(torch: Any, torchvision: Any, spec: ModelSpec, weights_path: str) -> Any:
    """The full torchvision network with its weights loaded (strictly)."""
    builder = getattr(torchvision.models, spec.name)
    seed = _random_seed(weights_path)
    if seed is not None:
        # Explicit opt-in only (tests, smoke runs): seeded, so the "features" are reproducible.
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            network = builder(weights=None)
        finally:
            torch.random.set_rng_state(generator_state)
        return network
    path = resolve_weights(spec.name, weights_path)
    state = _read_state_dict(torch, spec, path)
    # Build on the meta device and let load_state_dict assign the loaded tensors: no random
    # initialisation (vgg16's 120 M fully connected weights take seconds) and no second copy.
    with torch.device("meta"):
        network = builder(weights=None)
    try:
        network.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise WeightsUnavailableError(
            f"{path} is not a torchvision {spec.name} ImageNet checkpoint: {error}. Use the official "
            f"file {spec.url}.",
            model=spec.name, path=str(path), url=spec.url,
        ) from error
    return network


def _feature_extractor(torch: Any, spec: ModelSpec, network: Any) -> Any:
    """Wrap a full network into a module mapping (B, 3, H, W) to globally pooled (B, D) features."""
    nn = torch.nn

    class GapFeatures(nn.Module):
        def __init__(self, body: Any, final_relu: bool):
            super().__init__()
            self.body = body
            self.final_relu = final_relu

        def forward(self, x):
            y = self.body(x)
            if self.final_relu:
                y = torch.nn.functional.relu(y)
            return y.mean(dim=(2, 3))

    if spec.name == "resnet50":
        # Everything up to layer4 (its output is already rectified); drop avgpool + fc.
        body = nn.Sequential(*list(network.children())[:-2])
        return GapFeatures(body, final_relu=False)
    if spec.name == "vgg16":
        # GAP of the last conv stage (512 x 7 x 7 at 224); the classifier (~120 M parameters,
        # 0.5 GB) is never used, so it is dropped right away.
        body = network.features
        del network.classifier
        return GapFeatures(body, final_relu=False)
    # densenet121: `features` ends with norm5 (no ReLU); torchvision's own forward applies one.
    return GapFeatures(network.features, final_relu=True)


def resolve_device(torch: Any, device: str) -> Any:
    """``torch.device`` for ``settings.deep.device`` ("auto" = CUDA when available)."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "deep.device is 'cuda' but torch reports no usable CUDA device (CPU-only torch build or no "
            "GPU); use device 'auto' or 'cpu'."
        )
    if device in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


#: The most recently loaded network (one only, to bound memory): key -> module.
_MODEL_CACHE: Dict[Tuple, Any] = {}


def _cache_key(spec: ModelSpec, weights_path: str, device: Any) -> Tuple:
    if _random_seed(weights_path) is not None:
        return (spec.name, f"random:{_random_seed(weights_path)}", str(device))
    path = resolve_weights(spec.name, weights_path)
    stat = path.stat()
    return (spec.name, str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device))


def load_model(model: Any, weights_path: str = "", device: str = "cpu") -> Any:
    """The eval-mode feature extractor (input (B, 3, 224, 224) normalised -> (B, D) features).

    The last loaded model is kept (keyed by model, weights file + mtime, device) so a batch of
    ROIs reads the weights once; :func:`clear_model_cache` frees it.
    """
    torch, torchvision = import_torch()
    spec = model_spec(model)
    target = resolve_device(torch, device)
    key = _cache_key(spec, weights_path, target)
    cached = _MODEL_CACHE.get(key)
    if cached is not None:
        return cached
    _MODEL_CACHE.clear()  # free the previous network before reading the next one
    network = _build_network(torch, torchvision, spec, weights_path)
    extractor = _feature_extractor(torch, spec, network).eval().requires_grad_(False).to(target)
    _MODEL_CACHE[key] = extractor
    return extractor


def clear_model_cache() -> None:
    """Forget the cached network (frees its memory once no caller holds it)."""
    _MODEL_CACHE.clear()


# ---------------------------------------------------------------------------------------------
# ROI -> slices (numpy only)
# ---------------------------------------------------------------------------------------------
def intensity_window(image_array: np.ndarray, roi_mask: np.ndarray, modality: Modality,
                     deep: DeepSettings) -> Tuple[float, float]:
    """(low, high) intensities mapped to 0 and 1: the CT HU window, else the ROI's percentiles."""
    if Modality.parse(modality) == Modality.CT:
        return deep.ct_window
    values = image_array[roi_mask]
    low, high = np.percentile(values.astype(np.float64), deep.percentiles)
    return float(low), float(high)


def _square_range(lo: int, hi: int, length: int) -> Tuple[int, int]:
    """Grow [lo, hi) symmetrically to ``length`` voxels (may leave the image; padded later)."""
    extra = length - (hi - lo)
    start = lo - extra // 2
    return start, start + length


def roi_slices(image_array: np.ndarray, roi_mask: np.ndarray, spacing_ij: Tuple[float, float],
               window: Tuple[float, float], margin_voxels: int) -> Tuple[np.ndarray, np.ndarray]:
    """The ROI's k-slices as a float32 stack in [0, 1], cropped to a physical square.

    Parameters
    ----------
    image_array : (k, j, i) intensities, any dtype; only the crop is converted to float.
    roi_mask : (k, j, i) bool; nonzero = ROI.
    spacing_ij : in-plane voxel size (mm) along i and j.
    window : intensities mapped to 0 and 1 (clipped outside).
    margin_voxels : in-plane margin added around the ROI's bounding box.

    Returns
    -------
    slices : (n, rows, cols) float32; rows x cols covers a square in mm (rows*s_j == cols*s_i up to
        rounding); parts beyond the image edge are 0 (the window's low end).
    k_indices : (n,) the image slices used: every slice with at least one ROI voxel.
    """
    mask = np.asarray(roi_mask)
    if mask.shape != image_array.shape:
        raise ValueError(f"ROI mask shape {mask.shape} differs from image shape {image_array.shape}")
    k_indices = np.flatnonzero(mask.any(axis=(1, 2)))
    if k_indices.size == 0:
        raise ValueError("the ROI mask is empty: no voxel to extract deep features from")
    in_plane = mask[k_indices[0]:k_indices[-1] + 1].any(axis=0)
    rows = np.flatnonzero(in_plane.any(axis=1))
    cols = np.flatnonzero(in_plane.any(axis=0))
    n_rows, n_cols = image_array.shape[1:]
    # Bounding box plus margin, half-open.
    r0, r1 = rows[0] - margin_voxels, rows[-1] + 1 + margin_voxels
    c0, c1 = cols[0] - margin_voxels, cols[-1] + 1 + margin_voxels
    s_i, s_j = float(spacing_ij[0]), float(spacing_ij[1])
    side_mm = max((r1 - r0) * s_j, (c1 - c0) * s_i)
    r0, r1 = _square_range(r0, r1, max(r1 - r0, int(round(side_mm / s_j))))
    c0, c1 = _square_range(c0, c1, max(c1 - c0, int(round(side_mm / s_i))))
    # Crop the native dtype first (never the whole volume as float), then window.
    ir0, ir1, ic0, ic1 = max(r0, 0), min(r1, n_rows), max(c0, 0), min(c1, n_cols)
    crop = image_array[k_indices, ir0:ir1, ic0:ic1]
    low, high = window
    scale = 1.0 / (high - low) if high > low else 1.0  # constant ROI: everything at/below low -> 0
    slices = np.zeros((k_indices.size, r1 - r0, c1 - c0), dtype=np.float32)
    inner = slices[:, ir0 - r0:ir1 - r0, ic0 - c0:ic1 - c0]
    np.subtract(crop, low, out=inner, casting="unsafe")
    inner *= np.float32(scale)
    np.clip(inner, 0.0, 1.0, out=inner)
    return slices, k_indices


def _to_network_input(torch: Any, chunk: np.ndarray, device: Any) -> Any:
    """(B, rows, cols) [0, 1] -> (B, 3, 224, 224) ImageNet-normalised float32 on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(chunk)).to(device)[:, None]
    x = torch.nn.functional.interpolate(
        x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True
    )
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=device).view(1, 3, 1, 1)
    return (x - mean) / std  # broadcasts the grey channel to three


@contextmanager
def _deterministic(torch: Any, device: Any) -> Iterator[None]:
    """Deterministic kernels for the duration of one extraction; the caller's flags are restored."""
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if device.type == "cuda":
        # cuBLAS is deterministic only with a fixed workspace (read when its handle is created).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic = previous[2]
        torch.backends.cudnn.benchmark = previous[3]


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
def extract_deep_features(image: Image, roi_mask: np.ndarray, settings: Settings,
                          on_progress: ProgressCallback = None) -> Dict[str, float]:
    """Deep features of one ROI: ``{"<model>_0000": value, ...}`` (2048 / 512 / 1024 values).

    Parameters
    ----------
    image : the full image; ``image.spacing`` gives the in-plane aspect.
    roi_mask : (k, j, i) mask on the image grid; nonzero = ROI.
    settings : ``settings.deep`` (model, weights, window, margin, aggregation, batch size, device)
        and ``settings.modality`` (CT -> HU window, else ROI percentiles).
    on_progress : called as ``on_progress(done_slices, total_slices)`` after each batch.

    Raises
    ------
    DeepDependencyError : torch/torchvision missing.
    WeightsUnavailableError : the weights file is missing or unreadable (never silently random).
    ValueError : empty ROI or mask/image shape mismatch.
    """
    deep = settings.deep
    spec = model_spec(deep.model)
    torch, _ = import_torch()
    device = resolve_device(torch, deep.device)
    network = load_model(spec.name, deep.weights_path, deep.device)

    mask = np.asarray(roi_mask)
    if mask.dtype != np.bool_:
        mask = mask != 0
    if mask.shape != image.array.shape:
        raise ValueError(f"ROI mask shape {mask.shape} differs from image shape {image.array.shape}")
    if not mask.any():
        raise ValueError("the ROI mask is empty: no voxel to extract deep features from")
    window = intensity_window(image.array, mask, settings.modality, deep)
    slices, _ = roi_slices(image.array, mask, image.spacing[:2], window, deep.margin_voxels)

    total = slices.shape[0]
    combined = None
    with _deterministic(torch, device), torch.inference_mode():
        for start in range(0, total, deep.batch_size):
            batch = _to_network_input(torch, slices[start:start + deep.batch_size], device)
            features = network(batch)
            del batch
            if deep.slice_aggregation == "max":
                chunk = features.amax(dim=0)
                combined = chunk if combined is None else torch.maximum(combined, chunk)
            else:
                chunk = features.sum(dim=0, dtype=torch.float64)
                combined = chunk if combined is None else combined + chunk
            if on_progress is not None:
                on_progress(min(start + deep.batch_size, total), total)
        if deep.slice_aggregation == "mean":
            combined = combined / total
        values = combined.to("cpu", torch.float64).numpy()
    return {name: float(value) for name, value in zip(feature_names(spec.name), values)}


# ---------------------------------------------------------------------------------------------
# Benchmark helper (scripts/benchmark.py)
# ---------------------------------------------------------------------------------------------
def synthetic_lesion(shape: Tuple[int, int, int] = (64, 256, 256),
                     spacing: Tuple[float, float, float] = (0.8, 0.8, 2.5),
                     semi_axes_voxels: Tuple[float, float, float] = (15.0, 20.0, 25.0),
                     seed: int = 0) -> Tuple[Image, np.ndarray]:
    """A CT-like int16 volume (k, j, i) with a textured ellipsoid lesion (about 31 k voxels by
    default: semi-axes 15 slices x 20 rows x 25 columns) and its mask."""
    rng = np.random.default_rng(seed)
    k, j, i = np.ogrid[:shape[0], :shape[1], :shape[2]]
    centre = [s / 2.0 for s in shape]
    inside = (((k - centre[0]) / semi_axes_voxels[0]) ** 2 + ((j - centre[1]) / semi_axes_voxels[1]) ** 2
              + ((i - centre[2]) / semi_axes_voxels[2]) ** 2) <= 1.0
    array = rng.normal(-50.0, 30.0, size=shape).astype(np.int16)  # soft tissue background
    array[inside] = rng.normal(60.0, 40.0, size=int(inside.sum())).astype(np.int16)
    image = Image(array, spacing=spacing, modality="CT", source="synthetic lesion")
    return image, inside


def benchmark_deep(model: Any, weights_path: str = "random:0", device: str = "cpu", batch_size: int = 16,
                   repeats: int = 1) -> float:
    """Seconds per ROI for ``model`` on :func:`synthetic_lesion` (256 x 256 x 64, 0.8 x 0.8 x 2.5 mm,
    ~31 k-voxel lesion over 29 slices), best of ``repeats``; model loading is excluded (done once
    before timing), the first forward pass is included.

    Example: ``from PySERASlicerLib.engine.deep import benchmark_deep; benchmark_deep("vgg16")``.
    """
    from ..settings import DeepModel

    image, mask = synthetic_lesion()
    settings = Settings(
        modality=Modality.CT,
        deep=DeepSettings(model=DeepModel.parse(model), weights_path=weights_path, device=device,
                          batch_size=batch_size),
    )
    load_model(model, weights_path, device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        extract_deep_features(image, mask, settings)
        best = min(best, time.perf_counter() - start)
    return best

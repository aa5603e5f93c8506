"""Run settings: one frozen dataclass per processing stage, bundled in :class:`Settings`.

Everything that changes a result lives here, so one object describes a run. It is

* built from PySERA's keyword arguments and ``IBSI_based_parameters`` by
  :meth:`Settings.from_pysera` (the table :data:`PYSERA_KEYS` maps every PySERA key to a
  field),
* validated once, at construction (errors name the key, the value and what is accepted),
* serialised with :meth:`Settings.to_dict` / :meth:`Settings.from_dict` / JSON, which is
  what worker processes receive, what the Excel ``Parameters`` sheet shows and what the
  batch workflow calls a "settings file".
"""

from __future__ import annotations

import json
import os
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import Enum
from typing import Any, Dict, Optional, Tuple, Union


class SettingsError(ValueError):
    """A bad settings key or value; the message names the key and what is accepted."""


# ---------------------------------------------------------------------------------------------
# Closed choices
# ---------------------------------------------------------------------------------------------
class _Choice(str, Enum):
    """String enum parsed case-insensitively, with aliases (see ``_aliases``)."""

    @classmethod
    def _aliases(cls) -> Dict[str, str]:
        return {}

    @classmethod
    def parse(cls, value: Any, key: str = "") -> _Choice:
        if isinstance(value, cls):
            return value
        text = str(value).strip()
        wanted = text.lower().replace(" ", "").replace("-", "_")
        for member in cls:
            if wanted in (member.value.lower().replace("-", "_"), member.name.lower()):
                return member
        alias = cls._aliases().get(wanted)
        if alias is not None:
            return cls(alias)
        accepted = ", ".join(m.value for m in cls)
        prefix = f"{key}: " if key else ""
        raise SettingsError(f"{prefix}{value!r} is not valid; accepted values: {accepted}")


class Modality(_Choice):
    """Image modality (PySERA ``radiomics_DataType``)."""

    CT = "CT"
    PET = "PET"
    MRI = "MRI"
    OTHER = "OTHER"

    @classmethod
    def _aliases(cls):
        return {"pt": "PET", "mr": "MRI", "spect": "OTHER"}


class Interpolator(_Choice):
    """Interpolator for resampling (IBSI: nearest neighbour, (bi/tri)linear, cubic spline)."""

    NEAREST = "nearest"
    LINEAR = "linear"
    CUBIC = "cubic"

    @classmethod
    def _aliases(cls):
        return {
            "bilinear": "linear",
            "trilinear": "linear",
            "tricubic_spline": "cubic",
            "tricubic": "cubic",
            "bicubic": "cubic",
            "cubic_spline": "cubic",
            "spline": "cubic",
            "nearest_neighbour": "nearest",
            "nearest_neighbor": "nearest",
            "nn": "nearest",
            # PySERA accepts "None": no interpolation means the value of the nearest voxel.
            "none": "nearest",
        }


class DiscretisationMethod(_Choice):
    """Intensity discretisation (IBSI 2.7): fixed bin size, fixed bin number, or none."""

    FBS = "FBS"
    FBN = "FBN"
    NONE = "NONE"

    @classmethod
    def _aliases(cls):
        return {"fixed_bin_size": "FBS", "fixed_bin_width": "FBS", "fbw": "FBS", "fixed_bin_number": "FBN"}


class Quantiser(_Choice):
    """How fixed-bin-number discretisation places bin edges (PySERA ``radiomics_qntz``)."""

    UNIFORM = "Uniform"
    LLOYD = "Lloyd"

    @classmethod
    def _aliases(cls):
        return {"lloyd_max": "Lloyd", "lloydmax": "Lloyd", "max_lloyd": "Lloyd"}


class RoiSelectionMode(_Choice):
    PER_IMAGE = "per_Img"
    PER_REGION = "per_region"

    @classmethod
    def _aliases(cls):
        return {"per_image": "per_Img", "perimg": "per_Img", "perregion": "per_region"}


class FeatureValueMode(_Choice):
    REAL_VALUE = "REAL_VALUE"
    APPROXIMATE_VALUE = "APPROXIMATE_VALUE"


class ExtractionMode(_Choice):
    HANDCRAFTED = "handcrafted_feature"
    DEEP = "deep_feature"

    @classmethod
    def _aliases(cls):
        return {"handcrafted": "handcrafted_feature", "deep": "deep_feature"}


class DeepModel(_Choice):
    RESNET50 = "resnet50"
    VGG16 = "vgg16"
    DENSENET121 = "densenet121"


class ReportLevel(_Choice):
    """How much goes into the log / Report: each level keeps itself and the more severe ones."""

    ALL = "all"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    NONE = "none"


class ColumnNames(_Choice):
    """Feature column names: IBSI compliance tags (``cm_joint_max_2D_avg``, the default) or the
    names PySERA 2.1.5 writes (``glcm_joint_max_2D_avg``), for spreadsheets and scripts made for
    PySERA. Values are the same; only the names differ (engine/registry.py maps them)."""

    IBSI = "ibsi"
    PYSERA = "pysera"


class GantryTiltPolicy(_Choice):
    """A DICOM series whose slice positions are not along the slice normal (gantry tilt)."""

    REGULARIZE = "regularize"
    ERROR = "error"

    @classmethod
    def _aliases(cls):
        return {"regularise": "regularize", "resample": "regularize", "refuse": "error"}


class MissingSlicePolicy(_Choice):
    """A DICOM series with a gap or uneven spacing between its slices."""

    ERROR = "error"
    INTERPOLATE = "interpolate"

    @classmethod
    def _aliases(cls):
        return {"refuse": "error", "regularize": "interpolate", "regularise": "interpolate"}


#: Cases a pool worker runs before a fresh process replaces it (keeps memory from fragmenting).
DEFAULT_MAX_TASKS_PER_CHILD = 10

#: The PySERA keywords of :func:`process_batch` that are settings (they map onto :class:`Settings`
#: through :meth:`Settings.from_call`).
SETTINGS_KEYWORDS = (
    "apply_preprocessing", "min_roi_volume", "num_workers", "enable_parallelism", "categories", "dimensions",
    "bin_size", "roi_num", "roi_selection_mode", "feature_value_mode", "report", "extraction_mode",
    "deep_learning_model", "aggregation_lesion", "column_names",
)


#: PySERA feature categories, in PySERA's order.
CATEGORIES: Tuple[str, ...] = (
    "diag", "morph", "ip", "stat", "ih", "ivh", "glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm", "mi",
)
#: PySERA dimensions ("1st" = every non-texture family).
DIMENSIONS: Tuple[str, ...] = ("1st", "2d", "2_5d", "3d")


def parse_selection(value: Union[str, typing.Iterable[str]], valid: Tuple[str, ...], key: str) -> Tuple[str, ...]:
    """Parse PySERA's comma-separated ``categories``/``dimensions`` (case/space-insensitive, "all").

    ``2.5d`` and ``2.5D`` are accepted as ``2_5d``. Returns the names in canonical order.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {str(item).strip().lower().replace(" ", "").replace(".", "_") for item in items}
    names.discard("")
    if not names:
        raise SettingsError(f"{key}: empty selection; accepted values: all, {', '.join(valid)}")
    if "all" in names:
        return valid
    unknown = sorted(names - set(valid))
    if unknown:
        raise SettingsError(f"{key}: unknown name(s) {', '.join(unknown)}; accepted values: all, {', '.join(valid)}")
    return tuple(name for name in valid if name in names)


def parse_names(value: Union[str, typing.Iterable[str], None], key: str) -> Tuple[str, ...]:
    """A list of names given as one comma-separated string or any iterable of strings (a list,
    a set, a pandas Index of columns): stripped, empty entries dropped, each name once (first
    occurrence kept)."""
    if value is None:
        return ()
    if isinstance(value, (bytes, dict)) or not isinstance(value, (str, typing.Iterable)):
        raise SettingsError(f"{key}: {value!r} is not valid; accepted values: a list of names or one "
                            "comma-separated string")
    items = value.split(",") if isinstance(value, str) else list(value)
    names: Dict[str, None] = {}
    for item in items:
        _check(isinstance(item, str), key, item, "names (strings)")
        if item.strip():
            names.setdefault(item.strip(), None)
    return tuple(names)


def _check(condition: bool, key: str, value: Any, accepted: str) -> None:
    if not condition:
        raise SettingsError(f"{key}: {value!r} is not valid; accepted values: {accepted}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


# ---------------------------------------------------------------------------------------------
# Stage settings
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResamplingSettings:
    """Interpolation to a new grid (IBSI 2.4) and intensity rounding.

    enabled : resample at all (PySERA ``radiomics_isScale``).
    in_plane_only : resample i, j only, keep slices (``radiomics_isIsot2D``; IBSI "2D" configurations).
    voxel_size_mm : new isotropic voxel size for 3D resampling (``radiomics_isotVoxSize``).
    voxel_size_2d_mm : new in-plane voxel size for 2D resampling (``radiomics_isotVoxSize2D``).
    image_interpolator, roi_interpolator : ``radiomics_VoxInterp`` / ``radiomics_ROIInterp``.
    roi_partial_volume : keep a resampled ROI voxel when its value >= this (``radiomics_ROI_PV``).
    round_intensities : round intensities to integers after interpolation (``radiomics_isGLround``).
    statistics_on_resampled : intensity statistics (``stat_*``) from the resampled image, as IBSI
        does (PySERA ``radiomics_isQuntzStat`` = 1, its default); False takes them from the original
        image and ROI, without interpolation (PySERA's advice for PET, whose SUVs interpolation
        alters). Re-segmentation applies in both cases. PySERA calls the resampled image "quantized".
    """

    enabled: bool = False
    in_plane_only: bool = False
    voxel_size_mm: float = 2.0
    voxel_size_2d_mm: float = 2.0
    image_interpolator: Interpolator = Interpolator.NEAREST
    roi_interpolator: Interpolator = Interpolator.NEAREST
    roi_partial_volume: float = 0.5
    round_intensities: bool = False
    statistics_on_resampled: bool = True

    def __post_init__(self):
        for key in ("voxel_size_mm", "voxel_size_2d_mm"):
            value = getattr(self, key)
            _check(_is_number(value) and value > 0, f"resampling.{key}", value, "a positive number (mm)")
        _check(
            _is_number(self.roi_partial_volume) and 0 < self.roi_partial_volume <= 1,
            "resampling.roi_partial_volume", self.roi_partial_volume, "a number in (0, 1]",
        )


@dataclass(frozen=True)
class ResegmentationSettings:
    """Re-segmentation of the intensity mask (IBSI 2.5).

    range_enabled : keep voxels in the closed range [range_lower, range_upper] (``radiomics_isReSegRng``).
    outlier_filter : keep voxels within mean +/- 3 SD of the ROI (``radiomics_isOutliers``).
    Both: the intersection of the two intervals.
    """

    range_enabled: bool = False
    range_lower: float = -1000.0
    range_upper: float = 400.0
    outlier_filter: bool = False

    def __post_init__(self):
        _check(_is_number(self.range_lower), "resegmentation.range_lower", self.range_lower, "a number")
        _check(_is_number(self.range_upper), "resegmentation.range_upper", self.range_upper, "a number")
        _check(
            self.range_upper >= self.range_lower, "resegmentation.range_upper", self.range_upper,
            f"a number >= range_lower ({self.range_lower})",
        )


@dataclass(frozen=True)
class DiscretisationSettings:
    """Discretisation for texture and intensity-histogram features (IBSI 2.7).

    method : FBS (fixed bin size), FBN (fixed bin number) or NONE (intensities are already bins).
    bin_width : FBS bin width (PySERA ``bin_size`` when ``radiomics_DiscType`` is FBS).
    bin_number : FBN number of bins (PySERA ``bin_size`` when ``radiomics_DiscType`` is FBN).
    quantiser : FBN bin placement, uniform or Lloyd-Max (``radiomics_qntz``).
    """

    method: DiscretisationMethod = DiscretisationMethod.FBS
    bin_width: float = 25.0
    bin_number: int = 32
    quantiser: Quantiser = Quantiser.UNIFORM

    def __post_init__(self):
        _check(_is_number(self.bin_width) and self.bin_width > 0, "discretisation.bin_width", self.bin_width,
               "a positive number")
        _check(
            _is_number(self.bin_number) and float(self.bin_number).is_integer() and self.bin_number >= 1,
            "discretisation.bin_number", self.bin_number, "an integer >= 1",
        )
        object.__setattr__(self, "bin_number", int(self.bin_number))


@dataclass(frozen=True)
class IVHSettings:
    """Intensity-volume histogram (IBSI 4.1) discretisation.

    ivh_type : PySERA ``radiomics_IVH_Type``: 0 definite intensities (CT, PET), 1 arbitrary
        units (MR, SPECT), 2 FBN with 1000 bins, 3 same discretisation as the histogram.
    continuous : PySERA ``radiomics_IVH_DiscCont``: 0 discrete (step 1 in intensity units),
        1 continuous (fixed bin size ``bin_size``, bins replaced by their centres).
    bin_size : bin width for the continuous case (``radiomics_IVH_binSize``).
    """

    ivh_type: int = 3
    continuous: bool = True
    bin_size: float = 2.0

    def __post_init__(self):
        _check(self.ivh_type in (0, 1, 2, 3), "ivh.ivh_type", self.ivh_type, "0, 1, 2 or 3")
        _check(_is_number(self.bin_size) and self.bin_size > 0, "ivh.bin_size", self.bin_size, "a positive number")


@dataclass(frozen=True)
class TextureSettings:
    """Texture matrix parameters (IBSI 3.6-3.11).

    glcm_distance : Chebyshev distance of GLCM neighbours (GLRLM runs are always of adjacent voxels).
    zone_distance : linkage distance of GLSZM/GLDZM zones (1 = 8/26-connected).
    ngtdm_distance, ngldm_distance : neighbourhood Chebyshev radius.
    ngldm_alpha : NGLDM coarseness (dependence when |difference| <= alpha).
    """

    glcm_distance: int = 1
    zone_distance: int = 1
    ngtdm_distance: int = 1
    ngldm_distance: int = 1
    ngldm_alpha: int = 0

    def __post_init__(self):
        for key in ("glcm_distance", "zone_distance", "ngtdm_distance", "ngldm_distance"):
            value = getattr(self, key)
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                   f"texture.{key}", value, "an integer >= 1")
        _check(isinstance(self.ngldm_alpha, int) and self.ngldm_alpha >= 0, "texture.ngldm_alpha",
               self.ngldm_alpha, "an integer >= 0")


@dataclass(frozen=True)
class RoiSettings:
    """How ROIs are found in a mask and which of them are kept.

    min_roi_volume : drop connected components with fewer voxels (PySERA ``min_roi_volume``).
    roi_num : keep at most this many ROIs (per image or per label, see ``selection_mode``).
    selection_mode : per_Img (largest ROIs of the image) or per_region (largest per label).
    combine_rois : one ROI per label instead of one per connected component
        (PySERA ``radiomics_isROIsCombined``).
    apply_preprocessing : round mask values to integers before finding labels.
    """

    min_roi_volume: int = 10
    roi_num: int = 10
    selection_mode: RoiSelectionMode = RoiSelectionMode.PER_IMAGE
    combine_rois: bool = False
    apply_preprocessing: bool = False

    def __post_init__(self):
        _check(_is_number(self.min_roi_volume) and self.min_roi_volume >= 0, "min_roi_volume",
               self.min_roi_volume, "a number >= 0 (voxels)")
        _check(
            _is_number(self.roi_num) and float(self.roi_num).is_integer() and self.roi_num >= 1,
            "roi_num", self.roi_num, "an integer >= 1",
        )
        object.__setattr__(self, "roi_num", int(self.roi_num))


@dataclass(frozen=True)
class DeepSettings:
    """Deep-feature extraction (``extraction_mode="deep_feature"``).

    model : resnet50, vgg16 or densenet121.
    weights_path : explicit weights file; empty = torchvision's ImageNet file in the torch cache.
    ct_window : HU window for CT inputs; other modalities use ROI percentiles ``percentiles``.
    margin_voxels : in-plane margin around the ROI bounding box.
    slice_aggregation : "mean" or "max" over the ROI's slices.
    batch_size : slices per forward pass (bounds memory).
    device : "auto", "cpu" or "cuda".
    """

    model: DeepModel = DeepModel.RESNET50
    weights_path: str = ""
    ct_window: Tuple[float, float] = (-1000.0, 400.0)
    percentiles: Tuple[float, float] = (1.0, 99.0)
    margin_voxels: int = 5
    slice_aggregation: str = "mean"
    batch_size: int = 16
    device: str = "auto"

    def __post_init__(self):
        _check(len(self.ct_window) == 2 and self.ct_window[0] < self.ct_window[1], "deep.ct_window",
               self.ct_window, "two numbers (low, high) with low < high")
        _check(len(self.percentiles) == 2 and 0 <= self.percentiles[0] < self.percentiles[1] <= 100,
               "deep.percentiles", self.percentiles, "two numbers 0 <= low < high <= 100")
        _check(self.slice_aggregation in ("mean", "max"), "deep.slice_aggregation", self.slice_aggregation,
               "mean, max")
        _check(isinstance(self.batch_size, int) and self.batch_size >= 1, "deep.batch_size", self.batch_size,
               "an integer >= 1")
        _check(isinstance(self.margin_voxels, int) and self.margin_voxels >= 0, "deep.margin_voxels",
               self.margin_voxels, "an integer >= 0")
        _check(self.device in ("auto", "cpu", "cuda"), "deep.device", self.device, "auto, cpu, cuda")
        object.__setattr__(self, "ct_window", tuple(float(v) for v in self.ct_window))
        object.__setattr__(self, "percentiles", tuple(float(v) for v in self.percentiles))


@dataclass(frozen=True)
class DicomSettings:
    """How DICOM series with irregular geometry are read (see docs/batch.md, "DICOM").

    gantry_tilt : "regularize" (resample each slice in its plane onto an orthogonal grid, with a
        Report warning) or "error" (refuse the case).
    missing_slices : "error" (refuse the case, naming the gap) or "interpolate" (resample onto a
        uniform slice spacing, with a Report warning).
    """

    gantry_tilt: GantryTiltPolicy = GantryTiltPolicy.REGULARIZE
    missing_slices: MissingSlicePolicy = MissingSlicePolicy.ERROR

    def __post_init__(self):
        object.__setattr__(self, "gantry_tilt", GantryTiltPolicy.parse(self.gantry_tilt, "dicom.gantry_tilt"))
        object.__setattr__(self, "missing_slices",
                           MissingSlicePolicy.parse(self.missing_slices, "dicom.missing_slices"))


@dataclass(frozen=True)
class Settings:
    """Everything that describes one run. Build with keyword arguments, :meth:`from_pysera`,
    :meth:`from_dict` or :meth:`from_json`; never mutate (use :meth:`replace`)."""

    modality: Modality = Modality.OTHER
    categories: Tuple[str, ...] = ("diag", "morph", "glcm", "glrlm", "glszm", "ngtdm", "ngldm")
    dimensions: Tuple[str, ...] = ("1st", "2d")
    extraction_mode: ExtractionMode = ExtractionMode.HANDCRAFTED
    feature_value_mode: FeatureValueMode = FeatureValueMode.REAL_VALUE
    aggregation_lesion: bool = False
    report: ReportLevel = ReportLevel.ALL
    column_names: ColumnNames = ColumnNames.IBSI
    num_workers: Union[int, str] = "auto"
    enable_parallelism: bool = True
    resampling: ResamplingSettings = field(default_factory=ResamplingSettings)
    resegmentation: ResegmentationSettings = field(default_factory=ResegmentationSettings)
    discretisation: DiscretisationSettings = field(default_factory=DiscretisationSettings)
    ivh: IVHSettings = field(default_factory=IVHSettings)
    texture: TextureSettings = field(default_factory=TextureSettings)
    rois: RoiSettings = field(default_factory=RoiSettings)
    deep: DeepSettings = field(default_factory=DeepSettings)
    dicom: DicomSettings = field(default_factory=DicomSettings)
    #: PET DICOM series: convert to SUV body weight from their tags (PySERA-style ``radiomics_SUV``)
    pet_suv: bool = True
    #: IBSI-2 filters (docs/filters.md): each entry a mapping with a ``filter`` kind and its
    #: parameters; the ``filter_categories`` of each response map are added as columns
    #: ``<feature tag>_<filter label>``.
    filters: Tuple[Any, ...] = ()
    filter_categories: Tuple[str, ...] = ("stat",)
    #: Only these features, in place of the ``categories`` x ``dimensions`` selection: output
    #: column names in either style (IBSI tags such as ``morph_volume`` / ``cm_contrast_3D_avg``,
    #: or PySERA's such as ``glcm_contrast_3D_avg``); a list or one comma-separated string.
    #: Empty (default): that selection. Checked against the registry when a run starts.
    features: Tuple[str, ...] = ()

    def __post_init__(self):
        _check(isinstance(self.pet_suv, bool), "pet_suv", self.pet_suv, "true or false")
        object.__setattr__(self, "features", parse_names(self.features, "features"))
        object.__setattr__(self, "categories", parse_selection(self.categories, CATEGORIES, "categories"))
        object.__setattr__(self, "dimensions", parse_selection(self.dimensions, DIMENSIONS, "dimensions"))
        object.__setattr__(self, "num_workers", _parse_workers(self.num_workers))
        _validate_filters(self)

    # -- construction -------------------------------------------------------------------------
    def replace(self, **changes) -> Settings:
        return replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict (enums as their values, tuples as lists)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Settings:
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys are errors."""
        return _from_plain(cls, data, "")

    def to_json(self, path: Optional[str] = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str) -> Settings:
        """From a JSON string or file. The JSON may be our own dict, a PySERA parameter dict
        (keys like ``bin_size`` / ``radiomics_DiscType``, optionally under
        ``IBSI_based_parameters``), ``{"preset": "ibsi_B", ...overrides}``, or the provenance
        JSON a run wrote beside its Excel report (its ``settings`` are taken, so a run can be
        repeated from its own output)."""
        return cls.from_any(read_json_object(text_or_path, f"settings file {text_or_path!r}"))

    @classmethod
    def from_any(cls, data: Dict[str, Any]) -> Settings:
        """Accept our own dict, PySERA keys, both mixed, a preset name plus overrides, or a
        run's provenance JSON. Unknown keys are errors listing every accepted key."""
        if is_provenance(data):
            return cls.from_dict(data["settings"])
        data = dict(data)
        preset = data.pop("preset", None)
        base = preset_settings(preset) if preset else cls()
        own_keys = {f.name for f in fields(cls)}
        pysera_only = (set(PYSERA_KEYS) | {"IBSI_based_parameters"}) - own_keys
        unknown = [key for key in data if key not in own_keys | pysera_only]
        if unknown:
            accepted = sorted(own_keys | pysera_only | {"preset"}, key=str.lower)
            raise SettingsError(f"unknown settings key(s) {_with_suggestions(unknown, accepted)}; accepted keys: "
                                f"{', '.join(accepted)}")
        pysera = {key: data.pop(key) for key in list(data) if key in pysera_only}
        settings = cls.from_dict(_merge(base.to_dict(), data)) if data else base
        return cls.from_pysera(base=settings, **pysera) if pysera else settings

    @classmethod
    def from_call(cls, settings: Optional[Settings] = None, IBSI_based_parameters: Optional[Dict] = None,
                  **keywords) -> Settings:
        """The settings of a ``process_batch`` call: ``settings`` (default: PySERA's defaults),
        then every PySERA keyword the caller gave on top. As in PySERA, ``None`` means "not
        given" (the default, or the value in ``settings``), so a keyword the caller wrote
        always wins, even when it equals PySERA's default."""
        given = {key: value for key, value in keywords.items() if value is not None}
        if settings is None and not given and not IBSI_based_parameters:
            return cls()
        if settings is not None and not isinstance(settings, Settings):
            raise SettingsError(f"settings: expected a Settings object, got {type(settings).__name__} "
                                "(use Settings.from_json for a file)")
        return cls.from_pysera(base=settings, IBSI_based_parameters=IBSI_based_parameters, **given)

    @classmethod
    def from_pysera(cls, base: Optional[Settings] = None, IBSI_based_parameters: Optional[Dict] = None,
                    **kwargs) -> Settings:
        """Translate PySERA ``process_batch`` keyword arguments and ``IBSI_based_parameters``.

        Unknown keys raise :class:`SettingsError` naming the key and listing the accepted keys.
        ``bin_size`` is the bin width for FBS and the number of bins for FBN, as in PySERA.
        """
        params: Dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in PYSERA_KEYS:  # radiomics_* keys may also sit at the top level of a settings file
                accepted = [k for k in PYSERA_KEYS if not k.startswith("radiomics_")]
                raise SettingsError(f"unknown parameter {_with_suggestions([key], accepted)}; accepted: "
                                    f"{', '.join(accepted)}")
            params[key] = value
        if IBSI_based_parameters:
            if not isinstance(IBSI_based_parameters, dict):
                raise SettingsError(
                    f"IBSI_based_parameters: expected a dict, got {type(IBSI_based_parameters).__name__}"
                )
            for key, value in IBSI_based_parameters.items():
                if not key.startswith("radiomics_") or key not in PYSERA_KEYS:
                    accepted = [k for k in PYSERA_KEYS if k.startswith("radiomics_")]
                    raise SettingsError(f"IBSI_based_parameters: unknown key {_with_suggestions([key], accepted)}; "
                                        f"accepted keys: {', '.join(accepted)}")
                params[key] = value
        plain = (base or cls()).to_dict()
        bin_size = params.pop("bin_size", params.pop("radiomics_BinSize", None))
        for key, value in params.items():
            path, convert = PYSERA_KEYS[key]
            try:
                converted = convert(value)
            except SettingsError as exc:
                raise SettingsError(f"{key}: {exc}") from None
            except (TypeError, ValueError):
                raise SettingsError(f"{key}: {value!r} is not a valid value") from None
            set_path(plain, path, converted)
        if bin_size is not None:
            _check(_is_number(bin_size) and bin_size > 0, "bin_size", bin_size, "a positive number")
            if str(plain["discretisation"]["method"]).upper() == "FBN":
                _check(float(bin_size).is_integer(), "bin_size", bin_size, "an integer number of bins for FBN")
                plain["discretisation"]["bin_number"] = int(bin_size)
            else:
                plain["discretisation"]["bin_width"] = float(bin_size)
        try:
            return cls.from_dict(plain)
        except SettingsError as exc:
            # Re-word the dotted field name back into the PySERA key the user wrote.
            message = str(exc)
            for key, (path, _) in PYSERA_KEYS.items():
                if message.startswith(path + ":") and key in params:
                    message = key + message[len(path):]
                    break
            raise SettingsError(message) from None

    def to_pysera(self) -> Dict[str, Any]:
        """PySERA-style keyword arguments (with ``IBSI_based_parameters``) equivalent to these settings."""
        plain = self.to_dict()
        result: Dict[str, Any] = {}
        ibsi: Dict[str, Any] = {}
        for key, (path, _) in PYSERA_KEYS.items():
            if key in ("bin_size", "radiomics_BinSize"):
                continue
            value = get_path(plain, path)
            if path in ("categories", "dimensions"):
                value = ",".join(value)
            if isinstance(value, bool):
                value = int(value) if key.startswith("radiomics_") else value
            (ibsi if key.startswith("radiomics_") else result)[key] = value
        disc = self.discretisation
        result["bin_size"] = disc.bin_number if disc.method == DiscretisationMethod.FBN else disc.bin_width
        result["IBSI_based_parameters"] = ibsi
        return result


#: Families that make no sense on a response map: diagnostics and shape do not read intensities.
_NOT_FILTER_CATEGORIES = ("diag", "morph")


def _validate_filters(settings: Settings) -> None:
    """Parse ``filters`` into validated FilterSpec entries and check ``filter_categories``."""
    from .engine.filters.spec import FilterSpecError, parse_filters

    try:
        object.__setattr__(settings, "filters", parse_filters(settings.filters, "filters"))
    except FilterSpecError as exc:
        raise SettingsError(str(exc)) from None
    valid = tuple(c for c in CATEGORIES if c not in _NOT_FILTER_CATEGORIES)
    names = parse_selection(settings.filter_categories, CATEGORIES, "filter_categories")
    excluded = [name for name in names if name in _NOT_FILTER_CATEGORIES]
    if excluded and names != CATEGORIES:
        raise SettingsError(f"filter_categories: {', '.join(excluded)} do not depend on intensities; "
                            f"accepted values: all, {', '.join(valid)}")
    object.__setattr__(settings, "filter_categories", tuple(n for n in names if n in valid))


def read_json_object(text_or_path: str, what: str) -> Dict[str, Any]:
    """A JSON object from JSON text (starting with ``{``) or from a file; ``what`` names it in errors."""
    source = text_or_path
    if not text_or_path.lstrip().startswith("{"):
        if not os.path.isfile(text_or_path):
            problem = "is a folder, not a JSON file" if os.path.isdir(text_or_path) else "file not found"
            raise SettingsError(f"{what}: {problem}")
        with open(text_or_path, encoding="utf-8") as handle:
            source = handle.read()
    try:
        data = json.loads(source)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{what}: expected a JSON object at the top level")
    return data


#: Top-level keys of the provenance JSON that :func:`export.write_outputs` writes beside a report.
PROVENANCE_KEYS = ("settings", "pysera_parameters", "provenance", "outputs")


def is_provenance(data: Dict[str, Any]) -> bool:
    """Whether a JSON object is a run's provenance record (its ``settings`` describe the run)."""
    return isinstance(data.get("settings"), dict) and "provenance" in data and set(data) <= set(PROVENANCE_KEYS)


def _with_suggestions(keys: typing.Iterable[str], accepted: typing.Iterable[str]) -> str:
    """``'bin_sise' (did you mean 'bin_size'?)`` for each key, for unknown-key errors."""
    import difflib  # only on this error path: it costs import time (heapq)

    accepted = list(accepted)
    lowered = {a.lower(): a for a in accepted}
    parts = []
    for key in keys:
        close = difflib.get_close_matches(str(key).lower(), list(lowered), n=1, cutoff=0.8)
        parts.append(f"{key!r} (did you mean {lowered[close[0]]!r}?)" if close else repr(key))
    return ", ".join(parts)


def _parse_workers(value: Union[int, str]) -> Union[int, str]:
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit() and int(text) >= 1:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise SettingsError(f"num_workers: {value!r} is not valid; accepted values: 'auto' or an integer >= 1")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false", "yes", "no"):
        return value.strip().lower() in ("1", "true", "yes")
    raise SettingsError(f"{value!r} is not valid; accepted values: 0, 1, True, False")


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or not _is_number(float(value)) or not float(value).is_integer():
        raise SettingsError(f"{value!r} is not valid; accepted values: an integer")
    return int(float(value))


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise SettingsError(f"{value!r} is not valid; accepted values: a number")
    return float(value)


def _choice(enum_cls):
    return lambda value: enum_cls.parse(value).value


def _identity(value: Any) -> Any:
    return value


#: PySERA key -> (dotted field path in Settings.to_dict(), converter). ``bin_size`` is special:
#: it becomes bin_width (FBS) or bin_number (FBN) depending on the discretisation method.
PYSERA_KEYS: Dict[str, Tuple[str, Any]] = {
    # process_batch keyword arguments that are settings (paths and callbacks are not)
    "categories": ("categories", _identity),
    "dimensions": ("dimensions", _identity),
    "bin_size": ("discretisation.bin_width", _to_float),
    "min_roi_volume": ("rois.min_roi_volume", _to_float),
    "roi_num": ("rois.roi_num", _to_int),
    "roi_selection_mode": ("rois.selection_mode", _choice(RoiSelectionMode)),
    "apply_preprocessing": ("rois.apply_preprocessing", _to_bool),
    "feature_value_mode": ("feature_value_mode", _choice(FeatureValueMode)),
    "aggregation_lesion": ("aggregation_lesion", _to_bool),
    "extraction_mode": ("extraction_mode", _choice(ExtractionMode)),
    "deep_learning_model": ("deep.model", _choice(DeepModel)),
    "report": ("report", _choice(ReportLevel)),
    "column_names": ("column_names", _choice(ColumnNames)),
    "num_workers": ("num_workers", _parse_workers),
    "enable_parallelism": ("enable_parallelism", _to_bool),
    # IBSI_based_parameters
    "radiomics_DataType": ("modality", _choice(Modality)),
    "radiomics_DiscType": ("discretisation.method", _choice(DiscretisationMethod)),
    "radiomics_BinSize": ("discretisation.bin_width", _to_float),
    "radiomics_isScale": ("resampling.enabled", _to_bool),
    "radiomics_VoxInterp": ("resampling.image_interpolator", _choice(Interpolator)),
    "radiomics_ROIInterp": ("resampling.roi_interpolator", _choice(Interpolator)),
    "radiomics_isotVoxSize": ("resampling.voxel_size_mm", _to_float),
    "radiomics_isotVoxSize2D": ("resampling.voxel_size_2d_mm", _to_float),
    "radiomics_isIsot2D": ("resampling.in_plane_only", _to_bool),
    "radiomics_isGLround": ("resampling.round_intensities", _to_bool),
    "radiomics_isReSegRng": ("resegmentation.range_enabled", _to_bool),
    "radiomics_isOutliers": ("resegmentation.outlier_filter", _to_bool),
    "radiomics_isQuntzStat": ("resampling.statistics_on_resampled", _to_bool),
    "radiomics_ReSegIntrvl01": ("resegmentation.range_lower", _to_float),
    "radiomics_ReSegIntrvl02": ("resegmentation.range_upper", _to_float),
    "radiomics_ROI_PV": ("resampling.roi_partial_volume", _to_float),
    "radiomics_qntz": ("discretisation.quantiser", _choice(Quantiser)),
    "radiomics_IVH_Type": ("ivh.ivh_type", _to_int),
    "radiomics_IVH_DiscCont": ("ivh.continuous", _to_bool),
    "radiomics_IVH_binSize": ("ivh.bin_size", _to_float),
    "radiomics_isROIsCombined": ("rois.combine_rois", _to_bool),
    "radiomics_SUV": ("pet_suv", _to_bool),  # ours: PySERA has no SUV switch
}


# ---------------------------------------------------------------------------------------------
# Generic (de)serialisation of the nested frozen dataclasses
# ---------------------------------------------------------------------------------------------
def _to_plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    return value


def _from_plain(cls, data: Any, prefix: str):
    if not isinstance(data, dict):
        raise SettingsError(f"{prefix or 'settings'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise SettingsError(
            f"unknown settings key(s) {_with_suggestions([where + k for k in unknown], [where + k for k in known])}; "
            f"accepted keys: {', '.join(where + k for k in sorted(known))}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        hint = hints[name]
        if is_dataclass(hint):
            kwargs[name] = _from_plain(hint, value, key)
        elif isinstance(hint, type) and issubclass(hint, _Choice):
            kwargs[name] = hint.parse(value, key)
        elif hint is bool:
            try:
                kwargs[name] = _to_bool(value)
            except SettingsError as exc:
                raise SettingsError(f"{key}: {exc}") from None
        elif hint is float:
            _check(_is_number(value), key, value, "a number")
            kwargs[name] = float(value)
        elif hint is int:
            _check(_is_number(value) and float(value).is_integer(), key, value, "an integer")
            kwargs[name] = int(value)
        elif hint is str:
            _check(isinstance(value, str), key, value, "a string")
            kwargs[name] = value
        elif typing.get_origin(hint) is tuple:
            _check(isinstance(value, (list, tuple, str)), key, value, "a list")
            kwargs[name] = value if isinstance(value, str) else tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)  # stage classes name their own fields ("stage.field") in errors


def _merge(base: Dict[str, Any], overrides: Dict[str, Any]) -> Dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def set_path(plain: Dict[str, Any], path: str, value: Any) -> None:
    """Set ``plain['a']['b'] = value`` for ``path='a.b'`` (nested settings dicts)."""
    *parents, leaf = path.split(".")
    node = plain
    for part in parents:
        node = node[part]
    node[leaf] = value


def get_path(plain: Dict[str, Any], path: str) -> Any:
    """``plain['a']['b']`` for ``path='a.b'``."""
    node = plain
    for part in path.split("."):
        node = node[part]
    return node


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------
def _pysera_defaults() -> Settings:
    """PySERA 2.1 defaults (``pysera/config/settings.py``); they are also ``Settings()``'s."""
    return Settings()


def _ibsi_common(**changes) -> Dict[str, Any]:
    common = dict(
        modality=Modality.CT,
        categories=CATEGORIES,
        dimensions=DIMENSIONS,
        rois=RoiSettings(min_roi_volume=0, roi_num=1000, combine_rois=True),
    )
    common.update(changes)
    return common


PRESET_DESCRIPTIONS: Dict[str, str] = {
    "pysera_default": "PySERA 2.1 defaults (FBS 25, no resampling)",
    "digital_phantom": "IBSI digital phantom: no processing, grey levels used as bins",
    "ibsi_A": "IBSI configuration A: 2D, no interpolation, range [-500, 400], FBS 25",
    "ibsi_B": "IBSI configuration B: 2D, bilinear in-plane to 2 mm, range [-500, 400], FBN 32",
    "ibsi_C": "IBSI configuration C: 3D, trilinear to 2 mm, range [-1000, 400], FBS 25",
    "ibsi_D": "IBSI configuration D: 3D, trilinear to 2 mm, outlier filter, FBN 32",
    "ibsi_E": "IBSI configuration E: 3D, tricubic to 2 mm, range [-1000, 400] + outliers, FBN 32",
    "ct": "CT starting point: 1 mm isotropic (linear), round HU, range [-1000, 400], FBS 25 HU",
    "mr": "MR starting point: 1 mm isotropic (linear), outlier filter, FBN 32",
    "pet": "PET starting point: 2 mm isotropic (linear), FBS 0.25 SUV, statistics on the original SUVs",
}


def preset_settings(name: str) -> Settings:
    """Named starting points: PySERA defaults, IBSI configurations, modality defaults."""
    key = str(name).strip()
    lookup = {k.lower(): k for k in PRESET_DESCRIPTIONS}
    if key.lower() not in lookup:
        raise SettingsError(f"preset: {name!r} is not valid; accepted values: {', '.join(PRESET_DESCRIPTIONS)}")
    key = lookup[key.lower()]
    linear = Interpolator.LINEAR
    if key == "pysera_default":
        return _pysera_defaults()
    if key == "digital_phantom":
        return Settings(**_ibsi_common(
            modality=Modality.OTHER,
            discretisation=DiscretisationSettings(method=DiscretisationMethod.NONE, bin_width=1.0),
            ivh=IVHSettings(ivh_type=0, continuous=False),
        ))
    if key == "ibsi_A":
        return Settings(**_ibsi_common(
            resegmentation=ResegmentationSettings(range_enabled=True, range_lower=-500, range_upper=400),
            discretisation=DiscretisationSettings(method=DiscretisationMethod.FBS, bin_width=25),
            ivh=IVHSettings(ivh_type=0, continuous=False),
        ))
    if key == "ibsi_B":
        return Settings(**_ibsi_common(
            resampling=ResamplingSettings(enabled=True, in_plane_only=True, voxel_size_2d_mm=2.0,
                                          image_interpolator=linear, roi_interpolator=linear,
                                          round_intensities=True),
            resegmentation=ResegmentationSettings(range_enabled=True, range_lower=-500, range_upper=400),
            discretisation=DiscretisationSettings(method=DiscretisationMethod.FBN, bin_number=32),
            ivh=IVHSettings(ivh_type=0, continuous=False),
        ))
    resampled_3d = dict(enabled=True, voxel_size_mm=2.0, roi_interpolator=linear, round_intensities=True)
    if key == "ibsi_C":
        return Settings(**_ibsi_common(
            resampling=ResamplingSettings(image_interpolator=linear, **resampled_3d),
            resegmentation=ResegmentationSettings(range_enabled=True, range_lower=-1000, range_upper=400),
            discretisation=DiscretisationSettings(method=DiscretisationMethod.FBS, bin_width=25),
            ivh=IVHSettings(ivh_type=0, continuous=True, bin_size=2.5),
        ))
    if key == "ibsi_D":
        return Settings(**_ibsi_common(
            resampling=ResamplingSettings(image_interpolator=linear, **resampled_3d),
            resegmentation=ResegmentationSettings(outlier_filter=True),
            discretisation=DiscretisationSettings(method=DiscretisationMethod.FBN, bin_number=32),
            ivh=IVHSettings(ivh_type=0, continuous=False),
        ))
    if key == "ibsi_E":
        return Settings(**_ibsi_common(
            resampling=ResamplingSettings(image_interpolator=Interpolator.CUBIC, **resampled_3d),
            resegmentation=ResegmentationSettings(range_enabled=True, range_lower=-1000, range_upper=400,
                                                  outlier_filter=True),
            discretisation=DiscretisationSettings(method=DiscretisationMethod.FBN, bin_number=32),
            ivh=IVHSettings(ivh_type=2, continuous=False),
        ))
    if key == "ct":
        return Settings(
            modality=Modality.CT, categories=CATEGORIES, dimensions=("1st", "3d"),
            resampling=ResamplingSettings(enabled=True, voxel_size_mm=1.0, image_interpolator=linear,
                                          roi_interpolator=linear, round_intensities=True),
            resegmentation=ResegmentationSettings(range_enabled=True, range_lower=-1000, range_upper=400),
            discretisation=DiscretisationSettings(method=DiscretisationMethod.FBS, bin_width=25),
            ivh=IVHSettings(ivh_type=0, continuous=False),
        )
    if key == "mr":
        return Settings(
            modality=Modality.MRI, categories=CATEGORIES, dimensions=("1st", "3d"),
            resampling=ResamplingSettings(enabled=True, voxel_size_mm=1.0, image_interpolator=linear,
                                          roi_interpolator=linear),
            resegmentation=ResegmentationSettings(outlier_filter=True),
            discretisation=DiscretisationSettings(method=DiscretisationMethod.FBN, bin_number=32),
            ivh=IVHSettings(ivh_type=1, continuous=False),
        )
    # pet
    return Settings(
        modality=Modality.PET, categories=CATEGORIES, dimensions=("1st", "3d"),
        resampling=ResamplingSettings(enabled=True, voxel_size_mm=2.0, image_interpolator=linear,
                                      roi_interpolator=linear, statistics_on_resampled=False),
        discretisation=DiscretisationSettings(method=DiscretisationMethod.FBS, bin_width=0.25),
        ivh=IVHSettings(ivh_type=0, continuous=True, bin_size=0.1),
    )

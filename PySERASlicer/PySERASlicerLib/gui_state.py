"""The module's parameter node <-> :class:`Settings`, without Qt or Slicer.

The Slicer widget keeps everything the user edits in a parameter node (saved with the scene).
This module is the single place that knows how those flat GUI values map onto the nested,
validated :class:`Settings`:

* :data:`PARAMETERS` lists every settings-related parameter-node field: its type, default,
  choices and the ``Settings.to_dict()`` path it edits. ``PySERASlicerParameterNode`` in
  ``PySERASlicer.py`` declares the same fields with the same defaults (a test compares them).
* :func:`settings_to_values` / :func:`values_to_settings` convert both ways; the round trip
  is exact for every field the GUI exposes (tested). Settings the GUI does not show
  (texture distances, deep-model details, FBN quantiser, ...) are kept in the hidden
  ``baseSettings`` JSON parameter, so loading a settings JSON, editing it in the GUI and
  saving it again loses nothing.
* :func:`read_values` / :func:`write_values` work on any object with attributes (the
  parameter node wrapper in Slicer, a ``SimpleNamespace`` in tests).

Small helpers for the manually wired widgets live here too: segment ids stored comma-joined
(empty = all segments), optional paths (``pathlib.Path("")`` is ".", meaning "not set") and
the "is Run possible" checks of the single-case and batch sections.

The decisions behind the widget's slots are here as well, so they are tested on real MRML
nodes without Qt: :class:`GuiBinding` (connect a parameter node to the widgets once, Slicer
5.6-5.10), :func:`choose_mask`, :func:`run_segment_ids`, :func:`batch_inputs`,
:func:`path_text`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .settings import (
    CATEGORIES,
    DIMENSIONS,
    PRESET_DESCRIPTIONS,
    ColumnNames,
    DeepModel,
    DiscretisationMethod,
    ExtractionMode,
    FeatureValueMode,
    GantryTiltPolicy,
    Interpolator,
    MissingSlicePolicy,
    Modality,
    ReportLevel,
    RoiSelectionMode,
    Settings,
    SettingsError,
    get_path,
    preset_settings,
    set_path,
)

#: The project's online documentation (the module's help text links it; EXTENSION_HOMEPAGE).
HOMEPAGE_URL = "https://github.com/pysera-slicer/PySERASlicer#readme"

#: Preset combo box entry that means "the values below were edited / loaded from a file".
CUSTOM_PRESET = "custom"
PRESET_CHOICES: Tuple[str, ...] = tuple(PRESET_DESCRIPTIONS) + (CUSTOM_PRESET,)
DEFAULT_PRESET = "pysera_default"

#: Resampling modes shown in the GUI: off, in-plane (IBSI "2D") or isotropic 3D.
RESAMPLING_CHOICES: Tuple[str, ...] = ("off", "2D", "3D")

#: Hidden parameter holding the full settings JSON the GUI values are applied on.
BASE_SETTINGS = "baseSettings"
#: Parameter holding the IBSI-2 filter list as JSON text (a manually wired text box).
FILTERS_TEXT = "filtersText"
#: Parameter holding the "Only these features" names, comma-joined (``Settings.features``).
FEATURE_NAMES = "featureNames"

#: Common filters offered by the "add filter" menu (docs/filters.md).
FILTER_EXAMPLES: Dict[str, Dict[str, Any]] = {
    "LoG, sigma 1 mm": {"filter": "log", "sigma_mm": 1.0},
    "LoG, sigma 2 mm": {"filter": "log", "sigma_mm": 2.0},
    "LoG, sigma 3 mm": {"filter": "log", "sigma_mm": 3.0},
    "Mean, 5 voxels": {"filter": "mean", "support": 5},
    "Wavelet coif1 LLH, level 1": {"filter": "wavelet", "wavelet": "coif1", "set": "LLH", "level": 1},
    "Wavelet db3 HHH, level 2, rotation invariant": {"filter": "wavelet", "wavelet": "db3", "set": "HHH",
                                                     "level": 2, "rotation_invariant": True},
    "Laws L5E5E5 energy, rotation invariant": {"filter": "laws", "kernel": "L5E5E5", "energy_delta": 7,
                                               "rotation_invariant": True},
    "Gabor, sigma 5 mm, lambda 2 mm, 2D, rotation invariant": {
        "filter": "gabor", "sigma_mm": 5.0, "lambda_mm": 2.0, "gamma": 1.5, "rotation_invariant": True,
        "theta_step_deg": 22.5, "dimensions": "2D"},
    "Simoncelli, level 1": {"filter": "simoncelli", "level": 1},
}


def category_parameter(name: str) -> str:
    """Parameter-node field of a category checkbox: ``glcm`` -> ``categoryGlcm``."""
    return "category" + name.capitalize()


def dimension_parameter(name: str) -> str:
    """Parameter-node field of a dimension checkbox: ``2_5d`` -> ``dimension2_5d``."""
    return "dimension" + name


@dataclass(frozen=True)
class GuiParameter:
    """One settings-related parameter-node field.

    ``path`` is the dotted ``Settings.to_dict()`` key it edits; special mappings use a
    pseudo path (``categories:<name>``, ``dimensions:<name>``, ``features:names`` (the names
    comma-joined), ``resampling:mode``, ``num_workers``).
    """

    name: str
    kind: type
    path: str
    choices: Tuple[Any, ...] = ()
    label: str = ""


def _choices(enum_cls) -> Tuple[str, ...]:
    return tuple(member.value for member in enum_cls)


PARAMETERS: Tuple[GuiParameter, ...] = (
    GuiParameter("modality", str, "modality", _choices(Modality), "Modality"),
    GuiParameter("petSuv", bool, "pet_suv", label="PET SUV"),
    GuiParameter("dicomGantryTilt", str, "dicom.gantry_tilt", _choices(GantryTiltPolicy), "DICOM gantry tilt"),
    GuiParameter("dicomMissingSlices", str, "dicom.missing_slices", _choices(MissingSlicePolicy),
                 "DICOM missing slices"),
    *(GuiParameter(category_parameter(c), bool, f"categories:{c}", label=c.upper()) for c in CATEGORIES),
    *(GuiParameter(dimension_parameter(d), bool, f"dimensions:{d}", label=d) for d in DIMENSIONS),
    GuiParameter(FEATURE_NAMES, str, "features:names", label="Only these features"),
    # discretisation
    GuiParameter("discretisationMethod", str, "discretisation.method", _choices(DiscretisationMethod),
                 "Discretisation"),
    GuiParameter("binWidth", float, "discretisation.bin_width", label="Bin width (FBS)"),
    GuiParameter("binNumber", int, "discretisation.bin_number", label="Number of bins (FBN)"),
    # resampling
    GuiParameter("resamplingMode", str, "resampling:mode", RESAMPLING_CHOICES, "Resampling"),
    GuiParameter("voxelSize", float, "resampling.voxel_size_mm", label="Voxel size 3D (mm)"),
    GuiParameter("voxelSize2D", float, "resampling.voxel_size_2d_mm", label="Voxel size 2D (mm)"),
    GuiParameter("imageInterpolator", str, "resampling.image_interpolator", _choices(Interpolator),
                 "Image interpolator"),
    GuiParameter("roiInterpolator", str, "resampling.roi_interpolator", _choices(Interpolator),
                 "ROI interpolator"),
    GuiParameter("roiPartialVolume", float, "resampling.roi_partial_volume", label="ROI partial volume"),
    GuiParameter("roundIntensities", bool, "resampling.round_intensities", label="Round intensities"),
    # re-segmentation
    GuiParameter("statisticsOnResampled", bool, "resampling.statistics_on_resampled",
                 label="Statistics on the resampled image"),
    GuiParameter("rangeEnabled", bool, "resegmentation.range_enabled", label="Range re-segmentation"),
    GuiParameter("rangeLower", float, "resegmentation.range_lower", label="Range lower"),
    GuiParameter("rangeUpper", float, "resegmentation.range_upper", label="Range upper"),
    GuiParameter("outlierFilter", bool, "resegmentation.outlier_filter", label="Outlier filter (3 SD)"),
    # intensity-volume histogram
    GuiParameter("ivhType", int, "ivh.ivh_type", (0, 1, 2, 3), "IVH type"),
    GuiParameter("ivhContinuous", bool, "ivh.continuous", label="IVH continuous"),
    GuiParameter("ivhBinSize", float, "ivh.bin_size", label="IVH bin size"),
    # ROIs
    GuiParameter("minRoiVolume", int, "rois.min_roi_volume", label="Minimum ROI volume (voxels)"),
    GuiParameter("roiNum", int, "rois.roi_num", label="Maximum number of ROIs"),
    GuiParameter("roiSelectionMode", str, "rois.selection_mode", _choices(RoiSelectionMode), "ROI selection"),
    GuiParameter("combineRois", bool, "rois.combine_rois", label="One ROI per label"),
    GuiParameter("aggregationLesion", bool, "aggregation_lesion", label="Aggregate lesions"),
    GuiParameter("applyPreprocessing", bool, "rois.apply_preprocessing", label="Round mask values"),
    # output and run
    GuiParameter("featureValueMode", str, "feature_value_mode", _choices(FeatureValueMode), "Feature values"),
    GuiParameter("extractionMode", str, "extraction_mode", _choices(ExtractionMode), "Extraction mode"),
    GuiParameter("deepModel", str, "deep.model", _choices(DeepModel), "Deep model"),
    GuiParameter("deepWeights", Path, "deep.weights_path", label="Deep model weights"),
    GuiParameter("numWorkers", int, "num_workers", label="Workers (0 = auto)"),
    GuiParameter("enableParallelism", bool, "enable_parallelism", label="Parallel cases"),
    GuiParameter("reportLevel", str, "report", _choices(ReportLevel), "Report level"),
    GuiParameter("columnNames", str, "column_names", _choices(ColumnNames), "Column names"),
)

PARAMETERS_BY_NAME: Dict[str, GuiParameter] = {p.name: p for p in PARAMETERS}


# ---------------------------------------------------------------------------------------------
# Settings <-> flat values
# ---------------------------------------------------------------------------------------------
def settings_to_values(settings: Settings) -> Dict[str, Any]:
    """Every GUI value for ``settings`` (plus the hidden base-settings JSON)."""
    plain = settings.to_dict()
    values: Dict[str, Any] = {}
    for parameter in PARAMETERS:
        path = parameter.path
        if path.startswith("categories:"):
            value: Any = path.split(":", 1)[1] in settings.categories
        elif path.startswith("dimensions:"):
            value = path.split(":", 1)[1] in settings.dimensions
        elif path == "features:names":
            value = ", ".join(settings.features)
        elif path == "resampling:mode":
            resampling = settings.resampling
            value = "off" if not resampling.enabled else ("2D" if resampling.in_plane_only else "3D")
        elif path == "num_workers":
            value = 0 if settings.num_workers == "auto" else int(settings.num_workers)
        else:
            value = get_path(plain, path)
        values[parameter.name] = Path(value or "") if parameter.kind is Path else parameter.kind(value)
    values[BASE_SETTINGS] = json.dumps(plain, sort_keys=True)
    values[FILTERS_TEXT] = filters_text(settings.filters)
    return values


def values_to_settings(values: Mapping[str, Any], base: Optional[Settings] = None) -> Settings:
    """Settings from GUI values, applied on ``base`` (default: the hidden base-settings JSON
    in ``values``, else PySERA defaults). Raises :class:`SettingsError` naming the GUI field."""
    if base is None:
        text = values.get(BASE_SETTINGS) or ""
        base = Settings.from_dict(json.loads(text)) if text else preset_settings(DEFAULT_PRESET)
    plain = base.to_dict()
    categories = [c for c in CATEGORIES if values.get(category_parameter(c), c in base.categories)]
    dimensions = [d for d in DIMENSIONS if values.get(dimension_parameter(d), d in base.dimensions)]
    if not categories:
        raise SettingsError("Categories: select at least one feature category")
    if not dimensions:
        raise SettingsError("Dimensions: select at least one dimension")
    plain["categories"] = categories
    plain["dimensions"] = dimensions
    for parameter in PARAMETERS:
        if parameter.name not in values or ":" in parameter.path:
            continue
        value = values[parameter.name]
        if parameter.path == "num_workers":
            value = "auto" if int(value) <= 0 else int(value)
        elif parameter.kind is Path:  # an unset path field holds Path(), i.e. "."
            value = "" if path_value(value) is None else str(value)
        set_path(plain, parameter.path, value)
    mode = values.get("resamplingMode")
    if mode is not None:
        if mode not in RESAMPLING_CHOICES:
            raise SettingsError(f"Resampling: {mode!r} is not valid; accepted values: {', '.join(RESAMPLING_CHOICES)}")
        plain["resampling"]["enabled"] = mode != "off"
        plain["resampling"]["in_plane_only"] = mode == "2D"
    if FILTERS_TEXT in values:
        plain["filters"] = list(parse_filters_text(values[FILTERS_TEXT]))
    if FEATURE_NAMES in values:
        plain["features"] = values[FEATURE_NAMES]
    try:
        settings = Settings.from_dict(plain)
    except SettingsError as exc:
        raise SettingsError(_gui_wording(str(exc))) from None
    if settings.features:  # a mistyped name is shown before Run, not as an error of every segment
        from .engine.registry import select_named

        select_named(settings.features, "Only these features")
    return settings


def _gui_wording(message: str) -> str:
    """Name the GUI field in a settings error (``discretisation.bin_width: ...`` -> ``Bin width (FBS): ...``)."""
    for parameter in PARAMETERS:
        if message.startswith(parameter.path + ":") and parameter.label:
            return f"{parameter.label}: {message[len(parameter.path) + 1:].strip()}"
    return message


def defaults() -> Dict[str, Any]:
    """Values of a fresh parameter node: the PySERA-defaults preset."""
    values = settings_to_values(preset_settings(DEFAULT_PRESET))
    values["preset"] = DEFAULT_PRESET
    return values


def effective_preset(values: Mapping[str, Any]) -> str:
    """The stored preset name while the values still equal that preset, else ``custom``
    (the widget shows "custom" as soon as a field is edited)."""
    name = values.get("preset", CUSTOM_PRESET)
    if name not in PRESET_DESCRIPTIONS:
        return CUSTOM_PRESET
    try:
        return name if values_to_settings(values) == preset_settings(name) else CUSTOM_PRESET
    except SettingsError:
        return CUSTOM_PRESET


def preset_values(name: str) -> Dict[str, Any]:
    """Values for a named preset (``custom`` is not a preset: it keeps the current values)."""
    values = settings_to_values(preset_settings(name))
    values["preset"] = name
    return values


# ---------------------------------------------------------------------------------------------
# Reading and writing a parameter node (any object with attributes)
# ---------------------------------------------------------------------------------------------
SETTINGS_FIELDS: Tuple[str, ...] = tuple(p.name for p in PARAMETERS) + (BASE_SETTINGS, FILTERS_TEXT)


def read_values(node: Any) -> Dict[str, Any]:
    """The settings fields (and the preset name) of a parameter node."""
    return {name: getattr(node, name) for name in SETTINGS_FIELDS + ("preset",) if hasattr(node, name)}


def write_values(node: Any, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        if getattr(node, name, None) != value:
            setattr(node, name, value)


def settings_from_node(node: Any) -> Settings:
    """The run settings described by a parameter node."""
    return values_to_settings(read_values(node))


def apply_settings(node: Any, settings: Settings, preset: str = CUSTOM_PRESET) -> None:
    """Show ``settings`` in the GUI (e.g. after loading a settings JSON)."""
    values = settings_to_values(settings)
    values["preset"] = preset
    write_values(node, values)


def load_settings_file(node: Any, path: Any) -> Settings:
    """Load a settings JSON (ours, PySERA keys, or a preset plus overrides) into the node."""
    settings = Settings.from_json(str(path))
    apply_settings(node, settings)
    return settings


def save_settings_file(node: Any, path: Any) -> Settings:
    """Write the node's settings as JSON (``Settings.to_json``)."""
    settings = settings_from_node(node)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    settings.to_json(str(path))
    return settings


def set_all(node: Any, names: Iterable[str], checked: bool) -> None:
    """The All/None buttons of the category and dimension boxes."""
    for name in names:
        setattr(node, name, checked)


CATEGORY_FIELDS: Tuple[str, ...] = tuple(category_parameter(c) for c in CATEGORIES)
DIMENSION_FIELDS: Tuple[str, ...] = tuple(dimension_parameter(d) for d in DIMENSIONS)


# ---------------------------------------------------------------------------------------------
# Helpers for the manually wired widgets
# ---------------------------------------------------------------------------------------------
def split_ids(text: str) -> List[str]:
    """Segment ids stored comma-joined in a str parameter ("" = all segments)."""
    return [part.strip() for part in str(text or "").split(",") if part.strip()]


def join_ids(ids: Sequence[str]) -> str:
    return ",".join(str(i) for i in ids)


def segment_selection_value(selected: Sequence[str], all_ids: Sequence[str]) -> str:
    """What to store for a segment selection: "" when every segment is selected (so segments
    added later are included too), else the chosen ids in segmentation order."""
    chosen = set(selected)
    if not all_ids or set(all_ids) <= chosen:
        return ""
    return join_ids([sid for sid in all_ids if sid in chosen])


def selected_segment_ids(stored: str, all_ids: Sequence[str]) -> List[str]:
    """Segment ids to extract / to check in the selector: the stored ones that still exist,
    or all segments when nothing (or nothing valid) is stored."""
    wanted = [sid for sid in split_ids(stored) if sid in all_ids]
    return wanted or list(all_ids)


def is_segmentation(node: Any) -> bool:
    return node is not None and node.IsA("vtkMRMLSegmentationNode")


def segment_ids_of(segmentation: Any) -> List[str]:
    """Every segment id of a segmentation node, in segmentation order."""
    segments = segmentation.GetSegmentation()
    return [segments.GetNthSegmentID(i) for i in range(segments.GetNumberOfSegments())]


def run_segment_ids(mask: Any, stored: str) -> Optional[List[str]]:
    """Segment ids a run extracts: the stored ones that still exist, what the selector shows
    (a segment deleted since it was chosen is dropped, never passed on as an unknown id);
    None for all segments or a labelmap."""
    if not is_segmentation(mask):
        return None
    all_ids = segment_ids_of(mask)
    chosen = selected_segment_ids(stored, all_ids)
    return None if chosen == all_ids else chosen


def choose_mask(node: Any, mask: Any) -> bool:
    """The mask selector chose ``mask`` (the node its signal passes). A new mask starts with all
    of its segments: ``inputMask`` and ``segmentIds`` change together, under one Modified event,
    so nothing observing the node (the wrapper's own binding, which writes ``inputMask`` back into
    the selector) sees the old mask with the new segment list. Returns False, changing nothing,
    when ``mask`` is already the node's mask (the wrapper echoing a loaded scene into the
    selector): a saved segment subset survives."""
    if _same_node(node.inputMask, mask):
        return False
    was_modifying = node.StartModify()
    try:
        node.inputMask = mask
        node.segmentIds = ""
    finally:
        node.EndModify(was_modifying)
    return True


def _same_node(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return a is b or a.GetID() == b.GetID()


def batch_inputs(values: Mapping[str, Any]) -> Dict[str, Optional[Path]]:
    """``image_folder``, ``mask_folder`` and ``cases_csv`` for ``start_batch``: a case CSV, when
    set, is used instead of the folders (the Run button's tooltip says so), so the folders are
    passed as None then."""
    csv_path = path_value(values.get("batchCasesCsv"))
    if csv_path is not None:
        return {"image_folder": None, "mask_folder": None, "cases_csv": csv_path}
    return {"image_folder": path_value(values.get("batchImageFolder")),
            "mask_folder": path_value(values.get("batchMaskFolder")), "cases_csv": None}


class GuiBinding:
    """Connects one parameter node to the module's widgets once, and observes it.

    Slicer 5.6.0-5.8.1's ``parameterNode.connectGui(...)`` returns None (5.10 returns a tag), so
    ``disconnectGui`` cannot undo it there, and connecting again on every ``enter()`` would stack
    full sets of widget bindings and observers (each edit then written and refreshed N times).
    So: connect when the parameter node differs from the one connected (Slicer keeps its singleton
    parameter node across scene closes, so that is once per session in practice), disconnect
    only with a real tag, and observe ``ModifiedEvent`` through a tag of our own, which works on
    every version. ``connect_gui(wrapper)`` returns connectGui's result; ``disconnect_gui(wrapper,
    tag)`` undoes it; ``on_modified(caller, event)`` refreshes the hand-wired widgets.
    """

    def __init__(self, connect_gui: Callable[[Any], Any], disconnect_gui: Callable[[Any, Any], None],
                 on_modified: Callable[[Any, Any], None]):
        self._connect_gui = connect_gui
        self._disconnect_gui = disconnect_gui
        self._on_modified = on_modified
        self.wrapper: Any = None  # the connected parameter node wrapper
        self.connections = 0  # connectGui calls so far
        self._gui_tag: Any = None
        self._observer_tag: Optional[int] = None

    @staticmethod
    def mrml_node(wrapper: Any) -> Any:
        """The vtkMRMLScriptedModuleNode under a parameterNodeWrapper (or the node itself)."""
        return getattr(wrapper, "parameterNode", wrapper)

    def bind(self, wrapper: Any) -> bool:
        """Connect and observe ``wrapper``; nothing new when its node is the connected one.
        Returns True when connectGui was called."""
        connected = self.wrapper is not None and self.mrml_node(self.wrapper) is self.mrml_node(wrapper)
        if not connected:
            self.release()
            self._gui_tag = self._connect_gui(wrapper)
            self.connections += 1
            self.wrapper = wrapper
        if self._observer_tag is None:
            # priority below the wrapper's own observer (0): refresh after it has written the widgets
            self._observer_tag = self.mrml_node(self.wrapper).AddObserver("ModifiedEvent", self._on_modified, -1.0)
        return not connected

    def pause(self) -> None:
        """Stop observing (module left, scene closing); the widget binding stays."""
        if self._observer_tag is not None and self.wrapper is not None:
            self.mrml_node(self.wrapper).RemoveObserver(self._observer_tag)
        self._observer_tag = None

    def release(self) -> None:
        """Stop observing and disconnect the widgets where Slicer gave a tag (5.10+)."""
        self.pause()
        if self.wrapper is not None and self._gui_tag is not None:
            self._disconnect_gui(self.wrapper, self._gui_tag)
        self.wrapper = None
        self._gui_tag = None


def path_value(value: Any) -> Optional[Path]:
    """A path parameter as a Path, or None when unset (``Path()`` is ".")."""
    if value is None:
        return None
    text = str(value).strip()
    if text in ("", "."):
        return None
    return Path(text)


def path_text(value: Any) -> str:
    """What a path field shows: "" for an unset path (the wrapper writes ``Path()`` as ".")."""
    path = path_value(value)
    return "" if path is None else str(path)


#: Path fields bound to a ctkPathLineEdit (the wrapper shows an unset one as ".").
PATH_FIELDS: Tuple[str, ...] = ("batchImageFolder", "batchMaskFolder", "batchCasesCsv", "settingsFile",
                                "deepWeights")


def single_case_problems(volumes: Sequence[Any], mask: Any, values: Mapping[str, Any]) -> List[str]:
    """Why the single-case Run button is disabled (empty list: ready)."""
    problems = []
    if not [v for v in volumes if v is not None]:
        problems.append("Select at least one image volume.")
    if mask is None:
        problems.append("Select a segmentation or labelmap.")
    problems += settings_problems(values)
    return problems


def batch_problems(values: Mapping[str, Any]) -> List[str]:
    """Why the batch Run button is disabled: image and mask folders, or a case CSV, plus an
    output folder (MEDimage's batch page: Run only when the inputs are complete)."""
    problems = []
    csv_path = path_value(values.get("batchCasesCsv"))
    image_dir = path_value(values.get("batchImageFolder"))
    mask_dir = path_value(values.get("batchMaskFolder"))
    if csv_path is not None:
        if not csv_path.is_file():
            problems.append(f"Case CSV {csv_path} does not exist.")
    elif image_dir is None or mask_dir is None:
        problems.append("Choose an image folder and a mask folder, or a case CSV.")
    else:
        for label, folder in (("Image", image_dir), ("Mask", mask_dir)):
            if not folder.exists():
                problems.append(f"{label} folder {folder} does not exist.")
    if path_value(values.get("outputFolder")) is None:
        problems.append("Choose an output folder.")
    problems += settings_problems(values)
    return problems


def settings_problems(values: Mapping[str, Any]) -> List[str]:
    try:
        values_to_settings(values)
    except SettingsError as exc:
        return [str(exc)]
    return []


# ---------------------------------------------------------------------------------------------
# IBSI-2 filters: the JSON list in the Parameters section
# ---------------------------------------------------------------------------------------------
def filters_text(filters: Sequence[Mapping[str, Any]]) -> str:
    """The filter list as JSON text, one entry per line, each without its default values (what
    the user would type); empty text for no filters."""
    from .engine.filters.spec import compact_entry, parse_filter

    if not filters:
        return ""
    lines = [json.dumps(compact_entry(parse_filter(entry))) for entry in filters]
    return "[\n  " + ",\n  ".join(lines) + "\n]"


def parse_filters_text(text: str) -> Tuple[Any, ...]:
    """The validated filter entries of the text box (empty text: no filters). Raises
    :class:`SettingsError` starting with "Filters:" and naming the entry's key."""
    from .engine.filters.spec import FilterSpecError, parse_filters

    if not str(text or "").strip():
        return ()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"Filters: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    if isinstance(data, dict):
        data = [data]
    try:
        return parse_filters(data, "filters")
    except FilterSpecError as exc:
        raise SettingsError(f"Filters: {exc}") from None


def add_filter_text(text: str, example: str) -> str:
    """The text box after appending the named :data:`FILTER_EXAMPLES` entry (a second copy of an
    entry already listed is not added)."""
    filters = list(parse_filters_text(text))
    entry = FILTER_EXAMPLES[example]
    from .engine.filters.spec import parse_filter

    if parse_filter(entry) not in filters:
        filters.append(entry)
    return filters_text(filters)

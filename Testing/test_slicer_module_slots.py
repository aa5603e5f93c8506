"""The decisions behind the module widget's slots (gui_state / slicer_logic), on real MRML nodes
of the slicer-core wheel and real worker processes: what PySERASlicer.py does in Slicer 5.6-5.10
(issue 12: bindings, mask change, stale segments, CSV batch, deep weights, no pandas)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")

from mrml_scene import ParameterView, SlicerCoreScene, module_parameter_node, observer_count  # noqa: E402
from PySERASlicerLib import dependencies, gui_state, slicer_bridge  # noqa: E402
from PySERASlicerLib.engine.deep import WeightsUnavailableError, check_deep_weights  # noqa: E402
from PySERASlicerLib.settings import DeepSettings, ExtractionMode, Settings  # noqa: E402
from PySERASlicerLib.slicer_logic import ExtractionLogic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STAT = Settings(categories="stat", dimensions="1st", enable_parallelism=False)


@pytest.fixture()
def scene():
    return SlicerCoreScene()


def add_case(scene, segments=("tumor", "node", "cyst"), name="CT"):
    rng = np.random.default_rng(7)
    voxels = rng.normal(40, 9, (12, 26, 24)).astype(np.int16)
    volume = scene.add_volume(voxels, np.diag([0.8, 0.8, 2.0, 1.0]), name)
    masks = {}
    for index, segment in enumerate(segments):
        mask = np.zeros(voxels.shape, bool)
        mask[2 + 3 * index:5 + 3 * index, 4:20, 3 + index:18] = True
        masks[segment] = mask
    return volume, scene.add_segmentation(volume, masks, name=f"{name} segments"), voxels, masks


# ---------------------------------------------------------------------------------------------
# Item 1: one widget binding per parameter node, on 5.6/5.8 (connectGui returns None) and 5.10
# ---------------------------------------------------------------------------------------------
class SlicerConnectGui:
    """What ``wrapper.connectGui(ui)`` does to the parameter node, read from Slicer's
    ``parameterNodeWrapper/wrapper.py`` (v5.6.2, v5.8.1, v5.10.0): one ``ModifiedEvent``
    observer per call that writes every bound widget (counted in ``widget_writes``); it returns
    a tag from 5.10 on and None in 5.6.0-5.8.1, where ``disconnectGui(None)`` does nothing."""

    def __init__(self, returns_tag: bool):
        self.returns_tag = returns_tag
        self.widget_writes = 0
        self._live = {}  # tag -> (node, observer tag)

    def connect(self, wrapper):
        tag = len(self._live) + 1
        observer = wrapper.parameterNode.AddObserver("ModifiedEvent", self._write_widgets)
        self._live[tag] = (wrapper.parameterNode, observer)
        return tag if self.returns_tag else None

    def disconnect(self, wrapper, tag):
        if tag in self._live:
            node, observer = self._live.pop(tag)
            node.RemoveObserver(observer)

    @property
    def live_bindings(self):
        return len(self._live)

    def _write_widgets(self, caller, event):
        self.widget_writes += 1


@pytest.mark.parametrize("returns_tag", [False, True], ids=["slicer-5.6-5.8", "slicer-5.10"])
def test_entering_the_module_again_adds_no_binding_and_no_observer(scene, returns_tag):
    node = module_parameter_node(scene.scene)
    observers = observer_count(node)
    gui = SlicerConnectGui(returns_tag)
    refreshes = []
    binding = gui_state.GuiBinding(gui.connect, gui.disconnect, lambda caller, event: refreshes.append(event))
    for _visit in range(4):  # enter() / exit(); logic.getParameterNode() wraps the node anew each time
        assert binding.bind(ParameterView(node)) == (_visit == 0)
        binding.pause()
    binding.bind(ParameterView(node))
    assert binding.connections == 1 and gui.live_bindings == 1
    assert observer_count(node) == observers + 2  # the binding's and the widget refresh's, nothing stacked
    node.Modified()  # one edit: the widgets are written once and the widget refreshes once
    assert gui.widget_writes == 1 and len(refreshes) == 1
    binding.pause()  # module left: the widget refresh stops
    node.Modified()
    assert len(refreshes) == 1


def bound_parameter_node(scene, returns_tag):
    """The module's parameter node, connected through a GuiBinding as initializeParameterNode does."""
    node = module_parameter_node(scene.scene)
    gui = SlicerConnectGui(returns_tag)
    binding = gui_state.GuiBinding(gui.connect, gui.disconnect, lambda caller, event: None)
    binding.bind(ParameterView(node))
    return node, gui, binding


@pytest.mark.parametrize("returns_tag", [False, True], ids=["slicer-5.6-5.8", "slicer-5.10"])
def test_a_scene_close_keeps_the_singleton_parameter_node_and_its_one_binding(scene, returns_tag):
    node, gui, binding = bound_parameter_node(scene, returns_tag)
    binding.pause()  # onSceneStartClose
    scene.scene.Clear(0)  # File > Close scene: singletons are kept (and reset)
    again = module_parameter_node(scene.scene)
    assert again is node
    assert binding.bind(ParameterView(again)) is False  # onSceneEndClose: nothing new
    assert binding.connections == 1 and gui.live_bindings == 1


@pytest.mark.parametrize("returns_tag", [False, True], ids=["slicer-5.6-5.8", "slicer-5.10"])
def test_another_parameter_node_is_connected_and_the_old_one_disconnected_where_a_tag_exists(scene, returns_tag):
    first, gui, binding = bound_parameter_node(scene, returns_tag)
    scene.scene.RemoveNode(first)
    second = module_parameter_node(scene.scene)
    assert second is not first
    assert binding.bind(ParameterView(second)) is True
    # 5.10 undoes the old binding; 5.6/5.8 cannot (no tag), so only a node change ever adds one
    assert gui.live_bindings == (1 if returns_tag else 2)
    binding.release()
    assert gui.live_bindings == (0 if returns_tag else 2)


def test_the_refresh_runs_after_the_wrappers_own_widget_writes(scene):
    """The widget blanks "." (the wrapper's unset Path) after the wrapper wrote it: our observer
    has a lower priority, whatever the order the observers were added in."""
    node = module_parameter_node(scene.scene)
    order = []
    binding = gui_state.GuiBinding(lambda wrapper: None, lambda wrapper, tag: None,
                                   lambda caller, event: order.append("refresh"))
    binding.bind(ParameterView(node))
    node.AddObserver("ModifiedEvent", lambda caller, event: order.append("wrapper"))  # added later
    node.Modified()
    assert order == ["wrapper", "refresh"]


def test_unset_paths_show_blank():
    assert gui_state.path_text(Path()) == "" and gui_state.path_text(".") == "" and gui_state.path_text(None) == ""
    assert gui_state.path_text(Path("/data/cases.csv")) == "/data/cases.csv"
    assert set(gui_state.PATH_FIELDS) >= {"batchImageFolder", "batchMaskFolder", "batchCasesCsv", "settingsFile",
                                          "deepWeights"}


# ---------------------------------------------------------------------------------------------
# Item 2: a new mask replaces mask and segment subset together; the same mask keeps the subset
# ---------------------------------------------------------------------------------------------
def test_choosing_a_new_mask_changes_mask_and_segments_under_one_modified_event(scene):
    volume, first, _, _ = add_case(scene)
    _, second, _, _ = add_case(scene, ("liver", "spleen"), "MR")
    view = ParameterView(module_parameter_node(scene.scene))
    view.inputMask = first
    view.segmentIds = gui_state.segment_ids_of(first)[1]
    # the wrapper's binding of inputMask: on every Modified it writes the node's mask into the selector
    written_to_selector = []
    view.parameterNode.AddObserver(
        "ModifiedEvent", lambda caller, event: written_to_selector.append((view.inputMask.GetID(), view.segmentIds)))
    assert gui_state.choose_mask(view, second) is True
    assert written_to_selector == [(second.GetID(), "")]  # never the old mask back into the selector
    assert view.inputMask is second and view.segmentIds == ""


def test_writing_the_segments_first_would_echo_the_old_mask(scene):
    """The defect choose_mask avoids: segmentIds written alone fires Modified while inputMask
    still holds the old mask, which the wrapper then writes back into the selector."""
    _, first, _, _ = add_case(scene)
    _, second, _, _ = add_case(scene, ("liver",), "MR")
    view = ParameterView(module_parameter_node(scene.scene))
    view.inputMask = first
    echoed = []
    view.parameterNode.AddObserver("ModifiedEvent", lambda caller, event: echoed.append(view.inputMask.GetID()))
    view.segmentIds = "x"  # what onMaskSelected did before the wrapper stored the new mask
    assert echoed == [first.GetID()]
    assert gui_state.choose_mask(view, second) and echoed[-1] == second.GetID()


def test_the_same_mask_again_keeps_a_saved_segment_subset(scene):
    """A scene loaded with the module open: the wrapper writes the saved mask into the selector,
    whose signal must not wipe the saved segment subset."""
    _, segmentation, _, _ = add_case(scene)
    view = ParameterView(module_parameter_node(scene.scene))
    subset = gui_state.join_ids(gui_state.segment_ids_of(segmentation)[:2])
    view.inputMask = segmentation
    view.segmentIds = subset
    events = []
    view.parameterNode.AddObserver("ModifiedEvent", lambda caller, event: events.append(event))
    assert gui_state.choose_mask(view, segmentation) is False
    assert view.segmentIds == subset and events == []
    assert gui_state.choose_mask(view, None) is True  # selection cleared
    assert view.inputMask is None and view.segmentIds == ""


# ---------------------------------------------------------------------------------------------
# Item 5: a deleted segment is dropped, as the selector shows it
# ---------------------------------------------------------------------------------------------
def test_a_deleted_segment_is_dropped_from_the_run(scene):
    volume, segmentation, voxels, masks = add_case(scene)
    tumor, node_id, cyst = gui_state.segment_ids_of(segmentation)
    stored = gui_state.join_ids([tumor, cyst])
    segmentation.GetSegmentation().RemoveSegment(cyst)
    with pytest.raises(ValueError, match=cyst):  # the stored ids used raw: what Run did
        slicer_bridge.masks_from_node(segmentation, volume, gui_state.split_ids(stored))
    assert gui_state.run_segment_ids(segmentation, stored) == [tumor]
    running = ExtractionLogic().start(volume, segmentation, STAT, segment_ids=gui_state.run_segment_ids(
        segmentation, stored))
    table, result = running.finish_table(timeout=120)
    assert [row["ROI"] for row in result.rows] == ["tumor"]
    assert result.rows[0]["stat_mean"] == pytest.approx(voxels[masks["tumor"]].mean())
    # every stored segment gone: all segments, as the selector then shows
    assert gui_state.run_segment_ids(segmentation, cyst) is None
    assert gui_state.run_segment_ids(segmentation, "") is None
    assert gui_state.run_segment_ids(segmentation, gui_state.join_ids([tumor, node_id])) is None  # = all
    labelmap = scene.add_volume(masks["tumor"].astype(np.int16), np.diag([0.8, 0.8, 2.0, 1.0]), "labels",
                                "vtkMRMLLabelMapVolumeNode")
    assert gui_state.run_segment_ids(labelmap, stored) is None


# ---------------------------------------------------------------------------------------------
# Item 4: a case CSV with the folders also filled runs the CSV
# ---------------------------------------------------------------------------------------------
def test_batch_with_a_case_csv_and_folders_runs_the_csv(scene, tmp_path):
    import SimpleITK as sitk

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(2)
    voxels = rng.normal(60, 10, (8, 20, 20)).astype(np.int16)
    mask = np.zeros(voxels.shape, np.uint8)
    mask[2:6, 4:15, 5:16] = 1
    for array, folder in ((voxels, images), (mask, masks)):
        sitk.WriteImage(sitk.GetImageFromArray(array), str(folder / "p1.nrrd"))
    (images / "p2.nrrd").write_bytes(b"not an image")  # would fail if the folders were run
    cases_csv = tmp_path / "cases.csv"
    cases_csv.write_text("case_id,image,mask\nfrom_csv,images/p1.nrrd,masks/p1.nrrd\n")
    values = {"batchImageFolder": images, "batchMaskFolder": masks, "batchCasesCsv": cases_csv,
              "outputFolder": tmp_path / "out", **gui_state.defaults()}
    assert gui_state.batch_problems(values) == []  # the GUI enables Run batch
    inputs = gui_state.batch_inputs(values)
    assert inputs == {"image_folder": None, "mask_folder": None, "cases_csv": cases_csv}
    running = ExtractionLogic().start_batch(STAT, tmp_path / "out", **inputs)
    table, result = running.finish_table(timeout=180)
    assert [row["PatientID"] for row in result.rows] == ["from_csv"]
    assert result.rows[0]["stat_mean"] == pytest.approx(voxels[mask > 0].mean())
    no_csv = dict(values, batchCasesCsv=Path())
    assert gui_state.batch_inputs(no_csv) == {"image_folder": images, "mask_folder": masks, "cases_csv": None}


# ---------------------------------------------------------------------------------------------
# Item 10: the deep weights field, and one weights check before any case
# ---------------------------------------------------------------------------------------------
def deep_settings(weights):
    return STAT.replace(extraction_mode=ExtractionMode.DEEP, deep=DeepSettings(weights_path=str(weights)))


def test_deep_weights_field_round_trips_through_the_node_and_the_settings_json(tmp_path):
    from types import SimpleNamespace

    node = SimpleNamespace(**gui_state.defaults())
    assert node.deepWeights == Path() and gui_state.settings_from_node(node).deep.weights_path == ""
    weights = tmp_path / "resnet50-0676ba61.pth"
    node.deepWeights = weights
    assert gui_state.settings_from_node(node).deep.weights_path == str(weights)
    path = tmp_path / "settings.json"
    gui_state.save_settings_file(node, path)
    assert json.loads(path.read_text())["deep"]["weights_path"] == str(weights)
    fresh = SimpleNamespace(**gui_state.defaults())
    gui_state.load_settings_file(fresh, path)
    assert fresh.deepWeights == weights


#: The weights are looked for only where torch and torchvision are installed (without them the
#: check names the missing packages first: test_weights_check_names_a_missing_torch_first).
requires_torch = pytest.mark.skipif(
    bool(dependencies.missing([dependencies.TORCH, dependencies.TORCHVISION])),
    reason="torch/torchvision not installed: the weights check stops at the missing packages first")


@requires_torch
def test_missing_weights_stop_a_run_before_any_case_starts(scene, tmp_path):
    volume, segmentation, _, _ = add_case(scene)
    missing = tmp_path / "nowhere" / "resnet50.pth"
    logic = ExtractionLogic()
    with pytest.raises(WeightsUnavailableError, match=str(missing)) as raised:
        logic.start([volume, volume], segmentation, deep_settings(missing))
    assert "nothing is downloaded" in str(raised.value)
    with pytest.raises(WeightsUnavailableError, match=str(missing)):
        logic.start_batch(deep_settings(missing), tmp_path / "out", image_folder=tmp_path, mask_folder=tmp_path)
    assert not (tmp_path / "out").exists()  # no worker was started, no output folder made


@requires_torch
def test_process_batch_and_the_cli_report_missing_weights_once_before_any_case(tmp_path, capsys):
    from batch_fixtures import write_case
    from PySERASlicerLib import process_batch
    from PySERASlicerLib.cli import main

    for seed, name in enumerate(("p1", "p2", "p3")):
        write_case(tmp_path, name, seed)
    missing = tmp_path / "none.pth"
    started = []
    result = process_batch(tmp_path / "images", tmp_path / "masks", tmp_path / "out", settings=deep_settings(missing),
                           progress_fn=started.append)
    assert not result["success"] and result["processed_files"] == 0 and result["failed_files"] == 0
    assert started == []  # no case started
    assert result["error"].count(str(missing)) == 1 and "p1" not in result["error"]
    code = main(["extract", "--image", str(tmp_path / "images"), "--mask", str(tmp_path / "masks"), "--output",
                 str(tmp_path / "cli"), "--extraction-mode", "deep_feature", "--weights", str(missing),
                 "--enable-parallelism", "false"])
    error = capsys.readouterr().err
    assert code == 2 and error.count(str(missing)) == 1, error


def test_weights_check_names_a_missing_torch_first():
    """Without torch (as in a fresh Slicer) the check says how to install it, before any case."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from PySERASlicerLib.engine.deep import DeepDependencyError, check_deep_weights\n"
            "from PySERASlicerLib.settings import DeepSettings, ExtractionMode, Settings\n"
            "settings = Settings(extraction_mode=ExtractionMode.DEEP, deep=DeepSettings(weights_path='random:1'))\n"
            "try:\n    check_deep_weights(settings)\nexcept DeepDependencyError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "PySERASlicer")))
    assert done.returncode == 0 and "PyTorch" in done.stdout, done.stdout + done.stderr


@requires_torch
def test_weights_check_accepts_a_file_its_folder_and_the_random_opt_in(tmp_path):
    weights = tmp_path / "resnet50-0676ba61.pth"  # torchvision's file name for resnet50
    weights.write_bytes(b"only looked for, not read")
    check_deep_weights(deep_settings(weights))
    check_deep_weights(deep_settings(tmp_path))
    check_deep_weights(deep_settings("random:3"))
    check_deep_weights(STAT.replace(deep=DeepSettings(weights_path=str(tmp_path / "gone.pth"))))  # handcrafted
    with pytest.raises(WeightsUnavailableError):
        check_deep_weights(deep_settings(tmp_path / "empty_folder_does_not_exist"))


# ---------------------------------------------------------------------------------------------
# Item 6: the GUI's run needs no package that Slicer does not bundle
# ---------------------------------------------------------------------------------------------
def test_a_gui_run_needs_no_pandas(tmp_path):
    """Slicer bundles no pandas: with ``import pandas`` failing in the module's process and in the
    worker, Apply's path (logic.start + finish_table) still fills the results table."""
    blocked = tmp_path / "blocked"
    (blocked / "pandas").mkdir(parents=True)
    (blocked / "pandas" / "__init__.py").write_text("raise ImportError('pandas is blocked for this test')\n")
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from mrml_scene import SlicerCoreScene
        from PySERASlicerLib import dependencies
        from PySERASlicerLib.settings import Settings
        from PySERASlicerLib.slicer_logic import ExtractionLogic
        try:
            import pandas
            sys.exit("pandas was importable")
        except ImportError:
            pass
        scene = SlicerCoreScene()
        voxels = np.arange(8 * 12 * 12, dtype=np.int16).reshape(8, 12, 12) % 50
        volume = scene.add_volume(voxels, np.eye(4), "CT")
        mask = np.zeros(voxels.shape, bool)
        mask[2:6, 3:9, 3:9] = True
        segmentation = scene.add_segmentation(volume, {"roi": mask})
        settings = Settings(categories="stat,morph", dimensions="1st", enable_parallelism=False)
        assert dependencies.missing(dependencies.needed_for_settings(settings, excel=False, frame=False)) == []
        table, result = ExtractionLogic().start(volume, segmentation, settings).finish_table(timeout=120)
        print(table.GetNumberOfRows(), result.errors)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocked), str(ROOT / "PySERASlicer"),
                                                       str(ROOT / "Testing")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split()[0] == "1" and "[]" in done.stdout


def test_what_needs_pandas_still_asks_for_it():
    assert dependencies.PANDAS in dependencies.needed()  # console extract (DataFrame)
    assert dependencies.PANDAS in dependencies.needed(excel=True, frame=False)  # Excel export, batch
    assert dependencies.needed(excel=False, frame=False) == []
    deep = STAT.replace(extraction_mode=ExtractionMode.DEEP)
    assert dependencies.needed_for_settings(deep, excel=False, frame=False) == [dependencies.TORCH,
                                                                                 dependencies.TORCHVISION]

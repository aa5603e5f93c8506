"""scripts/slicer_headless_extract.py: plain Python (process_batch) and the MRML engine (slicer-core)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slicer_headless_extract.py"
STAT = {"categories": ["stat"], "dimensions": ["1st"], "enable_parallelism": False}


def write_case(images: Path, masks: Path, name: str, seed: int, mask_suffix: str = ".nrrd"):
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    voxels = rng.normal(80, 15, (10, 22, 20)).astype(np.int16)
    mask = np.zeros(voxels.shape, np.uint8)
    mask[2:8, 3 + seed:15, 4:16] = 1
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing((0.9, 0.9, 2.5))
    image.SetOrigin((10.0, -5.0, 3.0))
    sitk.WriteImage(image, str(images / f"{name}.nrrd"))
    if mask_suffix == ".nrrd":
        labels = sitk.GetImageFromArray(mask)
        labels.CopyInformation(image)
        sitk.WriteImage(labels, str(masks / f"{name}.nrrd"))
    return voxels, mask > 0


@pytest.fixture()
def folders(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    expected = {}
    for seed, name in enumerate(("case01", "case02")):
        voxels, mask = write_case(images, masks, name, seed)
        expected[name] = float(voxels[mask].mean())
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(STAT))
    return images, masks, settings, expected


def run_script(args, block_slicer=False, cwd=None):
    """Run the script with plain Python; optionally make ``import slicer`` fail."""
    if block_slicer:
        command = [sys.executable, "-c",
                   "import runpy, sys; sys.modules['slicer'] = None; sys.argv = sys.argv[1:]; "
                   "runpy.run_path(sys.argv[0], run_name='__main__')", str(SCRIPT), *args]
    else:
        command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)


def features_of(output: Path):
    import pandas as pd

    [xlsx] = sorted(output.glob("*.xlsx"))
    sheets = pd.read_excel(xlsx, sheet_name=None)
    assert list(sheets) == ["Radiomics_Features", "Parameters", "Report", "Feature_Definitions"]
    return sheets["Radiomics_Features"]


@pytest.mark.parametrize("block_slicer", [False, True], ids=["slicer-core-without-scene", "no-slicer"])
def test_script_without_the_slicer_app_falls_back_to_process_batch(folders, tmp_path, block_slicer):
    images, masks, settings, expected = folders
    output = tmp_path / "out"
    done = run_script(["--images", str(images), "--masks", str(masks), "--output", str(output),
                       "--settings", str(settings)], block_slicer=block_slicer, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "engine: batch" in done.stdout
    frame = features_of(output)
    assert sorted(frame["PatientID"]) == ["case01", "case02"]
    for _, row in frame.iterrows():
        assert row["stat_mean"] == pytest.approx(expected[row["PatientID"]])


def test_script_exits_non_zero_on_failures(folders, tmp_path):
    images, masks, settings, _ = folders
    (masks / "case02.nrrd").unlink()  # one image without a mask: a failed case
    done = run_script(["--images", str(images), "--masks", str(masks), "--output", str(tmp_path / "o1"),
                       "--settings", str(settings)], cwd=tmp_path)
    assert done.returncode == 1
    assert "case02" in done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"bin_sise": 3}))
    done = run_script(["--images", str(images), "--masks", str(masks), "--output", str(tmp_path / "o2"),
                       "--settings", str(bad)], cwd=tmp_path)
    assert done.returncode == 2 and "bin_sise" in done.stderr
    done = run_script(["--images", str(tmp_path / "nope"), "--masks", str(masks), "--output", str(tmp_path / "o3")],
                      cwd=tmp_path)
    assert done.returncode == 2 and "not found" in done.stderr
    done = run_script(["--masks", str(masks)], cwd=tmp_path)
    assert done.returncode == 2


def test_mrml_engine_requires_a_scene(folders, tmp_path, monkeypatch):
    from PySERASlicerLib.headless import choose_engine, main

    images, masks, settings, _ = folders
    slicer = pytest.importorskip("slicer")
    monkeypatch.delattr(slicer, "mrmlScene", raising=False)  # another test module may have set one
    assert choose_engine("auto") == "batch"
    assert main(["--images", str(images), "--masks", str(masks), "--output", str(tmp_path / "o"),
                 "--settings", str(settings), "--engine", "mrml"]) == 2


def test_mrml_engine_on_a_slicer_core_scene_matches_process_batch(folders, tmp_path):
    """Inside Slicer the script loads each case into the scene (labelmaps and .seg.nrrd
    segmentations) and extracts with the module logic; the features equal process_batch's."""
    pytest.importorskip("slicer")
    from mrml_scene import SlicerCoreScene
    from PySERASlicerLib.headless import main

    scene = SlicerCoreScene()
    images, masks, settings, expected = folders
    # case02's mask as a Slicer segmentation file on a finer grid
    import slicer

    volume = scene.add_volume(np.zeros((10, 22, 20), np.int16), np.eye(4), "tmp")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(images / "case02.nrrd"))
    assert storage.ReadData(volume)
    label_volume = scene.add_volume(np.zeros((10, 22, 20), np.int16), np.eye(4), "tmp labels",
                                    "vtkMRMLLabelMapVolumeNode")
    label_storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    label_storage.SetFileName(str(masks / "case02.nrrd"))
    assert label_storage.ReadData(label_volume)
    segmentation = scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    scene.logics["segmentations"].ImportLabelmapToSegmentationNode(label_volume, segmentation)
    seg_storage = slicer.vtkMRMLSegmentationStorageNode()
    seg_storage.SetFileName(str(masks / "case02.seg.nrrd"))
    assert seg_storage.WriteData(segmentation)
    (masks / "case02.nrrd").unlink()
    for node in (volume, label_volume, segmentation):
        scene.scene.RemoveNode(node)
    before = {scene.scene.GetNthNode(i).GetID() for i in range(scene.scene.GetNumberOfNodes())}

    output = tmp_path / "mrml"
    assert main(["--images", str(images), "--masks", str(masks), "--output", str(output),
                 "--settings", str(settings), "--quiet"]) == 0  # auto -> mrml: a scene exists
    frame = features_of(output)
    assert sorted(frame["PatientID"]) == ["case01", "case02"]
    for _, row in frame.iterrows():
        assert row["stat_mean"] == pytest.approx(expected[row["PatientID"]], rel=1e-9)
    left = [scene.scene.GetNthNode(i) for i in range(scene.scene.GetNumberOfNodes())]
    left = [n.GetClassName() for n in left if n.GetID() not in before]
    assert not left, f"case nodes are removed after extraction: {left}"
    provenance = json.loads(next(output.glob("*.json")).read_text())
    assert "mrml" in json.dumps(provenance)

    # a broken image file is a failed case (exit 1), the other case is still written
    (images / "case01.nrrd").write_bytes(b"not an image")
    output = tmp_path / "mrml_failed"
    assert main(["--images", str(images), "--masks", str(masks), "--output", str(output),
                 "--settings", str(settings), "--engine", "mrml", "--quiet"]) == 1
    assert list(features_of(output)["PatientID"]) == ["case02"]


def test_mrml_engine_case_raising_runtime_error_is_that_cases_row(folders, tmp_path, monkeypatch):
    """slicer.util raises RuntimeError when Slicer cannot export a mask (``Export of segment
    failed.`` in arrayFromSegmentBinaryLabelmap). slicer-core cannot be made to fail that way
    on demand, so the real arrayFromVolume is wrapped to raise it for case02's mask only."""
    pytest.importorskip("slicer")
    import pandas as pd
    import slicer.util
    from mrml_scene import SlicerCoreScene
    from PySERASlicerLib.headless import main

    SlicerCoreScene()
    images, masks, settings, expected = folders
    real = slicer.util.arrayFromVolume

    def failing_for_case02(node, *args, **kwargs):
        if node.GetName() == "case02 mask":
            raise RuntimeError("Export of segment failed.")
        return real(node, *args, **kwargs)

    monkeypatch.setattr(slicer.util, "arrayFromVolume", failing_for_case02)
    output = tmp_path / "out"
    assert main(["--images", str(images), "--masks", str(masks), "--output", str(output),
                 "--settings", str(settings), "--engine", "mrml", "--quiet"]) == 1
    frame = features_of(output)
    assert list(frame["PatientID"]) == ["case01"]
    assert frame["stat_mean"].iloc[0] == pytest.approx(expected["case01"], rel=1e-9)
    report = pd.read_excel(next(output.glob("*.xlsx")), sheet_name="Report")
    errors = report[report["Level"] == "ERROR"]
    assert errors["PatientID"].tolist() == ["case02"]
    assert "RuntimeError: Export of segment failed." in errors["Message"].iloc[0]


def test_import_error_exits_2_without_hanging(tmp_path):
    """Slicer keeps running after --python-script until the script exits it: an error while
    importing the package must still end the script, with exit status 2 and a message."""
    broken = tmp_path / "site" / "PySERASlicerLib"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('numpy is too old (test)')\n")
    script = tmp_path / "scripts" / SCRIPT.name  # no PySERASlicer/ folder beside it
    script.parent.mkdir()
    script.write_text(SCRIPT.read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), "--images", "x", "--masks", "y", "--output", "z"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site")})
    assert done.returncode == 2, done.stderr
    assert "cannot import PySERASlicerLib" in done.stderr and "numpy is too old (test)" in done.stderr


def test_unusable_output_folder_exits_2_before_any_case(folders, tmp_path):
    images, masks, settings, _ = folders
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    done = run_script(["--images", str(images), "--masks", str(masks), "--output", str(blocker / "out"),
                       "--settings", str(settings)], cwd=tmp_path)
    assert done.returncode == 2 and "--output" in done.stderr and "cannot create the folder" in done.stderr


def test_settings_with_named_features_give_those_columns_and_a_typo_exits_2(folders, tmp_path):
    images, masks, _, expected = folders
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"features": ["stat_mean", "morph_volume"], "enable_parallelism": False}))
    done = run_script(["--images", str(images), "--masks", str(masks), "--output", str(tmp_path / "out"),
                       "--settings", str(named)], block_slicer=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    frame = features_of(tmp_path / "out")
    assert list(frame.columns) == ["PatientID", "ROI", "morph_volume", "stat_mean"]
    assert frame.set_index("PatientID")["stat_mean"].to_dict() == pytest.approx(expected, rel=1e-12)
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"features": ["stat_maen"]}))
    done = run_script(["--images", str(images), "--masks", str(masks), "--output", str(tmp_path / "typo_out"),
                       "--settings", str(typo)], block_slicer=True, cwd=tmp_path)
    assert done.returncode == 2 and "'stat_maen' (did you mean 'stat_mean'?)" in done.stderr, done.stderr
    assert not any((tmp_path / "typo_out").iterdir())  # nothing written


def test_mrml_engine_named_features_and_a_typo_exits_2_before_any_case(folders, tmp_path, capsys):
    """The MRML engine extracts segment by segment with the module logic: a mistyped feature
    name must stop it before the first case (exit 2), not fail every case."""
    pytest.importorskip("slicer")
    from mrml_scene import SlicerCoreScene
    from PySERASlicerLib.headless import main

    SlicerCoreScene()
    images, masks, _, expected = folders
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"features": ["stat_mean", "morph_volume"], "enable_parallelism": False}))
    assert main(["--images", str(images), "--masks", str(masks), "--output", str(tmp_path / "out"),
                 "--settings", str(named), "--engine", "mrml", "--quiet"]) == 0
    frame = features_of(tmp_path / "out")
    assert list(frame.columns) == ["PatientID", "ROI", "morph_volume", "stat_mean"]
    assert frame.set_index("PatientID")["stat_mean"].to_dict() == pytest.approx(expected, rel=1e-9)
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"features": ["stat_maen"]}))
    assert main(["--images", str(images), "--masks", str(masks), "--output", str(tmp_path / "typo_out"),
                 "--settings", str(typo), "--engine", "mrml", "--quiet"]) == 2
    assert "'stat_maen' (did you mean 'stat_mean'?)" in capsys.readouterr().err
    assert not any((tmp_path / "typo_out").iterdir())

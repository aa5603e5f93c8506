"""The per-ROI helper thread of ``engine.pipeline.extract_roi`` changes no value; its default
follows ``PYSERA_ROI_THREADS`` and is 1 in a multiprocessing child."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest
from PySERASlicerLib.engine import pipeline
from PySERASlicerLib.image import Image
from PySERASlicerLib.settings import Settings


def _case():
    rng = np.random.default_rng(7)
    k, j, i = np.ogrid[:12, :20, :22]
    mask = ((k - 6) / 5.0) ** 2 + ((j - 10) / 8.0) ** 2 + ((i - 11) / 9.0) ** 2 <= 1.0
    array = np.rint(rng.normal(40, 60, mask.shape)).astype(np.int16)
    image = Image(array, spacing=(0.9, 0.9, 2.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3), modality="CT")
    return image, mask


def test_threads_change_no_value():
    image, mask = _case()
    settings = Settings.from_dict({"categories": "all", "dimensions": "all",
                                   "resegmentation": {"range_enabled": True, "range_lower": -1000,
                                                      "range_upper": 400}})
    steps = []
    one = pipeline.extract_roi(image, mask, settings, threads=1).values
    two = pipeline.extract_roi(image, mask, settings, threads=2, on_step=steps.append).values
    assert list(one) == list(two) and len(one) == 557
    np.testing.assert_array_equal(np.array(list(one.values())), np.array(list(two.values())))
    assert "morph" in steps and "glcm" in steps  # progress still names every family


def test_default_threads_env_override(monkeypatch):
    monkeypatch.setenv(pipeline.ROI_THREADS_ENV, "1")
    assert pipeline.default_threads() == 1
    monkeypatch.setenv(pipeline.ROI_THREADS_ENV, "3")
    assert pipeline.default_threads() == 3
    monkeypatch.setenv(pipeline.ROI_THREADS_ENV, "many")
    with pytest.raises(ValueError, match="PYSERA_ROI_THREADS"):
        pipeline.default_threads()


def _child_threads(queue):
    queue.put(pipeline.default_threads())


def test_default_is_one_thread_in_a_pool_worker(monkeypatch):
    monkeypatch.delenv(pipeline.ROI_THREADS_ENV, raising=False)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child_threads, args=(queue,))
    process.start()
    assert queue.get(timeout=60) == 1
    process.join(timeout=60)


def test_work_items_split_moran_and_share_the_zones():
    groups = {"stat": ["stat_mean"], "glszm": ["szm_sze_3D"], "morph": ["morph_volume", "morph_moran_i"],
              "gldzm": ["dzm_sde_3D"], "glcm": ["cm_energy_3D_comb"]}
    items = pipeline.work_items(groups)
    assert [name for name, _ in items] == ["morph", "morph_autocorrelation", "glszm+gldzm", "glcm", "stat"]
    assert dict(items)["morph"] == [("morph", ["morph_volume"])]
    assert dict(items)["morph_autocorrelation"] == [("morph", ["morph_moran_i"])]
    assert dict(items)["glszm+gldzm"] == [("glszm", ["szm_sze_3D"]), ("gldzm", ["dzm_sde_3D"])]


def test_two_threads_report_each_family_once():
    image, mask = _case()
    settings = Settings.from_dict({"categories": "all", "dimensions": "1st,3d"})
    steps = []
    pipeline.extract_roi(image, mask, settings, threads=2, on_step=steps.append)
    families = list(pipeline.group_by_family(pipeline.selected_specs(settings)))
    assert sorted(steps) == sorted(families)


def test_a_failing_family_stops_both_threads(monkeypatch):
    """An error in the calling thread's first family is raised, and the helper takes no
    further item (it finishes the one it has)."""
    image, mask = _case()
    settings = Settings.from_dict({"categories": "all", "dimensions": "1st,3d"})
    ran = []
    real = pipeline._run_item

    def failing(ctx, item):
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("family failed")
        ran.append(item[0][0])
        return real(ctx, item)

    monkeypatch.setattr(pipeline, "_run_item", failing)
    with pytest.raises(RuntimeError, match="family failed"):
        pipeline.extract_roi(image, mask, settings, threads=2)
    assert len(ran) <= 2  # of 13 items: the helper's first, perhaps a second taken meanwhile

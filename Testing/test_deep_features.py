"""Deep features (engine/deep.py) with real torch/torchvision networks.

No network access and no real ImageNet files: the module fixture writes seeded random weights
under the official torchvision file names into a temporary TORCH_HOME (densenet121 with the
old-style checkpoint keys and without ``num_batches_tracked``, as the official file has), so the
real loading path runs. A reference network built with the same seed then gives the expected
features through torchvision's own forward pass.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PySERASlicerLib.engine import deep  # noqa: E402
from PySERASlicerLib.image import Image  # noqa: E402
from PySERASlicerLib.settings import DeepSettings, Modality, Settings  # noqa: E402

pytestmark = pytest.mark.deep

SEEDS = {"resnet50": 11, "vgg16": 12, "densenet121": 13}
DIMS = {"resnet50": 2048, "vgg16": 512, "densenet121": 1024}


def _seeded_network(name: str):
    """The torchvision network with the random weights written to the fake cache."""
    _, torchvision = deep.import_torch()
    torch.manual_seed(SEEDS[name])
    return getattr(torchvision.models, name)(weights=None).eval()


def _old_densenet_key(key: str) -> str:
    # Inverse of torchvision's remap: "denselayer1.norm1.weight" -> "denselayer1.norm.1.weight".
    return re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key)


@pytest.fixture(scope="module")
def weights_home(tmp_path_factory):
    """A TORCH_HOME whose hub/checkpoints holds seeded random weights under the official names."""
    home = tmp_path_factory.mktemp("torch_home")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in SEEDS:
        state = _seeded_network(name).state_dict()
        if name == "densenet121":
            state = {_old_densenet_key(k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
            assert any(".norm.1.weight" in k for k in state)
        torch.save(state, checkpoints / deep.MODELS[name].weights_file)
        del state
    return home


@pytest.fixture
def torch_home(weights_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(weights_home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() elsewhere would override TORCH_HOME
    assert torch.hub.get_dir() == str(weights_home / "hub")
    deep.clear_model_cache()
    yield weights_home
    deep.clear_model_cache()


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    deep.clear_model_cache()
    return tmp_path


def small_roi(n_slices: int = 3, seed: int = 0):
    """CT-like int16 volume (8, 40, 48), anisotropic in-plane spacing, a blob over ``n_slices``."""
    rng = np.random.default_rng(seed)
    array = rng.normal(-40, 60, size=(8, 40, 48)).astype(np.int16)
    k, j, i = np.ogrid[:8, :40, :48]
    mask = ((j - 18) / 7.0) ** 2 + ((i - 25) / 9.0) ** 2 <= 1.0
    mask = np.broadcast_to(mask, array.shape) & (k >= 2) & (k < 2 + n_slices)
    array[mask] = rng.normal(80, 30, size=int(mask.sum())).astype(np.int16)
    return Image(array, spacing=(0.7, 0.9, 3.0), modality="CT"), mask


def settings_for(model: str = "resnet50", modality: Modality = Modality.CT, **deep_changes) -> Settings:
    return Settings(modality=modality, deep=DeepSettings(model=model, **deep_changes))


def reference_features(name: str, image: Image, mask: np.ndarray, settings: Settings) -> np.ndarray:
    """Per-slice features from the full torchvision network's own forward pass, averaged."""
    network = _seeded_network(name)
    window = deep.intensity_window(image.array, mask, settings.modality, settings.deep)
    slices, _ = deep.roi_slices(image.array, mask, image.spacing[:2], window, settings.deep.margin_voxels)
    batch = deep._to_network_input(torch, slices, torch.device("cpu"))
    captured = []
    with torch.inference_mode():
        if name == "vgg16":
            captured.append(network.features(batch).mean(dim=(2, 3)))
        else:
            head = network.fc if name == "resnet50" else network.classifier
            hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
            network(batch)
            hook.remove()
    return captured[0].double().mean(dim=0).numpy()


@pytest.mark.parametrize("side", [601, 448, 230, 50])
def test_network_input_is_pil_bilinear_resize_with_imagenet_normalisation(side):
    """Independent reference: PIL's bilinear resize (antialiased when shrinking) + mean/std."""
    pil = pytest.importorskip("PIL.Image")
    crop = np.random.default_rng(side).random((side, side)).astype(np.float32)
    actual = deep._to_network_input(torch, crop[None], torch.device("cpu"))[0].numpy()
    resized = np.asarray(pil.fromarray(crop, mode="F").resize((224, 224), pil.BILINEAR))
    mean = np.array(deep.IMAGENET_MEAN)[:, None, None]
    std = np.array(deep.IMAGENET_STD)[:, None, None]
    assert actual.shape == (3, 224, 224)
    np.testing.assert_allclose(actual, (resized[None] - mean) / std, atol=2e-4)


@pytest.mark.parametrize("name", ["resnet50", "vgg16", "densenet121"])
def test_official_cache_file_is_loaded_and_features_match_torchvision(name, torch_home):
    image, mask = small_roi()
    settings = settings_for(name)
    features = deep.extract_deep_features(image, mask, settings)
    assert list(features) == [f"{name}_{i:04d}" for i in range(DIMS[name])]
    assert deep.feature_names(name) == list(features)
    values = np.array(list(features.values()))
    assert np.all(np.isfinite(values))
    # The loaded file's weights (densenet: after the old-key remap) reproduce the seeded network
    # exactly, and the pooled features are what torchvision feeds its classifier (resnet50,
    # densenet121) or the GAP of the conv stage (vgg16).
    np.testing.assert_allclose(values, reference_features(name, image, mask, settings), rtol=1e-4, atol=1e-5)
    # Seeded random weights are a different network: the file really was read.
    random_values = deep.extract_deep_features(image, mask, settings_for(name, weights_path="random:999"))
    assert not np.allclose(values, list(random_values.values()))


def test_missing_weights_raise_a_helpful_error_and_never_download(empty_home):
    image, mask = small_roi()
    with pytest.raises(deep.WeightsUnavailableError) as info:
        deep.extract_deep_features(image, mask, settings_for("densenet121"))
    message = str(info.value)
    expected = empty_home / "hub" / "checkpoints" / "densenet121-a639ec97.pth"
    assert str(expected) in message
    assert "https://download.pytorch.org/models/densenet121-a639ec97.pth" in message
    assert "TORCH_HOME" in message and "--weights" in message and "weights_path" in message
    assert isinstance(info.value, RuntimeError)
    assert info.value.path == str(expected)
    assert not any(empty_home.rglob("*.pth"))  # nothing was fetched


def test_missing_explicit_weights_path_is_named(empty_home):
    image, mask = small_roi()
    missing = empty_home / "nowhere" / "my_resnet.pth"
    with pytest.raises(deep.WeightsUnavailableError, match=re.escape(str(missing))):
        deep.extract_deep_features(image, mask, settings_for("resnet50", weights_path=str(missing)))


def test_explicit_weights_path_file_and_folder(weights_home, empty_home):
    image, mask = small_roi()
    official = weights_home / "hub" / "checkpoints" / "densenet121-a639ec97.pth"
    renamed = empty_home / "my_densenet.pth"
    renamed.write_bytes(official.read_bytes())
    from_file = deep.extract_deep_features(image, mask, settings_for("densenet121", weights_path=str(renamed)))
    from_folder = deep.extract_deep_features(
        image, mask, settings_for("densenet121", weights_path=str(official.parent))
    )
    expected = reference_features("densenet121", image, mask, settings_for("densenet121"))
    np.testing.assert_allclose(list(from_file.values()), expected, rtol=1e-4, atol=1e-5)
    assert from_file == from_folder


def test_unreadable_or_wrong_weights_file_is_rejected(weights_home, empty_home):
    image, mask = small_roi()
    garbage = empty_home / "broken.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(deep.WeightsUnavailableError, match="could not be read"):
        deep.extract_deep_features(image, mask, settings_for("resnet50", weights_path=str(garbage)))
    wrong = weights_home / "hub" / "checkpoints" / "densenet121-a639ec97.pth"
    with pytest.raises(deep.WeightsUnavailableError, match="not a torchvision resnet50"):
        deep.extract_deep_features(image, mask, settings_for("resnet50", weights_path=str(wrong)))


def test_deterministic_for_the_same_input():
    image, mask = small_roi()
    settings = settings_for("resnet50", weights_path="random:3")
    first = deep.extract_deep_features(image, mask, settings)
    deep.clear_model_cache()  # rebuild the network from the seed, too
    second = deep.extract_deep_features(image, mask, settings)
    assert first == second
    assert not torch.are_deterministic_algorithms_enabled()  # the caller's flag is restored


def test_mean_and_max_aggregation():
    image, mask = small_roi(n_slices=4)
    mean = np.array(list(deep.extract_deep_features(
        image, mask, settings_for("resnet50", weights_path="random:3")).values()))
    top = np.array(list(deep.extract_deep_features(
        image, mask, settings_for("resnet50", weights_path="random:3", slice_aggregation="max")).values()))
    assert not np.allclose(mean, top)
    assert np.all(top >= mean - 1e-5)  # a maximum over slices is never below their mean


def test_ct_window_versus_roi_percentiles():
    image, mask = small_roi()
    shifted = image.with_array((image.array.astype(np.int32) * 2 + 500).astype(np.int32))
    ct = settings_for("resnet50", weights_path="random:3")
    mr = settings_for("resnet50", Modality.MRI, weights_path="random:3")
    assert deep.intensity_window(image.array, mask, Modality.CT, ct.deep) == (-1000.0, 400.0)
    values = image.array[mask].astype(float)
    assert deep.intensity_window(image.array, mask, Modality.MRI, mr.deep) == pytest.approx(
        (np.percentile(values, 1), np.percentile(values, 99)))
    ct_a = np.array(list(deep.extract_deep_features(image, mask, ct).values()))
    ct_b = np.array(list(deep.extract_deep_features(shifted, mask, ct).values()))
    mr_a = np.array(list(deep.extract_deep_features(image, mask, mr).values()))
    mr_b = np.array(list(deep.extract_deep_features(shifted, mask, mr).values()))
    # A fixed HU window sees the rescaled intensities; ROI percentiles follow any increasing
    # linear map, so the network input and the features stay the same.
    assert not np.allclose(ct_a, ct_b)
    assert not np.allclose(ct_a, mr_a)
    np.testing.assert_allclose(mr_a, mr_b, rtol=1e-4, atol=1e-5)


def test_progress_reports_each_batch():
    image, mask = small_roi(n_slices=5)
    calls = []
    deep.extract_deep_features(
        image, mask, settings_for("resnet50", weights_path="random:3", batch_size=2),
        on_progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_batch_size_does_not_change_features_beyond_rounding():
    image, mask = small_roi(n_slices=5)
    one = deep.extract_deep_features(image, mask, settings_for("resnet50", weights_path="random:3", batch_size=1))
    all_ = deep.extract_deep_features(image, mask, settings_for("resnet50", weights_path="random:3", batch_size=8))
    np.testing.assert_allclose(list(one.values()), list(all_.values()), rtol=1e-4, atol=1e-5)


def test_bad_requests_raise():
    image, mask = small_roi()
    with pytest.raises(ValueError, match="empty"):
        deep.extract_deep_features(image, np.zeros_like(mask), settings_for(weights_path="random:1"))
    with pytest.raises(ValueError, match="shape"):
        deep.extract_deep_features(image, mask[:4], settings_for(weights_path="random:1"))
    with pytest.raises(ValueError, match="seed"):
        deep.extract_deep_features(image, mask, settings_for(weights_path="random:x"))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            deep.extract_deep_features(image, mask, settings_for(weights_path="random:1", device="cuda"))

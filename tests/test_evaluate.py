"""The short-training proxy: datasets, proxy networks, training, and one-line data errors."""

from __future__ import annotations

from dataclasses import replace
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from latbench.cost import make_divisible
from latbench.errors import ArchError, SearchError, SpecError
from nas.data import check_data, load_dataset, stratified_split
from latbench.space import load_space
from nas.evaluate import TrainConfig, proxy_arch, recalibrate_bn, train_and_score

TINY = load_space("tiny")
GPUNET = load_space()
SMALLEST = TINY.decode_staged(TINY.lower)
# A tiny-space network with fused and plain IRBs, SE, swish and 5x5 kernels.
MIXED = TINY.decode_staged([2, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1, 4, 0, 1, 1, 0, 0,
                            4, 1, 0, 2, 1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1])


# -- training on digits ---------------------------------------------------------------------------
def test_two_epochs_on_digits_beat_chance_by_far():
    # Chance is 10 %; seeds 0-4 score 89-93 % on a 2-core CPU, so 60 % leaves a wide margin.
    result = train_and_score(SMALLEST, TrainConfig(epochs=2, width_mult=0.5, seed=0))
    assert result["top1"] > 60
    assert result["diverged"] is False and result["epochs"] == 2
    assert result["epoch_loss"][1] < result["epoch_loss"][0] and result["loss"] == result["epoch_loss"][1]
    assert (result["train_samples"], result["heldout_samples"]) == (1438, 359)  # 20 % of each class held out
    assert result["proxy_resolution"] == 32 and result["device"] == "cpu"
    arch = proxy_arch(SMALLEST, 32, 0.5, 10)
    assert result["macs"] == arch.macs and result["params"] == arch.params


def test_same_seed_gives_the_same_score_on_cpu():
    cfg = TrainConfig(epochs=1, width_mult=0.5, train_fraction=0.5, seed=3)
    first, second = train_and_score(MIXED, cfg), train_and_score(MIXED, cfg)
    assert first["top1"] == second["top1"] and first["loss"] == second["loss"]
    assert first["train_samples"] == 719  # half of each class of the 1438 training images


def test_divergence_is_reported_not_raised():
    cfg = TrainConfig(epochs=2, width_mult=0.25, train_fraction=0.2, lr=1e12, label_smoothing=0.0)
    result = train_and_score(SMALLEST, cfg)
    assert result["diverged"] is True and result["loss"] is None and result["epochs"] == 1
    assert 0 <= result["top1"] <= 100


def test_adamw_trains_too():
    result = train_and_score(SMALLEST, TrainConfig(epochs=1, width_mult=0.25, optimizer="adamw"))
    assert result["top1"] > 30 and result["lr"] == pytest.approx(0.005)


def test_recalibration_averages_batchnorm_statistics_over_the_asked_images():
    bn = torch.nn.BatchNorm2d(3)
    model = torch.nn.Sequential(bn, torch.nn.Dropout(0.5))
    batches = [(torch.full((4, 3, 2, 2), float(v)), torch.zeros(4)) for v in (1, 3, 5, 100)]
    recalibrate_bn(model, batches, torch.device("cpu"), images=12)  # the first three batches
    assert torch.allclose(bn.running_mean, torch.full((3,), 3.0))
    assert bn.momentum == 0.1 and not model.training


@pytest.mark.parametrize("field, value", [("epochs", 0), ("width_mult", 0.0), ("train_fraction", 1.5),
                                          ("optimizer", "rmsprop"), ("batch_size", 1), ("device", "tpu")])
def test_bad_settings_are_one_line_search_errors(field, value):
    with pytest.raises(SearchError) as err:
        train_and_score(SMALLEST, TrainConfig(**{field: value}))
    assert "\n" not in str(err.value) and "use" in str(err.value)


# -- the proxy network ------------------------------------------------------------------------------
def test_proxy_arch_scales_every_filter_count_and_keeps_the_rest():
    staged = GPUNET.decode_staged(GPUNET.random(1, rng=5)[0])
    proxy = proxy_arch(staged, 64, 0.25, 7)
    assert proxy.resolution == 64 and proxy.blocks[0].height == 64
    got = proxy.staged
    assert got.head.out_channels == make_divisible(staged.head.out_channels * 0.25)
    assert got.tail.out_channels == make_divisible(1792 * 0.25) == 448 and got.tail.classes == 7
    assert proxy.blocks[-1].classes == 7
    for a, b in zip(staged.stages, got.stages):
        assert b.filters == make_divisible(a.filters * 0.25) and b.filters % 8 == 0
        assert a.layers == b.layers and replace(a.block, out_channels=b.filters) == b.block
    assert len(proxy.blocks) == len(staged.expand().blocks)


def test_proxy_arch_filters_never_drop_below_eight():
    proxy = proxy_arch(GPUNET.decode_staged(GPUNET.lower), 64, 0.01, 10)
    assert {b.out_channels for b in proxy.blocks[:-1]} == {8}


def _expands(staged, resolution: int) -> bool:
    try:
        proxy_arch(staged, resolution, 1.0, 10)
        return True
    except SearchError:
        return False


def test_too_small_a_resolution_names_the_smallest_that_works():
    staged = GPUNET.decode_staged(GPUNET.upper)  # 5x5 kernels: fused stride-2 convs pad nothing
    with pytest.raises(SearchError, match=r"--proxy-resolution (\d+)") as err:
        proxy_arch(staged, 8, 0.25, 10)
    smallest = int(err.value.args[0].split("--proxy-resolution ")[1].split()[0])
    assert not _expands(staged, smallest - 1) and _expands(staged, smallest)
    assert [r for r in range(8, smallest + 1) if _expands(staged, r)] == [smallest]


def test_errors_that_no_resolution_fixes_never_reach_the_proxy():
    """Block settings are checked when the block's args are made, before any resolution."""
    with pytest.raises(SpecError, match="kernel must be odd"):
        replace(SMALLEST.head, kernel=4)


# -- other datasets, end to end -----------------------------------------------------------------
def _write_images(folder, classes: int, per_class: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (folder / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            # A colour per class plus noise, on non-square images so the centre crop matters.
            pixels = np.clip(rng.normal(60 * c + 40, 20, size=(24, 30, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"class_{c}" / f"{i}.png")


def test_imagefolder_splits_and_trains(tmp_path):
    _write_images(tmp_path, classes=3, per_class=5)
    train, heldout, classes = load_dataset(f"imagefolder:{tmp_path}", 32)
    assert classes == 3 and (len(train), len(heldout)) == (12, 3)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    result = train_and_score(SMALLEST, TrainConfig(data=f"imagefolder:{tmp_path}", epochs=1,
                                                   proxy_resolution=32, width_mult=0.25, batch_size=8))
    assert result["train_samples"] == 12 and result["heldout_samples"] == 3
    assert 0 <= result["top1"] <= 100 and result["macs"] > 0


def test_imagefolder_uses_train_and_val_folders(tmp_path):
    _write_images(tmp_path / "train", classes=2, per_class=4)
    _write_images(tmp_path / "val", classes=2, per_class=2, seed=1)
    train, heldout, classes = load_dataset(f"imagefolder:{tmp_path}", 24)
    assert (len(train), len(heldout), classes) == (8, 4, 2)
    assert heldout.labels.tolist() == [0, 0, 1, 1]  # classes in folder-name order
    assert train[0][0].shape == (3, 24, 24)


def _write_cifar(folder, per_batch: int = 20) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, per_batch).tolist(),
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


def test_cifar10_batches_load_and_train(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    train, heldout, classes = load_dataset(f"cifar10:{tmp_path}", 32)
    assert (len(train), len(heldout), classes) == (100, 20, 10)
    x, _ = heldout[[0, 1]]
    assert x.shape == (2, 3, 32, 32) and abs(float(x.mean())) < 1.0
    result = train_and_score(SMALLEST, TrainConfig(data=f"cifar10:{tmp_path}", epochs=1, width_mult=0.25,
                                                   batch_size=16))
    assert (result["train_samples"], result["heldout_samples"], result["proxy_resolution"]) == (100, 20, 32)


def test_stratified_split_keeps_every_class():
    labels = np.repeat(np.arange(4), [10, 10, 5, 1])
    picked, rest = stratified_split(labels, 0.2, seed=0)
    assert np.bincount(labels[picked]).tolist() == [2, 2, 1, 1]
    assert sorted(np.concatenate([picked, rest]).tolist()) == list(range(26))


# -- check_data ---------------------------------------------------------------------------------------
def _one_class(tmp_path):
    _write_images(tmp_path, classes=1, per_class=2)
    return f"imagefolder:{tmp_path}"


def _empty_class(tmp_path):
    _write_images(tmp_path, classes=2, per_class=2)
    (tmp_path / "class_9").mkdir()
    return f"imagefolder:{tmp_path}"


def _broken_image(tmp_path):
    _write_images(tmp_path, classes=2, per_class=1)
    (tmp_path / "class_0" / "0.png").write_bytes(b"not a png")
    return f"imagefolder:{tmp_path}"


def _cifar_missing_batch(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    return f"cifar10:{tmp_path}"


@pytest.mark.parametrize("make, expected", [
    (lambda p: "mnist", "unknown dataset 'mnist'; use digits"),
    (lambda p: "digits:/x", "takes no path"),
    (lambda p: "imagefolder:", "needs a folder"),
    (lambda p: f"imagefolder:{p / 'missing'}", "no such folder"),
    (lambda p: f"imagefolder:{p}", "has 0 class folders"),
    (_one_class, "has 1 class folder (class_0)"),
    (_empty_class, "holds no images"),
    (_broken_image, "cannot read"),
    (lambda p: f"cifar10:{p}", "no CIFAR-10 batches"),
    (_cifar_missing_batch, "lacks data_batch_3"),
])
def test_check_data_errors_are_one_line_with_a_fix(tmp_path, make, expected):
    with pytest.raises(SearchError) as err:
        check_data(make(tmp_path))
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert any(word in message for word in ("use", "give", "add", "remove", "extract", "needs"))


def test_check_data_accepts_good_folders(tmp_path):
    check_data("digits")
    _write_images(tmp_path / "folder", classes=2, per_class=1)
    check_data(f"imagefolder:{tmp_path / 'folder'}")
    _write_cifar(tmp_path / "cifar", per_batch=2)
    check_data(f"cifar10:{tmp_path / 'cifar'}")

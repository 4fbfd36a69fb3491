"""Datasets for the short-training proxy, named by one string: the `--data` option.

* ``digits``: scikit-learn's bundled 8x8 digits (1797 images, 10 classes, no download), upscaled
  bilinearly to the proxy resolution, replicated to 3 channels and standardised. Held in memory.
* ``imagefolder:PATH``: a torchvision-ImageFolder tree (one subfolder per class, classes sorted by
  folder name), read with Pillow and streamed from disk. PATH/train and PATH/val are used as the
  train and held-out splits when both exist.
* ``cifar10:PATH``: torchvision's on-disk CIFAR-10 (data_batch_1..5, test_batch as held-out), in
  PATH or PATH/cifar-10-batches-py. Held in memory as uint8; resized per batch when the proxy
  resolution is not 32.

Splits are torch Datasets yielding normalised float images [3, R, R] and int64 labels. Where no
held-out split exists, a stratified 20 % is held out with a fixed seed, so every trial of a search
is scored on the same images whatever its training seed.
"""

from __future__ import annotations

import os
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from latbench.errors import SearchError

DEFAULT_RESOLUTION = {"digits": 32, "cifar10": 32, "imagefolder": 128}
USAGE = "use digits, imagefolder:PATH or cifar10:PATH"
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Per-channel statistics in 0-255 pixel units, so uint8 images normalise without a /255 pass.
IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
CIFAR_MEAN, CIFAR_STD = (125.31, 122.95, 113.87), (62.99, 62.09, 66.70)
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
HELDOUT_FRACTION = 0.2
SPLIT_SEED = 0
SMALL_DATASET = 256  # images; below this, DataLoader worker start-up costs more than decoding


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """("digits", None), ("imagefolder", path) or ("cifar10", path); SearchError otherwise."""
    kind, sep, path = str(spec).partition(":")
    if kind not in DEFAULT_RESOLUTION:
        raise SearchError(f"--data {spec}: unknown dataset {kind!r}; {USAGE}")
    if kind == "digits":
        if sep:
            raise SearchError(f"--data {spec}: digits is bundled and takes no path; use --data digits")
        return kind, None
    if not path:
        raise SearchError(f"--data {spec}: {kind} needs a folder; use --data {kind}:PATH")
    return kind, Path(path).expanduser()


def default_resolution(spec: str) -> int:
    """Proxy resolution (pixels) used when none is asked: digits 32, cifar10 32, imagefolder 128."""
    return DEFAULT_RESOLUTION[parse_spec(spec)[0]]


def check_data(spec: str) -> None:
    """Raise SearchError (one line: problem and fix) unless `spec` names a usable dataset.

    Cheap: it lists class folders and opens a few images, never the whole tree.
    """
    kind, path = parse_spec(spec)
    if kind == "cifar10":
        _cifar_dir(path, spec)
    elif kind == "imagefolder":
        from PIL import Image

        for root in _split_roots(path, spec):
            classes = _classes(root, spec)
            firsts = [_first_image(root / c, spec) for c in classes]
            for image in firsts[:3]:
                try:
                    with Image.open(image) as im:
                        im.verify()
                except (OSError, SyntaxError) as err:  # Pillow's verify raises SyntaxError on a broken PNG
                    raise SearchError(f"--data {spec}: cannot read {image} ({err}); remove or replace it") from None


def load_dataset(spec: str, resolution: int, train_fraction: float = 1.0,
                 seed: int = 0) -> tuple[Dataset, Dataset, int]:
    """(train, held-out, number of classes) at `resolution` x `resolution` pixels.

    train_fraction in (0, 1] keeps a stratified share of the training split, drawn with `seed`.
    Cached per process: a long-lived search worker reads each dataset once.
    """
    check_data(spec)
    return _load(spec, int(resolution), float(train_fraction), int(seed))


@lru_cache(maxsize=2)
def _load(spec: str, resolution: int, train_fraction: float, seed: int):
    kind, path = parse_spec(spec)
    if kind == "digits":
        train, heldout, classes = _digits(resolution)
    elif kind == "cifar10":
        train, heldout, classes = _cifar10(path, spec, resolution)
    else:
        train, heldout, classes = _imagefolder(path, spec, resolution)
    if train_fraction < 1.0:
        keep, _ = stratified_split(train.labels, train_fraction, seed)
        train = train.subset(keep)
    return train, heldout, classes


def stratified_split(labels, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (picked, rest): about `fraction` of each class (at least one image), sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        picked.append(idx[:min(len(idx), max(1, round(fraction * len(idx))))])
    picked = np.sort(np.concatenate(picked))
    return picked, np.setdiff1d(np.arange(len(labels)), picked)


class TensorImages(Dataset):
    """Images in memory, [N, C, h, w] (C = 1 or 3, uint8 or float), labels [N] int64.

    Indexing with a list of indices returns a whole batch, (images [B, 3, R, R] float32, labels [B]):
    resizing (bilinear) and normalisation (mean, std: C numbers in the images' units) happen per
    batch, so an upscaled copy of the dataset never has to fit in memory.
    """

    def __init__(self, images: torch.Tensor, labels, resolution: int, mean, std):
        self.images, self.labels = images, torch.as_tensor(labels, dtype=torch.int64)
        self.resolution = resolution
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        if isinstance(index, int):
            x, y = self[[index]]
            return x[0], y[0]
        x = (_resize(self.images[index].float(), self.resolution) - self.mean) / self.std
        return x.expand(-1, 3, -1, -1).contiguous(), self.labels[index]

    def subset(self, index) -> "TensorImages":
        index = torch.as_tensor(index, dtype=torch.int64)
        return TensorImages(self.images[index], self.labels[index], self.resolution,
                            self.mean.flatten().tolist(), self.std.flatten().tolist())


class ImageFiles(Dataset):
    """Image files streamed from disk: shorter side resized to R, centre crop R x R, ImageNet
    normalisation. samples: (path, label) pairs. Yields (float32 [3, R, R], int64 label)."""

    def __init__(self, samples: list[tuple[str, int]], resolution: int):
        self.samples, self.resolution = samples, resolution
        self.labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        from PIL import Image

        path, label = self.samples[index]
        r = self.resolution
        try:
            with Image.open(path) as im:
                im.draft("RGB", (r, r))  # JPEG decodes at 1/2, 1/4, 1/8 scale when that still covers R
                im = im.convert("RGB")
        except OSError as err:
            raise SearchError(f"{path}: cannot read image ({err}); remove or replace it") from None
        w, h = im.size
        scale = r / min(w, h)
        w, h = max(r, round(w * scale)), max(r, round(h * scale))
        left, top = (w - r) // 2, (h - r) // 2
        im = im.resize((w, h), Image.BILINEAR).crop((left, top, left + r, top + r))
        x = torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).float()
        return (x - self.mean) / self.std, self.labels[index]

    def subset(self, index) -> "ImageFiles":
        return ImageFiles([self.samples[i] for i in index], self.resolution)


def make_loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """Batches of (images [B, 3, R, R], labels [B]); shuffled by a generator seeded with `seed`.

    Training loaders (shuffle) drop a ragged last batch when there is more than one batch: a batch
    of one image cannot train BatchNorm, and a tiny one is a noisy step at full learning rate.
    """
    g = torch.Generator().manual_seed(seed)
    drop_last = shuffle and len(ds) > batch_size
    if isinstance(ds, TensorImages):  # one gather per batch instead of B item lookups and a collate
        order = RandomSampler(ds, generator=g) if shuffle else SequentialSampler(ds)
        return DataLoader(ds, sampler=BatchSampler(order, batch_size, drop_last), batch_size=None,
                          pin_memory=pin_memory)
    gpus = torch.cuda.device_count()
    workers = 0 if len(ds) < SMALL_DATASET else min(8, max(1, (os.cpu_count() or 2) // max(1, gpus) - 1))
    return DataLoader(ds, batch_size, shuffle=shuffle, generator=g, drop_last=drop_last,
                      num_workers=workers, persistent_workers=workers > 0, pin_memory=pin_memory)


def _resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


# -- the three sources ----------------------------------------------------------------------------
def _digits(resolution: int):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)  # [1797, 1, 8, 8], 0..16
    heldout, train = stratified_split(bunch.target, HELDOUT_FRACTION, SPLIT_SEED)
    # Standardise with the training split's statistics at the proxy resolution (upscaling smooths,
    # so the 8x8 statistics would leave the inputs with std below one); chunks bound the memory.
    s = s2 = n = 0.0
    for chunk in images[torch.as_tensor(train)].split(256):
        x = _resize(chunk, resolution)
        s, s2, n = s + x.sum().item(), s2 + x.square().sum().item(), n + x.numel()
    mean = s / n
    std = max(s2 / n - mean * mean, 1e-12) ** 0.5
    full = TensorImages(images, bunch.target, resolution, (mean,), (std,))
    return full.subset(train), full.subset(heldout), 10


def _cifar_dir(path: Path, spec: str) -> Path:
    """The folder holding CIFAR-10's batches (PATH or PATH/cifar-10-batches-py)."""
    if not path.is_dir():
        raise SearchError(f"--data {spec}: no such folder {path}; download and extract "
                          f"cifar-10-python.tar.gz from {CIFAR_URL} and give its folder")
    wanted = CIFAR_TRAIN + ("test_batch",)
    for folder in (path, path / "cifar-10-batches-py"):
        missing = [b for b in wanted if not (folder / b).is_file()]
        if len(missing) < len(wanted):
            if missing:
                raise SearchError(f"--data {spec}: {folder} lacks {', '.join(missing)}; extract the "
                                  f"whole cifar-10-python.tar.gz from {CIFAR_URL} there")
            return folder
    raise SearchError(f"--data {spec}: no CIFAR-10 batches (data_batch_1..5, test_batch) in {path} or "
                      f"{path / 'cifar-10-batches-py'}; extract cifar-10-python.tar.gz from {CIFAR_URL}")


def _cifar_batch(file: Path, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 3, 32, 32], labels [N]) of one pickled batch (a trusted file: pickle)."""
    try:
        with open(file, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
        raise SearchError(f"--data {spec}: {file} is not a CIFAR-10 python batch ({err!r}); "
                          f"extract it again from cifar-10-python.tar.gz ({CIFAR_URL})") from None
    if len(labels) != len(data) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise SearchError(f"--data {spec}: {file} has labels outside 0-9 or not one per image; "
                          f"extract it again from cifar-10-python.tar.gz ({CIFAR_URL})")
    return data, labels


def _cifar10(path: Path, spec: str, resolution: int):
    folder = _cifar_dir(path, spec)
    parts = [_cifar_batch(folder / b, spec) for b in CIFAR_TRAIN]
    test = _cifar_batch(folder / "test_batch", spec)

    def split(images, labels):
        return TensorImages(torch.from_numpy(images), labels, resolution, CIFAR_MEAN, CIFAR_STD)

    train = split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return train, split(*test), 10


def _split_roots(path: Path, spec: str) -> list[Path]:
    """[PATH/train, PATH/val] when both exist, else [PATH]."""
    if not path.is_dir():
        raise SearchError(f"--data {spec}: no such folder {path}; give the root of an ImageFolder "
                          "tree (one subfolder per class)")
    pair = [path / "train", path / "val"]
    return pair if all(p.is_dir() for p in pair) else [path]


def _classes(root: Path, spec: str) -> list[str]:
    """Class folder names, sorted as torchvision's ImageFolder sorts them."""
    try:
        entries = list(os.scandir(root))
    except OSError as err:
        raise SearchError(f"--data {spec}: cannot read folder {root} ({err.strerror}); check its "
                          "permissions") from None
    classes = sorted(e.name for e in entries if e.is_dir())
    if len(classes) < 2:
        loose = any(e.name.lower().endswith(IMG_EXTENSIONS) for e in entries if e.is_file())
        found = f"{len(classes)} class folder{'s' if len(classes) != 1 else ''}" + (
            f" ({classes[0]})" if classes else "") + (" and loose images" if loose else "")
        raise SearchError(f"--data {spec}: {root} has {found}; an ImageFolder tree needs one "
                          "subfolder of images per class, at least 2 classes")
    return classes


def _walk_images(folder: Path):
    """Image files under `folder` (recursively, symlinks followed), in torchvision's order."""
    for dirpath, _, files in sorted(os.walk(folder, followlinks=True)):
        for name in sorted(files):
            if name.lower().endswith(IMG_EXTENSIONS):
                yield os.path.join(dirpath, name)


def _first_image(folder: Path, spec: str) -> str:
    """Any one image under `folder`; scandir stops early, so a class of 1300 files costs one read."""
    stack = [str(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for e in entries:
                    if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS):
                        return e.path
                    if e.is_dir():
                        stack.append(e.path)
        except OSError as err:
            raise SearchError(f"--data {spec}: cannot read {err.filename} ({err.strerror}); check its "
                              "permissions") from None
    raise SearchError(f"--data {spec}: class folder {folder} holds no images "
                      f"({', '.join(IMG_EXTENSIONS)}); add some or remove the folder")


def _imagefolder(path: Path, spec: str, resolution: int):
    roots = _split_roots(path, spec)
    classes = _classes(roots[0], spec)
    if len(roots) == 2 and _classes(roots[1], spec) != classes:
        raise SearchError(f"--data {spec}: {roots[0]} and {roots[1]} have different class folders; "
                          "give both the same classes")
    splits = [ImageFiles([(f, label) for label, c in enumerate(classes) for f in _walk_images(root / c)],
                         resolution) for root in roots]
    if len(splits) == 2:
        return splits[0], splits[1], len(classes)
    heldout, train = stratified_split(splits[0].labels, HELDOUT_FRACTION, SPLIT_SEED)
    return splits[0].subset(train), splits[0].subset(heldout), len(classes)

"""The short-training proxy that scores a NAS candidate: train briefly, report held-out top-1.

The candidate is trained as a proxy network: at the proxy resolution, with every filter count
scaled by `width_mult`, and with the dataset's classes; depth, kernels, expansions, SE and
activations are the candidate's own. Training is plain and deterministic on CPU for a seed:
SGD (Nesterov momentum) or AdamW, per-step cosine schedule after a short linear warm-up, label
smoothing; on GPU with AMP (bf16 where supported, else fp16 with loss scaling) and channels_last.
Before scoring, BatchNorm statistics are recomputed with the final weights (`recalibrate_bn`).

Short training ranks networks imperfectly (reference/search.md): measure the proxy's rank
correlation with a longer budget before trusting it. `epoch_loss` is returned so that the
sum-of-training-losses estimator can be compared too.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from latbench.arch import Arch, StagedArch
from latbench.builders import build_network
from latbench.cost import make_divisible
from latbench.errors import ArchError, SearchError
from nas.data import default_resolution, load_dataset, make_loader

OPTIMIZERS = ("sgd", "adamw")
# Learning rate per 256 images in a batch (linear scaling), and weight decay, per optimiser. On
# digits (2 epochs, batch 64) SGD scored alike from 0.1 to 0.3 and AdamW needed 0.005 or more: a
# run of a few dozen steps needs large steps. SGD's 0.5 is within fast ImageNet schedules; AdamW's
# 0.02 is well above long-run practice (about 0.001 per 512), so set lr for long proxies.
LR_PER_256 = {"sgd": 0.5, "adamw": 0.02}
WEIGHT_DECAY = {"sgd": 5e-5, "adamw": 0.05}
MOMENTUM = 0.9
WARMUP_FRACTION = 0.1  # of all steps, at most one epoch
MAX_RESOLUTION = 8192  # pixels; the minimum-resolution search gives up beyond it
BN_RECALIBRATION_IMAGES = 512  # matched the whole digits training split (8 networks, top-1 within 2 points)


@dataclass(frozen=True)
class TrainConfig:
    """How a candidate is trained. None means: proxy_resolution the dataset's default (digits 32,
    cifar10 32, imagefolder 128 pixels); lr LR_PER_256[optimizer] x batch_size / 256; weight_decay
    WEIGHT_DECAY[optimizer]; threads torch's default. device: "auto" (cuda when available), "cpu",
    "cuda", "cuda:N"."""

    data: str = "digits"
    epochs: int = 2
    proxy_resolution: int | None = None
    width_mult: float = 1.0
    train_fraction: float = 1.0
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None
    weight_decay: float | None = None
    label_smoothing: float = 0.1
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Raise SearchError naming the first bad setting and its allowed range."""
        bad = [
            (self.epochs < 1, f"epochs {self.epochs}: use 1 or more"),
            (self.proxy_resolution is not None and self.proxy_resolution < 1,
             f"proxy_resolution {self.proxy_resolution}: use a positive number of pixels"),
            (not self.width_mult > 0, f"width_mult {self.width_mult}: use a positive multiplier"),
            (not 0 < self.train_fraction <= 1, f"train_fraction {self.train_fraction}: use a share in (0, 1]"),
            (self.batch_size < 2, f"batch_size {self.batch_size}: use 2 or more (BatchNorm needs two images)"),
            (self.optimizer not in OPTIMIZERS, f"optimizer {self.optimizer!r}: use {' or '.join(OPTIMIZERS)}"),
            (self.lr is not None and not self.lr > 0, f"lr {self.lr}: use a positive learning rate"),
            (self.weight_decay is not None and not self.weight_decay >= 0,
             f"weight_decay {self.weight_decay}: use 0 or more"),
            (not 0 <= self.label_smoothing < 1, f"label_smoothing {self.label_smoothing}: use [0, 1)"),
            (self.threads is not None and self.threads < 1, f"threads {self.threads}: use 1 or more"),
        ]
        for failed, message in bad:
            if failed:
                raise SearchError(f"training settings: {message}")

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else LR_PER_256[self.optimizer] * self.batch_size / 256

    @property
    def resolved_weight_decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else WEIGHT_DECAY[self.optimizer]


def proxy_arch(staged: StagedArch, resolution: int, width_mult: float, classes: int) -> Arch:
    """The candidate at `resolution` pixels, filters x `width_mult` (make_divisible: multiples of
    8, at least 8), and a tail of `classes` outputs. SearchError names the smallest resolution
    that works when `resolution` leaves a feature map empty."""
    def scale(filters: int) -> int:
        return make_divisible(filters * width_mult)

    proxy = replace(
        staged, resolution=resolution, head=replace(staged.head, out_channels=scale(staged.head.out_channels)),
        stages=tuple(replace(s, block=replace(s.block, out_channels=scale(s.filters))) for s in staged.stages),
        tail=replace(staged.tail, out_channels=scale(staged.tail.out_channels), classes=classes))
    try:
        return proxy.expand()
    except ArchError as err:
        smallest = _smallest_resolution(proxy, resolution)
        if smallest is None:
            raise err from None
        raise SearchError(f"proxy resolution {resolution} px is too small for {staged.name or 'this network'} "
                          f"(its strides and kernels empty a feature map); use --proxy-resolution "
                          f"{smallest} or more") from None


def _smallest_resolution(proxy: StagedArch, failing: int) -> int | None:
    """Smallest resolution above `failing` that expands, or None. Output sizes never shrink as the
    input grows, so doubling then bisecting finds the same answer as counting up, in ~20 tries."""
    def works(r: int) -> bool:
        try:
            replace(proxy, resolution=r).expand()
            return True
        except ArchError:
            return False

    lo, hi = failing, max(1, 2 * failing)
    while not works(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_RESOLUTION:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if works(mid) else (mid, hi)
    return hi


def resolve_device(name: str) -> torch.device:
    """The torch device for "auto" (cuda when available), "cpu", "cuda" or "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SearchError(f"device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SearchError(f"device {name!r}: torch sees no CUDA GPU here; use device auto or cpu")
    return device


def train_and_score(staged: StagedArch, cfg: TrainConfig) -> dict:
    """Train the proxy of `staged` for cfg.epochs and score it on the held-out split.

    Returns top1 (percent of held-out images), loss (mean training loss of the last epoch; None if
    diverged), epoch_loss (per epoch), diverged (a non-finite loss stopped training; top1 is then
    whatever the network scores), params (trainable, proxy network), macs (proxy), train_s (wall
    seconds of the training epochs), epochs (trained), proxy_resolution (pixels), width_mult, lr,
    train_samples, heldout_samples, device.
    """
    cfg.check()
    device = resolve_device(cfg.device)
    resolution = cfg.proxy_resolution or default_resolution(cfg.data)
    train_set, heldout, classes = load_dataset(cfg.data, resolution, cfg.train_fraction, cfg.seed)
    if len(train_set) < 2:
        raise SearchError(f"--data {cfg.data}: {len(train_set)} training image(s) after the split; "
                          "add images or raise train_fraction (BatchNorm needs two)")
    arch = proxy_arch(staged, resolution, cfg.width_mult, classes)
    on_gpu = device.type == "cuda"
    with _threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        model = build_network(arch).to(device)
        if on_gpu:
            model = model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True  # fixed input shape: the autotuned kernels pay off
        loader = make_loader(train_set, cfg.batch_size, shuffle=True, seed=cfg.seed, pin_memory=on_gpu)
        started = time.perf_counter()
        losses = _fit(model, loader, cfg, device)
        train_s = time.perf_counter() - started
        recalibrate_bn(model, loader, device)
        eval_loader = make_loader(heldout, 2 * cfg.batch_size, shuffle=False, pin_memory=on_gpu)
        top1 = evaluate(model, eval_loader, device)
    diverged = not math.isfinite(losses[-1])
    return {
        "top1": top1, "loss": None if diverged else losses[-1],
        "epoch_loss": [x if math.isfinite(x) else None for x in losses], "diverged": diverged,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad), "macs": arch.macs,
        "train_s": train_s, "epochs": len(losses), "proxy_resolution": resolution,
        "width_mult": cfg.width_mult, "lr": cfg.resolved_lr, "train_samples": len(train_set),
        "heldout_samples": len(heldout), "device": str(device),
    }


def _fit(model: nn.Module, loader, cfg: TrainConfig, device: torch.device) -> list[float]:
    """Train in place; returns the mean training loss of each epoch, stopping after a non-finite
    one (NaN weights do not recover, and the rest of the budget would be wasted)."""
    optimizer = _optimizer(model, cfg)
    total = cfg.epochs * len(loader)
    warmup = max(1, min(len(loader), round(WARMUP_FRACTION * total)))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (
        (step + 1) / warmup if step < warmup
        else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))))
    amp = _amp_dtype(device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    losses = []
    model.train()
    for _ in range(cfg.epochs):
        running, seen = torch.zeros((), device=device), 0
        for x, y in loader:
            x, y = _to(x, device), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            running += loss.detach() * len(y)  # stays on the device: no sync per step
            seen += len(y)
        losses.append(running.item() / seen)
        if not math.isfinite(losses[-1]):
            break
    return losses


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader, device: torch.device,
                   images: int = BN_RECALIBRATION_IMAGES) -> None:
    """Recompute every BatchNorm's running statistics as a plain average over about `images`
    training images, with the final weights.

    In a run of a few dozen steps the weights move faster than the running averages (momentum
    0.1) follow, so the held-out score would measure that lag as much as the network (on six
    digits networks, 2 epochs, recalibration raised mean top-1 by 11 points with SGD and 25 with
    AdamW, most for the networks that had scored worst).
    `loader` should shuffle, so that a class-sorted dataset still gives every class its share.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [bn.momentum for bn in bns]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
        bn.train()
    amp = _amp_dtype(device)
    seen = 0
    for x, _ in loader:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            model(_to(x, device))
        seen += len(x)
        if seen >= images:
            break
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
        bn.eval()


@torch.inference_mode()
def evaluate(model: nn.Module, loader, device: torch.device) -> float:
    """Top-1 accuracy in percent over `loader` (eval mode: BN running statistics, no dropout)."""
    model.eval()
    amp = _amp_dtype(device)
    correct, seen = torch.zeros((), dtype=torch.int64, device=device), 0
    for x, y in loader:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = model(_to(x, device))
        correct += (logits.argmax(1) == y.to(device)).sum()
        seen += len(y)
    return 100.0 * correct.item() / max(1, seen)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # Decay conv and linear weights only: decaying BN scales, biases and PReLU slopes just slows
    # a short run down.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.resolved_weight_decay},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.resolved_lr)
    return torch.optim.SGD(groups, lr=cfg.resolved_lr, momentum=MOMENTUM, nesterov=True)


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """Autocast dtype: none on CPU (bf16 there is slower than fp32 on most CPUs), bf16 on GPUs
    that have it (no loss scaling needed), else fp16."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


@contextmanager
def _threads(n: int | None):
    """torch's CPU thread count set to `n` for the block (a process-wide setting, so restored)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

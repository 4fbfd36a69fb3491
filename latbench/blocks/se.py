"""Squeeze-excitation variants: how wide the squeeze is, and which gate and activation it uses.

    se0   none
    se1   GPUNet / EfficientNet: squeeze round(hidden x 0.25 / expansion) channels (about in / 4,
          half to even), sigmoid gate, the block's own activation inside
    se2   MobileNetV3 / Once-for-All: squeeze make_divisible(hidden x 0.25, 8) channels,
          hard-sigmoid gate, ReLU inside

SE sits on the block's hidden tensor (expanding kinds) or its input (depthwise-separable); both
of its 1x1 convolutions have a bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latbench.cost import make_divisible

#: Squeeze width relative to the block input (se1) or the hidden tensor (se2).
SE_RATIO = 0.25


@dataclass(frozen=True)
class Variant:
    gate: str  # "sigmoid" | "hsigmoid"
    act: str | None  # None: the block's activation
    about: str


VARIANTS = {
    1: Variant("sigmoid", None, "GPUNet/EfficientNet: round(hidden/4/expansion), sigmoid, block activation"),
    2: Variant("hsigmoid", "relu", "MobileNetV3: make_divisible(hidden/4, 8), hard sigmoid, ReLU"),
}


def describe() -> str:
    return "se0 none; " + "; ".join(f"se{k} {v.about}" for k, v in VARIANTS.items())


def channels(variant, hidden, expansion):
    """Squeeze width of each block (0 without SE); scalars or equal-length arrays."""
    variant, hidden = np.asarray(variant), np.asarray(hidden)
    gpunet = np.round(hidden * (SE_RATIO / np.asarray(expansion, dtype=np.float64))).astype(np.int64)
    mobilenet = np.asarray(make_divisible(hidden * SE_RATIO), dtype=np.int64)
    out = np.where(variant == 1, gpunet, np.where(variant == 2, mobilenet, 0))
    return int(out) if out.ndim == 0 else out


def costs(variant, hidden, expansion, act_prelu, ho, wo) -> dict:
    """SE's share of a block's costs: squeeze width, MACs, parameters (both convs with bias, a
    PReLU slope per squeeze channel when the block's activation is PReLU and SE uses it) and the
    intermediate elements it writes (pooled vector, squeeze, gate, the scaled hidden tensor)."""
    on = (np.asarray(variant) > 0).astype(np.int64)
    rd = channels(variant, hidden, expansion)
    own_act = (np.asarray(variant) == 1).astype(np.int64)  # se2 brings its own ReLU
    params = on * (2 * hidden * rd + rd + hidden) + own_act * act_prelu * rd
    internal = on * (3 * hidden + 2 * rd + hidden * ho * wo)
    return {"se_channels": rd, "macs": on * 2 * hidden * rd, "params": params, "internal": internal}

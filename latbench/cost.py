"""Arithmetic shared by the block kinds' analytic costs, for scalars and numpy arrays alike.

The same formulas serve `BlockSpec` (one block, Python ints) and the vectorised predictor (arrays
of hundreds of thousands of keys), so there is one truth for widths, output sizes and traffic.
Each kind (latbench.blocks) composes its costs from these. Rules from NVIDIA's released GPUNet
builder (gpunet.md) and timm's EfficientNet builder:

* hidden widths = make_divisible(in * expansion, 8);
* convolutions pad symmetrically: ((stride - 1) + (kernel - 1)) // 2;
* the released GPUNet builder asks TF-"same" padding of the Fused-IRB expansion conv; for stride
  2 that silently becomes padding 0 (so 160 -> 79 with k3), which latbench reproduces;
* BN folds into the convolution at inference: a folded conv has weights plus one bias per channel.

Counting conventions: MACs count convolution and linear multiply-accumulates (pooling,
activations and adds are not counted); FLOPs = 2 x MACs. Parameters are those of the trainable
module (convs without bias + BN weight and bias + PReLU slopes + SE convs with bias + linear);
folded parameters are the inference weights (BN folded into conv bias).
"""

from __future__ import annotations

import numpy as np


def make_divisible(v, divisor: int = 8, round_limit: float = 0.9):
    """Round `v` to the nearest multiple of `divisor`, at least `divisor`, and one multiple up when
    that falls below round_limit * v (timm's rule; GPUNet's builder uses the defaults).

    Works on Python numbers and numpy arrays.
    """
    if np.ndim(v) == 0:
        new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
        return new_v + divisor if new_v < round_limit * v else new_v
    v = np.asarray(v, dtype=np.float64)
    new_v = np.maximum(divisor, (v + divisor / 2).astype(np.int64) // divisor * divisor)
    return np.where(new_v < round_limit * v, new_v + divisor, new_v)


def symmetric_padding(kernel, stride):
    """The released builder's symmetric padding for head, conv and IRB convolutions."""
    return ((stride - 1) + (kernel - 1)) // 2


def fused_padding(kernel, stride):
    """Fused-IRB expansion-conv padding: TF-same when static (stride 1), else 0 (released quirk)."""
    return _native(np.where(np.asarray(stride) == 1, (np.asarray(kernel) - 1) // 2, 0))


def _native(x):
    """Return 0-d arrays as Python ints so scalar callers get scalars back."""
    return int(x) if np.ndim(x) == 0 else x


def conv_out(size, kernel, stride, padding):
    """Output length of a convolution along one axis (floor division, as PyTorch)."""
    return (size + 2 * padding - kernel) // stride + 1


def bytes_moved(costs: dict, elem_bytes: int):
    """Memory traffic of one unfused execution, in bytes: weights, input, output, and every
    intermediate tensor written and read once."""
    elems = (
        costs["folded_params"]
        + costs["in_elems"]
        + costs["out_elems"]
        + 2 * costs["internal_elems"]
    )
    return elems * elem_bytes


def conv_bn(cin, cout, kernel, groups=1):
    """(weights, params with BN, folded params) of a conv without bias followed by BatchNorm."""
    weights = cin // groups * cout * kernel * kernel
    return weights, weights + 2 * cout, weights + cout


def residual_traffic(skip, in_elems, out_elems) -> tuple:
    """(extra input reads, extra intermediate elements) of a residual add: the add reads the
    input a second time, and the projection's output exists before the add."""
    return skip * in_elems, skip * out_elems

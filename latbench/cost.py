"""Analytic shapes and costs of blocks, written once for scalars and numpy arrays alike.

The same formulas serve `BlockSpec` (one block, Python ints) and the vectorised predictor (arrays
of hundreds of thousands of keys), so there is one truth for widths, output sizes, MACs, parameter
counts and memory traffic. The rules follow NVIDIA's released GPUNet builder (gpunet.md):

* hidden width of (Fused-)IRB = make_divisible(in * expansion, 8);
* SE reduces the hidden width to round(hidden * 0.25 / expansion), i.e. about in / 4;
* head, conv and IRB convolutions pad symmetrically: ((stride - 1) + (kernel - 1)) // 2;
* the released builder asks TF-"same" padding of the Fused-IRB expansion conv; for stride 2 that
  silently becomes padding 0 (so 160 -> 79 with k3), which we reproduce;
* BN folds into the convolution at inference: a folded conv has weights plus one bias per channel.

Counting conventions: MACs count convolution and linear multiply-accumulates (pooling,
activations and adds are not counted); FLOPs = 2 x MACs. Parameters are those of the trainable
module (convs without bias + BN weight and bias + PReLU slopes + SE convs with bias + linear);
folded parameters are the inference weights (BN folded into conv bias).
"""

from __future__ import annotations

import numpy as np

#: Multiplier of the SE squeeze width relative to the block input (timm's se_ratio).
SE_RATIO = 0.25


def make_divisible(v, divisor: int = 8):
    """Round `v` to the nearest multiple of `divisor`, at least `divisor`, never below 0.9*v.

    Works on Python numbers and numpy arrays; identical to the released builder's rounding.
    """
    if np.ndim(v) == 0:
        new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
        return new_v + divisor if new_v < 0.9 * v else new_v
    v = np.asarray(v, dtype=np.float64)
    new_v = np.maximum(divisor, (v + divisor / 2).astype(np.int64) // divisor * divisor)
    return np.where(new_v < 0.9 * v, new_v + divisor, new_v)


def se_channels(hidden, expansion):
    """Squeeze width of SE inside a (Fused-)IRB: round(hidden * 0.25 / expansion), half to even."""
    reduced = np.round(np.asarray(hidden) * (SE_RATIO / np.asarray(expansion, dtype=np.float64)))
    return _native(reduced.astype(np.int64))


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


def block_padding(kind: str, kernel, stride):
    """Padding of a block's spatial (strided) convolution."""
    if kind == "fused_irb":
        return fused_padding(kernel, stride)
    if kind == "tail":
        return 0 * kernel
    return symmetric_padding(kernel, stride)


def block_costs(kind: str, cin, cout, h, w, kernel, stride, expansion, se, prelu, classes) -> dict:
    """Costs of blocks of one `kind`; every other argument is a scalar or an equal-length array.

    Returns a dict of element counts (multiply by bytes per element for bytes):
    ``out_h``, ``out_w`` (output size; 1 for the tail), ``hidden`` (width after expansion),
    ``macs``, ``params`` (trainable module), ``folded_params`` (inference weights),
    ``in_elems``, ``out_elems`` and ``internal_elems`` (intermediate tensors, each written once
    and read once when the block's operators run unfused).
    `se` and `prelu` are 0/1 flags (prelu: the activation is PReLU, one slope per channel).
    """
    pad = block_padding(kind, kernel, stride)
    ho = conv_out(h, kernel, stride, pad)
    wo = conv_out(w, kernel, stride, pad)
    in_elems = cin * h * w
    if kind in ("head", "conv"):
        weights = cin * cout * kernel * kernel
        macs = weights * ho * wo
        params = weights + 2 * cout + prelu * cout
        folded = weights + cout + prelu * cout
        out_elems = cout * ho * wo
        internal = out_elems  # conv output before the activation
        hidden = cout + 0 * cin
    elif kind in ("irb", "fused_irb"):
        hidden = make_divisible(cin * expansion)
        rd = se_channels(hidden, expansion)
        se_macs = se * 2 * hidden * rd
        se_params = se * (2 * hidden * rd + rd + hidden + prelu * rd)
        se_internal = se * (3 * hidden + 2 * rd + hidden * ho * wo)
        proj = hidden * cout
        if kind == "irb":
            expand, dw = cin * hidden, hidden * kernel * kernel
            macs = expand * h * w + dw * ho * wo + proj * ho * wo + se_macs
            act_slopes = prelu * 2 * hidden
            params = expand + dw + proj + 2 * (2 * hidden + cout) + act_slopes + se_params
            folded = expand + dw + proj + 2 * hidden + cout + act_slopes + se_params
            internal = 2 * hidden * h * w + 2 * hidden * ho * wo + se_internal
        else:
            fused = cin * hidden * kernel * kernel
            macs = fused * ho * wo + proj * ho * wo + se_macs
            params = fused + proj + 2 * (hidden + cout) + prelu * hidden + se_params
            folded = fused + proj + hidden + cout + prelu * hidden + se_params
            internal = 2 * hidden * ho * wo + se_internal
        out_elems = cout * ho * wo
        residual = _native((np.asarray(stride) == 1) & (np.asarray(cin) == np.asarray(cout)))
        internal = internal + residual * out_elems  # projection output before the residual add
        in_elems = in_elems + residual * in_elems  # the add reads the input a second time
    elif kind == "tail":
        conv = cin * cout
        macs = conv * h * w + cout * classes
        params = conv + 2 * cout + prelu * cout + cout * classes + classes
        folded = conv + cout + prelu * cout + cout * classes + classes
        internal = 2 * cout * h * w + cout  # conv out, act out, pooled vector
        out_elems = classes + 0 * cin
        ho, wo, hidden = 1 + 0 * h, 1 + 0 * w, cout + 0 * cin
    else:
        raise ValueError(f"unknown block kind {kind!r}")
    return {
        "out_h": ho,
        "out_w": wo,
        "hidden": hidden,
        "macs": macs,
        "params": params,
        "folded_params": folded,
        "in_elems": in_elems,
        "out_elems": out_elems,
        "internal_elems": internal,
    }


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

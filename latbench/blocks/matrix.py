"""Blocks as rows of an integer matrix, so that hundreds of thousands of keys are described,
costed and looked up with a few numpy operations (the space index, the estimator, the predictor).

Columns (`FIELDS`): kind (its registry index), in_channels, out_channels, height (= width),
kernel, stride, expansion x 1000, se variant, act (index into ACTIVATIONS), classes, skip
(resolved residual, 0/1), groups, bias (0/1). Pure numpy.
"""

from __future__ import annotations

import numpy as np

from latbench.blocks.base import ACTIVATIONS, KINDS, BlockSpec, kind_index

FIELDS = ("kind", "in_channels", "out_channels", "height", "kernel", "stride", "expansion_x1000",
          "se", "act", "classes", "skip", "groups", "bias")
COL = {name: i for i, name in enumerate(FIELDS)}
COST_NAMES = ("out_h", "out_w", "hidden", "se_channels", "macs", "params", "folded_params",
              "in_elems", "out_elems", "internal_elems")


def encode(name: str, value) -> int:
    """A field value as the integer stored in its column."""
    if name == "kind":
        return kind_index(value)
    if name == "act":
        return ACTIVATIONS.index(value)
    if name == "expansion":
        return int(round(float(value) * 1000))
    return int(value)


def spec_row(s: BlockSpec) -> tuple:
    return (kind_index(s.kind), s.in_channels, s.out_channels, s.height, s.kernel, s.stride,
            encode("expansion", s.expansion), s.se, ACTIVATIONS.index(s.act), s.classes, int(s.skip),
            s.groups, int(s.bias))


def spec_matrix(specs: list[BlockSpec]) -> np.ndarray:
    """Blocks as rows of FIELDS (int64); square inputs are assumed (height = width)."""
    if not specs:
        return np.zeros((0, len(FIELDS)), dtype=np.int64)
    return np.array([spec_row(s) for s in specs], dtype=np.int64)


def row_spec(row) -> BlockSpec:
    """The BlockSpec of one matrix row."""
    r = [int(x) for x in row]
    return BlockSpec(kind=list(KINDS)[r[0]], in_channels=r[1], out_channels=r[2], height=r[3],
                     width=r[3], kernel=r[4], stride=r[5], expansion=r[6] / 1000, se=r[7],
                     act=ACTIVATIONS[r[8]], classes=r[9], skip=bool(r[10]), groups=r[11], bias=bool(r[12]))


def column(m: np.ndarray, name: str) -> np.ndarray:
    return m[:, COL[name]]


def matrix_costs(m: np.ndarray) -> dict[str, np.ndarray]:
    """Every kind's analytic costs for the rows of `m` (float64 arrays of COST_NAMES)."""
    out = {k: np.zeros(len(m)) for k in COST_NAMES}
    kinds = column(m, "kind")
    for k, kind in enumerate(KINDS.values()):
        rows = np.nonzero(kinds == k)[0]
        if len(rows) == 0:
            continue
        sub = m[rows]
        h = column(sub, "height")
        c = kind.costs(
            column(sub, "in_channels"), column(sub, "out_channels"), h, h, column(sub, "kernel"),
            column(sub, "stride"), column(sub, "expansion_x1000") / 1000.0, column(sub, "se"),
            (column(sub, "act") == ACTIVATIONS.index("prelu")).astype(np.int64), column(sub, "classes"),
            column(sub, "skip"), column(sub, "groups"), column(sub, "bias"))
        for name in COST_NAMES:
            out[name][rows] = c[name]
    return out


def resolved_skip(kind: str, stride, cin, cout) -> np.ndarray:
    """The residual a kind's rule gives blocks of these shapes (0/1 array)."""
    k = KINDS[kind]
    rule = k.skippable and k.skip_by_default
    return ((np.asarray(stride) == 1) & (np.asarray(cin) == np.asarray(cout)) & rule).astype(np.int64)

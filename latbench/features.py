"""Numeric descriptions of blocks, vectorised: the inputs of the latency estimator.

Blocks are handled as a matrix with one row per block and the columns of
`latbench.space_index.FIELDS` (kind and activation as indices, expansion x1000), so hundreds of
thousands of keys are described with a few numpy operations. Pure numpy.
"""

from __future__ import annotations

import numpy as np

from latbench import cost
from latbench.space_index import FIELDS
from latbench.spec import ACTIVATIONS, KINDS, BlockSpec

_COL = {name: i for i, name in enumerate(FIELDS)}


def spec_matrix(specs: list[BlockSpec]) -> np.ndarray:
    """Blocks as rows of FIELDS (int64)."""
    if not specs:
        return np.zeros((0, len(FIELDS)), dtype=np.int64)
    return np.array([[KINDS.index(s.kind), s.in_channels, s.out_channels, s.height, s.kernel,
                      s.stride, int(round(s.expansion * 1000)), int(s.se), ACTIVATIONS.index(s.act),
                      s.classes] for s in specs], dtype=np.int64)


def column(m: np.ndarray, name: str) -> np.ndarray:
    return m[:, _COL[name]]


def costs(m: np.ndarray) -> dict[str, np.ndarray]:
    """cost.block_costs for every row of the matrix (square inputs), as float64 arrays."""
    out = {k: np.zeros(len(m)) for k in ("macs", "folded_params", "in_elems", "out_elems",
                                          "internal_elems")}
    kinds = column(m, "kind")
    for k, kind in enumerate(KINDS):
        rows = np.nonzero(kinds == k)[0]
        if len(rows) == 0:
            continue
        sub = m[rows]
        h = column(sub, "height")
        c = cost.block_costs(
            kind, column(sub, "in_channels"), column(sub, "out_channels"), h, h,
            column(sub, "kernel"), column(sub, "stride"), column(sub, "expansion_x1000") / 1000.0,
            column(sub, "se"), (column(sub, "act") == ACTIVATIONS.index("prelu")).astype(np.int64),
            column(sub, "classes"),
        )
        for name in out:
            out[name][rows] = c[name]
    return out


def weight_bytes(m: np.ndarray, elem_bytes: int) -> np.ndarray:
    """Inference weight bytes (BN folded) per row."""
    return costs(m)["folded_params"] * elem_bytes


def block_features(m: np.ndarray, elem_bytes: int) -> np.ndarray:
    """Estimator features per row: log work and traffic, log sizes, kernel, stride, expansion,
    SE and a one-hot activation. Shape [n, n_features], float64."""
    c = costs(m)
    act = column(m, "act")
    cols = [
        np.log1p(c["macs"]),
        np.log1p(c["folded_params"] * elem_bytes),
        np.log1p((c["in_elems"] + c["out_elems"]) * elem_bytes),
        np.log1p(c["internal_elems"] * elem_bytes),
        np.log(column(m, "height").astype(np.float64)),
        np.log(column(m, "in_channels").astype(np.float64)),
        np.log(column(m, "out_channels").astype(np.float64)),
        column(m, "kernel").astype(np.float64),
        column(m, "stride").astype(np.float64),
        np.log(column(m, "expansion_x1000") / 1000.0),
        column(m, "se").astype(np.float64),
    ] + [(act == a).astype(np.float64) for a in range(len(ACTIVATIONS))]
    return np.stack(cols, axis=1)

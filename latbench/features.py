"""Numeric descriptions of blocks, vectorised: the inputs of the latency estimator.

Blocks come as rows of the block matrix (latbench.blocks.matrix: kind and activation as indices,
expansion x1000), so hundreds of thousands of keys are described with a few numpy operations.
Pure numpy.
"""

from __future__ import annotations

import numpy as np

from latbench.blocks import ACTIVATIONS
from latbench.blocks.matrix import column, matrix_costs, spec_matrix
from latbench.cost import bytes_moved

__all__ = ["block_features", "column", "spec_matrix", "traffic_bytes", "weight_bytes"]


def weight_bytes(m: np.ndarray, elem_bytes: int) -> np.ndarray:
    """Inference weight bytes (BN folded) per row."""
    return matrix_costs(m)["folded_params"] * elem_bytes


def traffic_bytes(m: np.ndarray, elem_bytes: int) -> np.ndarray:
    """Unfused memory traffic per row in bytes (latbench.cost.bytes_moved)."""
    return bytes_moved(matrix_costs(m), elem_bytes)


def block_features(m: np.ndarray, elem_bytes: int) -> np.ndarray:
    """Estimator features per row: log work and traffic, log sizes, kernel, stride, expansion,
    SE and a one-hot activation. Shape [n, n_features], float64."""
    c = matrix_costs(m)
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
        (column(m, "se") > 0).astype(np.float64),
    ] + [(act == a).astype(np.float64) for a in range(len(ACTIVATIONS))]
    return np.stack(cols, axis=1)

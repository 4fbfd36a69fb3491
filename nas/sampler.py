"""Scrambled, seeded Sobol sampling of an encoded space (scipy.stats.qmc).

Each point u in [0, 1)^d maps to indices floor(u_i * n_i). Sizes are rounded up to a power of two
(Sobol's balance properties hold for 2^m points) and the first `n` are returned.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import qmc


def sobol_indices(cardinalities, n: int, seed: int = 0) -> np.ndarray:
    """`n` Sobol points as integer vectors, shape [n, len(cardinalities)], int64."""
    if n < 1:
        raise ValueError("n must be >= 1")
    card = np.asarray(cardinalities, dtype=np.int64)
    sampler = qmc.Sobol(d=len(card), scramble=True, seed=seed)
    u = sampler.random_base2(max(0, math.ceil(math.log2(n))))[:n]
    return np.minimum((u * card).astype(np.int64), card - 1)


def sample(space, n: int, seed: int = 0) -> np.ndarray:
    """`n` encoded networks of `space` drawn by scrambled Sobol."""
    return sobol_indices(space.cardinalities, n, seed)

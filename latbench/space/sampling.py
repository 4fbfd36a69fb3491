"""Scrambled, seeded Sobol sampling of an encoded space (scipy.stats.qmc).

Each point u in [0, 1)^d maps to indices floor(u_i * n_i). Sizes are rounded up to a power of two
(Sobol's balance properties hold for 2^m points) and the first `n` are returned.
"""

from __future__ import annotations

import math

import numpy as np

from latbench.arch import Arch
from latbench.errors import SpaceError


#: Largest sample drawn at once (2^24 networks x 41 int64 positions is 5.5 GB).
MAX_SAMPLE = 1 << 24
#: Points drawn at a time for large samples.
CHUNK_LOG2 = 20
CHUNK = 1 << CHUNK_LOG2


def sobol_indices(cardinalities, n: int, seed: int = 0) -> np.ndarray:
    """`n` Sobol points as integer vectors, shape [n, len(cardinalities)], int64."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_SAMPLE:
        raise SpaceError(f"a sample needs 1 to {MAX_SAMPLE:,} networks, got {n!r}")
    from scipy.stats import qmc  # half a second to import: only when a sample is drawn

    card = np.asarray(cardinalities, dtype=np.int64)
    sampler = qmc.Sobol(d=len(card), scramble=True, seed=seed)
    if n <= CHUNK:
        u = sampler.random_base2(max(0, math.ceil(math.log2(n))))[:n]
        return np.minimum((u * card).astype(np.int64), card - 1)
    # In chunks of 2^CHUNK_LOG2 points (the same sequence, so the same networks): the float
    # points of a whole large sample would double its memory.
    out = np.empty((n, len(card)), dtype=np.int64)
    for start in range(0, n, CHUNK):
        u = sampler.random_base2(CHUNK_LOG2) if start == 0 else sampler.random(CHUNK)
        stop = min(n, start + CHUNK)
        out[start:stop] = np.minimum((u[:stop - start] * card).astype(np.int64), card - 1)
    return out


def sample(space, n: int, seed: int = 0) -> np.ndarray:
    """`n` encoded networks of `space` drawn by scrambled Sobol."""
    return sobol_indices(space.cardinalities, n, seed)


def sample_archs(space, n: int, seed: int) -> list[Arch]:
    """The first `n` Sobol networks of `space`, named "<space>-sobol<seed>-<i>" (a Sobol sequence
    is prefix-stable: network i is the same whatever `n`)."""
    archs = []
    for i, x in enumerate(sample(space, n, seed)):
        a = space.decode(x)
        archs.append(Arch(a.resolution, a.blocks, a.stage_of, f"{space.name}-sobol{seed}-{i}", a.staged))
    return archs

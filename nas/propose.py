"""Ask: which pool member to train next. Stateless: everything comes from the history.

Methods, all choosing among the not-yet-used members of one latency group's pool (so latency
is a hard constraint and no continuous proposal needs rounding):
* ``random``: uniform;
* ``bo``: BoTorch GP + qLogNEI over the whole group;
* ``lamcts``: LA-MCTS picks a region of the group (nas.lamcts), BO picks inside it.
BO methods start with `n_init` random trials. Randomness is seeded by (seed, trial id), so a
resumed search proposes as the uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nas import bo, lamcts

METHODS = ("lamcts", "bo", "random")


@dataclass(frozen=True)
class ProposeSettings:
    method: str = "lamcts"
    n_init: int = 8
    #: Samples a node may hold before it splits. LaNAS uses 20-100 over thousands of samples; a
    #: search of tens of trials needs smaller leaves for the tree to say anything.
    leaf_size: int = 10
    cp: float = 0.1
    seed: int = 0


def scale(X: np.ndarray, cardinalities: np.ndarray) -> np.ndarray:
    """Encoded vectors to [0, 1] per position."""
    return np.asarray(X, dtype=np.float64) / np.maximum(np.asarray(cardinalities) - 1, 1)


def propose(settings: ProposeSettings, cardinalities, candidates: np.ndarray, X: np.ndarray,
            y: np.ndarray, pending: np.ndarray, trial: int) -> tuple[int, dict]:
    """(index into `candidates`, info) for the next trial.

    candidates [m, d]: unused group members; X [n, d], y [n]: finished trials (y higher is
    better); pending [p, d]: trials still running.
    """
    if len(candidates) == 0:
        raise ValueError("no candidates left")
    rng = np.random.default_rng([settings.seed, trial])
    if settings.method == "random" or len(y) < max(settings.n_init, 2):
        return int(rng.integers(len(candidates))), {"how": "random"}
    cs, xs = scale(candidates, cardinalities), scale(X, cardinalities)
    ps = scale(pending, cardinalities) if len(pending) else None
    subset, info = np.arange(len(candidates)), {"how": "bo"}
    if settings.method == "lamcts":
        tree = lamcts.build_tree(xs, y, settings.leaf_size, seed=settings.seed)
        path = lamcts.select_path(tree, settings.cp)
        subset = lamcts.leaf_candidates(path, cs)
        info = {"how": "lamcts", "depth": len(path), "region": int(len(subset))}
    pick = bo.pick(xs, y, cs[subset], ps, seed=int(rng.integers(2**31)))
    return int(subset[pick]), info

"""LA-MCTS partitions, BO picks and the stateless proposal step, on real objectives."""

from __future__ import annotations

import numpy as np
import pytest

from nas import bo, lamcts
from nas.propose import ProposeSettings, propose, scale


def objective(X):
    return -np.sum((X - 0.8) ** 2, axis=1)


def test_tree_separates_good_from_bad():
    rng = np.random.default_rng(0)
    X = rng.random((120, 6))
    y = objective(X)
    root = lamcts.build_tree(X, y, leaf_size=20)
    assert not root.is_leaf and root.good.mean > root.bad.mean
    path = lamcts.select_path(root, cp=0.0)  # pure exploitation: the best region
    near, far = np.full((5, 6), 0.8), np.full((5, 6), 0.05)
    assert lamcts.in_region(path[:1], near).all() and not lamcts.in_region(path[:1], far).any()
    idx = lamcts.leaf_candidates(path, np.vstack([near, far]))
    assert set(idx) <= set(range(5)) and len(idx) > 0


def test_small_sets_are_not_split():
    X = np.random.default_rng(1).random((10, 3))
    assert lamcts.build_tree(X, objective(X), leaf_size=20).is_leaf


def test_bo_prefers_the_optimum():
    rng = np.random.default_rng(2)
    X = rng.random((20, 4))
    cands = np.vstack([rng.random((200, 4)) * 0.3, np.full((1, 4), 0.8)])
    assert bo.pick(X, objective(X), cands, seed=0) == 200
    # With a running trial as X_pending the pick is still a valid, reproducible candidate.
    pending = np.full((1, 4), 0.75)
    j = bo.pick(X, objective(X), cands, pending=pending, seed=0)
    assert j == bo.pick(X, objective(X), cands, pending=pending, seed=0) and 0 <= j < len(cands)


@pytest.mark.parametrize("method", ["random", "bo", "lamcts"])
def test_propose_is_deterministic_and_valid(method):
    rng = np.random.default_rng(3)
    card = np.array([5, 4, 3, 6, 2, 8])
    cands = rng.integers(0, card, size=(300, 6))
    X = rng.integers(0, card, size=(30, 6))
    y = objective(scale(X, card))
    s = ProposeSettings(method=method, n_init=8, leaf_size=10, seed=1)
    a, info = propose(s, card, cands, X, y, X[:2], trial=30)
    b, _ = propose(s, card, cands, X, y, X[:2], trial=30)
    assert a == b and 0 <= a < len(cands)
    assert info["how"] == ("random" if method == "random" else method)

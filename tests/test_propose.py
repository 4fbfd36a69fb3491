"""LA-MCTS partitions, the BO pieces and the samplers, on real objectives."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nas import bo, lamcts
from nas.propose import (METHODS, BOSampler, LaMCTSSampler, Observations, RandomSampler, sampler_for,
                         scale, trial_rng)


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


@pytest.fixture(scope="module")
def peaked():
    """20 evaluated points, 200 candidates far from the optimum and the optimum (index 200)."""
    rng = np.random.default_rng(2)
    X = rng.random((20, 4))
    cands = np.vstack([rng.random((200, 4)) * 0.3, np.full((1, 4), 0.8)])
    return X, objective(X), cands


def test_bo_pieces_compose_like_botorch(peaked):
    import torch
    from botorch.optim import optimize_acqf_discrete

    X, y, cands = (torch.as_tensor(a, dtype=torch.float64) for a in peaked)
    acq = bo.acquisition(bo.fit_model(X, y), X, seed=0)
    i = bo.best_candidate(acq, cands)
    assert i == 200
    point, _ = optimize_acqf_discrete(acq, q=1, choices=cands)  # the index names BoTorch's choice
    assert torch.equal(point[0], cands[i])


def test_bo_pick_prefers_the_optimum_and_is_reproducible(peaked):
    X, y, cands = peaked
    none = np.zeros((0, 4))
    assert bo.pick(X, y, cands, none, np.random.default_rng(0)) == 200
    # With a running trial as X_pending the pick is still a valid, reproducible candidate.
    pending = np.full((1, 4), 0.75)
    j = bo.pick(X, y, cands, pending, np.random.default_rng(0))
    assert j == bo.pick(X, y, cands, pending, np.random.default_rng(0)) and 0 <= j < len(cands)
    # Over a subset the index still points into the full candidate set.
    k = bo.pick(X, y, cands, none, np.random.default_rng(1), max_candidates=50)
    assert k == bo.pick(X, y, cands, none, np.random.default_rng(1), max_candidates=50)
    assert 0 <= k < len(cands)


def test_bo_pick_filters_only_the_jitter_warning():
    # Encodings evaluated four times each, some of them running again: without the filter this
    # case warns "A not p.d., added jitter" twice.
    rng = np.random.default_rng(3)
    card = np.array([5, 4, 3, 6, 2, 8])
    X = np.repeat(scale(rng.integers(0, card, size=(5, 6)), card), 4, axis=0)
    cands = scale(rng.integers(0, card, size=(300, 6)), card)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        bo.pick(X, objective(X), cands, X[:3], np.random.default_rng(0))
        warnings.warn("still shown", UserWarning)
    assert not [w for w in seen if "jitter" in str(w.message)]
    assert [str(w.message) for w in seen if w.category is UserWarning] == ["still shown"]


def test_a_failed_fit_falls_back_to_random_inside_the_region(monkeypatch):
    from botorch.exceptions.errors import ModelFittingError

    def fail(X, y):
        raise ModelFittingError("All attempts to fit the model have failed.")

    monkeypatch.setattr(bo, "fit_model", fail)
    rng = np.random.default_rng(4)
    X, cands = rng.random((40, 5)), rng.random((100, 5))
    p = LaMCTSSampler(n_init=8, leaf_size=10).propose(Observations(X, objective(X)), cands,
                                                      np.zeros((0, 5)), trial_rng(0, 40))
    assert p.info["how"] == "random" and "ModelFittingError" in p.info["fallback"]
    region = lamcts.leaf_candidates(lamcts.select_path(lamcts.build_tree(X, objective(X), 10), 0.1), cands)
    assert p.index in region and p.info["region"] == len(region)


@pytest.mark.parametrize("method", METHODS)
def test_samplers_are_deterministic_and_valid(method):
    rng = np.random.default_rng(3)
    card = np.array([5, 4, 3, 6, 2, 8])
    cands = scale(rng.integers(0, card, size=(300, 6)), card)
    X = scale(rng.integers(0, card, size=(30, 6)), card)
    history = Observations(X, objective(X))
    sampler = sampler_for(method, n_init=8, leaf_size=10, seed=1)
    a = sampler.propose(history, cands, X[:2], trial_rng(1, 30))
    b = sampler.propose(history, cands, X[:2], trial_rng(1, 30))
    assert a == b and 0 <= a.index < len(cands)
    assert a.info["how"] == method and "fallback" not in a.info


@pytest.mark.parametrize("sampler", [BOSampler(n_init=8), LaMCTSSampler(n_init=8)])
def test_model_based_samplers_start_as_random_search(sampler):
    rng = np.random.default_rng(5)
    X, cands = rng.random((7, 3)), rng.random((50, 3))
    history, pending = Observations(X, objective(X)), np.zeros((0, 3))
    p = sampler.propose(history, cands, pending, trial_rng(0, 7))
    assert p == RandomSampler().propose(history, cands, pending, trial_rng(0, 7))
    assert p.info == {"how": "random"}


def test_sampler_for_takes_each_method_its_own_settings():
    assert METHODS[0] == "lamcts" and set(METHODS) == {"lamcts", "bo", "random"}
    assert sampler_for("random", n_init=3, leaf_size=4) == RandomSampler()
    assert sampler_for("bo", n_init=3, leaf_size=4) == BOSampler(n_init=3)
    assert sampler_for("lamcts", n_init=3, cp=0.5) == LaMCTSSampler(n_init=3, cp=0.5)
    with pytest.raises(ValueError, match="evolution"):
        sampler_for("evolution")
    with pytest.raises(TypeError, match="leafsize"):
        sampler_for("lamcts", leafsize=4)


def test_no_candidates_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="no candidates"):
        RandomSampler().propose(Observations(np.zeros((0, 2)), np.zeros(0)), np.zeros((0, 2)),
                                np.zeros((0, 2)), trial_rng(0, 0))
    with pytest.raises(ValueError, match=r"X \[n, d\]"):
        Observations(np.zeros((3, 2)), np.zeros(2))

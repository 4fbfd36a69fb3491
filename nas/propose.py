"""Samplers: which pool member to train next (optuna-style ask).

Every sampler chooses among the not-yet-used members of one latency group's pool, so latency is
a hard constraint and no continuous proposal needs rounding:
* ``random`` (RandomSampler): uniform;
* ``bo`` (BOSampler): BoTorch GP + qLogNEI over the whole group (nas.bo);
* ``lamcts`` (LaMCTSSampler): LA-MCTS picks a region of the group (nas.lamcts), BO picks inside.
The model-based samplers start with `n_init` random trials.

Samplers hold settings, never state: a proposal is a function of its arguments, the history
lives in the results log. The caller seeds `rng` per (search seed, trial id) with `trial_rng`,
so a resumed search proposes as the uninterrupted one would have. All encodings reach a sampler
scaled to [0, 1] per position (`scale`), the input space of the GP and the LA-MCTS partition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields

import numpy as np

from nas import bo, lamcts


def scale(X: np.ndarray, cardinalities: np.ndarray) -> np.ndarray:
    """Encoded vectors X [n, d] (position i in 0..cardinalities[i]-1) to [0, 1] per position."""
    return np.asarray(X, dtype=np.float64) / np.maximum(np.asarray(cardinalities) - 1, 1)


def trial_rng(seed: int, trial: int) -> np.random.Generator:
    """The generator a sampler gets for `trial` of the search seeded `seed`."""
    return np.random.default_rng([seed, trial])


@dataclass(frozen=True, eq=False)
class Observations:
    """Finished trials: X [n, d] encodings scaled to [0, 1], y [n] values, higher is better."""

    X: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        if self.X.ndim != 2 or self.y.shape != (len(self.X),):
            raise ValueError(f"X [n, d] and y [n] expected, got {self.X.shape} and {self.y.shape}")


@dataclass(frozen=True)
class Proposal:
    """`index` into the candidates; `info` says how it was chosen: {"how": method or "random",
    ...method details, "fallback": why BO was skipped, when it was}."""

    index: int
    info: dict


class Sampler(ABC):
    """A proposal method: settings in the constructor, no state between calls."""

    def propose(self, history: Observations, candidates: np.ndarray, pending: np.ndarray,
                rng: np.random.Generator) -> Proposal:
        """The next trial among candidates [m, d] (unused group members), given the finished
        trials and pending [p, d] (trials still running; p may be 0), all scaled to [0, 1].
        Every random draw comes from `rng` (see `trial_rng`)."""
        if len(candidates) == 0:
            raise ValueError("no candidates left")
        return self._propose(history, candidates, pending, rng)

    @abstractmethod
    def _propose(self, history: Observations, candidates: np.ndarray, pending: np.ndarray,
                 rng: np.random.Generator) -> Proposal:
        """`propose` with at least one candidate."""


def _uniform(subset: np.ndarray, rng: np.random.Generator, info: dict) -> Proposal:
    """A uniform pick among the candidates indexed by `subset`."""
    return Proposal(int(subset[rng.integers(len(subset))]), info)


@dataclass(frozen=True, kw_only=True)
class RandomSampler(Sampler):
    def _propose(self, history, candidates, pending, rng) -> Proposal:
        return _uniform(np.arange(len(candidates)), rng, {"how": "random"})


@dataclass(frozen=True, kw_only=True)
class BOSampler(Sampler):
    """Random for the first `n_init` trials, then BO (nas.bo) over the candidates."""

    n_init: int = 8
    max_candidates: int = bo.MAX_CANDIDATES

    def _propose(self, history, candidates, pending, rng) -> Proposal:
        # Random start: the same draw as RandomSampler's. A GP needs at least two points.
        if len(history.y) < max(self.n_init, 2):
            return _uniform(np.arange(len(candidates)), rng, {"how": "random"})
        subset, info = self._region(history, candidates)
        try:
            pick = bo.pick(history.X, history.y, candidates[subset], pending, rng, self.max_candidates)
        except bo.ModelFailure as err:  # one trial picked at random beats a crashed search
            return _uniform(subset, rng, info | {"how": "random", "fallback": str(err)})
        return Proposal(int(subset[pick]), info)

    def _region(self, history: Observations, candidates: np.ndarray) -> tuple[np.ndarray, dict]:
        """(indices of the candidates BO chooses among, info)."""
        return np.arange(len(candidates)), {"how": "bo"}


@dataclass(frozen=True, kw_only=True)
class LaMCTSSampler(BOSampler):
    """BOSampler restricted to the leaf region LA-MCTS selects (nas.lamcts)."""

    #: Samples a node may hold before it splits. LaNAS uses 20-100 over thousands of samples; a
    #: search of tens of trials needs smaller leaves for the tree to say anything.
    leaf_size: int = 10
    cp: float = 0.1  # UCB exploration weight
    #: k-means seed. Fixed rather than drawn from the trial's rng, so the partition is a function
    #: of the history alone.
    seed: int = 0

    def _region(self, history, candidates):
        tree = lamcts.build_tree(history.X, history.y, self.leaf_size, seed=self.seed)
        path = lamcts.select_path(tree, self.cp)
        subset = lamcts.leaf_candidates(path, candidates)
        return subset, {"how": "lamcts", "depth": len(path), "region": int(len(subset))}


SAMPLERS: dict[str, type[Sampler]] = {"lamcts": LaMCTSSampler, "bo": BOSampler, "random": RandomSampler}
#: The --method choices, the default first.
METHODS = tuple(SAMPLERS)


def sampler_for(method: str, **settings) -> Sampler:
    """The sampler of `method`, built from the `settings` its constructor takes.

    Settings of the other methods are ignored, so a caller may pass all it has (the CLI does); a
    setting no sampler takes is an error.
    """
    if method not in SAMPLERS:
        raise ValueError(f"unknown method {method!r}: use {', '.join(METHODS)}")
    unknown = set(settings) - {f.name for cls in SAMPLERS.values() for f in fields(cls)}
    if unknown:
        raise TypeError(f"no sampler takes {', '.join(sorted(unknown))}")
    own = {f.name for f in fields(SAMPLERS[method])}
    return SAMPLERS[method](**{k: v for k, v in settings.items() if k in own})

"""Bayesian optimisation over a finite candidate set, as BoTorch's three pieces.

* model: `fit_model`, a SingleTaskGP on inputs scaled to [0, 1] (outcomes standardised by the
  model's default transform);
* acquisition: `acquisition`, qLogNoisyExpectedImprovement with the trials still running as
  X_pending, so parallel proposals spread out;
* optimisation: `best_candidate`, the candidate of highest acquisition value, as an index.

`pick` composes them the way a sampler needs: seeded, over a random subset of at most
`max_candidates` candidates (search.md: a 10k pool costs 2-9 s per pick on a CPU), with only the
known-harmless numerical warnings filtered, and every failure of the GP raised as
`ModelFailure` so the caller can fall back.

torch, BoTorch and GPyTorch are imported inside the functions: they are heavy, and the random
sampler, the CLI's option checks and the tests of other modules need none of them.
"""

from __future__ import annotations

import warnings

import numpy as np

MAX_CANDIDATES = 2048
MC_SAMPLES = 128


class ModelFailure(Exception):
    """The GP could not be fitted, or its posterior not computed, on this history."""


def fit_model(X, y):
    """SingleTaskGP fitted by maximum marginal likelihood.

    X [n, d] float64 tensor in [0, 1], y [n] float64 tensor (higher is better). Raises BoTorch's
    ModelFittingError when every fit attempt fails.
    """
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from gpytorch.mlls import ExactMarginalLogLikelihood

    model = SingleTaskGP(X, y.unsqueeze(-1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model


def acquisition(model, X_baseline, pending=None, seed: int = 0):
    """qLogNoisyExpectedImprovement of `model` over the evaluated X_baseline [n, d].

    pending [p, d] (or None): trials still running, integrated over as X_pending. The Sobol QMC
    sampler is seeded so the same history gives the same acquisition values.
    """
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.sampling import SobolQMCNormalSampler

    return qLogNoisyExpectedImprovement(
        model, X_baseline=X_baseline, X_pending=pending,
        sampler=SobolQMCNormalSampler(torch.Size([MC_SAMPLES]), seed=seed))


def best_candidate(acq, candidates) -> int:
    """Index into candidates [m, d] (tensor) of the highest acquisition value.

    What optimize_acqf_discrete(acq, q=1, choices=candidates) picks (the first of equal maxima),
    returned as an index rather than as a point that would have to be matched back to its row.
    `candidates` is evaluated in one batch: `pick` bounds it to MAX_CANDIDATES rows, the
    batch size optimize_acqf_discrete uses.
    """
    import torch

    with torch.no_grad():
        values = acq(candidates.unsqueeze(-2))  # [m, 1, d] -> [m]: each candidate as a q=1 batch
    return int(torch.argmax(values))


def pick(X: np.ndarray, y: np.ndarray, candidates: np.ndarray, pending: np.ndarray,
         rng: np.random.Generator, max_candidates: int = MAX_CANDIDATES) -> int:
    """Index into `candidates` of the candidate of highest qLogNEI.

    X [n, d] evaluated inputs, y [n] values (higher is better), candidates [m, d], pending [p, d]
    (p may be 0); all inputs scaled to [0, 1]. `rng` seeds BoTorch and the subset of candidates;
    the caller's torch random state is left as it was. Raises ModelFailure when the GP cannot be
    fitted or evaluated.
    """
    import torch
    from botorch.exceptions.errors import ModelFittingError
    from linear_operator.utils.errors import NotPSDError
    from linear_operator.utils.warnings import NumericalWarning

    seed = int(rng.integers(2**31))
    subset = np.arange(len(candidates))
    if len(subset) > max_candidates:
        subset = np.sort(rng.choice(subset, max_candidates, replace=False))
    dt = torch.float64
    train_x = torch.as_tensor(X, dtype=dt)
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        # Encodings repeat (binary choices; a running trial next to finished ones), so the GP's
        # covariance is often singular to working precision: linear_operator then adds 1e-8 or
        # more jitter to the diagonal and warns every time. The jitter is the remedy, not a
        # problem; when it does not suffice, NotPSDError is raised and handled below.
        warnings.filterwarnings("ignore", r"A not p\.d\., added jitter", NumericalWarning)
        torch.manual_seed(seed)  # a failed fit attempt restarts from values sampled from priors
        try:
            model = fit_model(train_x, torch.as_tensor(y, dtype=dt))
            acq = acquisition(model, train_x, torch.as_tensor(pending, dtype=dt) if len(pending) else None,
                              seed=seed)
            return int(subset[best_candidate(acq, torch.as_tensor(candidates[subset], dtype=dt))])
        except (ModelFittingError, NotPSDError) as err:
            raise ModelFailure(f"{type(err).__name__}: {err}") from err

"""Bayesian optimisation over a finite candidate set with BoTorch.

Model, acquisition and optimiser are separate BoTorch pieces composed here: a SingleTaskGP on
inputs scaled to [0, 1] (outcomes standardised by the model), qLogNoisyExpectedImprovement with
the trials still running as X_pending (so parallel proposals spread out), and
optimize_acqf_discrete over the candidates. Candidate sets are subsampled to `max_candidates`
to bound the cost of a pick on a CPU (search.md: a 10k pool costs 2-9 s per pick).
"""

from __future__ import annotations

import warnings

import numpy as np

MAX_CANDIDATES = 2048
MC_SAMPLES = 128


def pick(X: np.ndarray, y: np.ndarray, candidates: np.ndarray, pending: np.ndarray | None = None,
         seed: int = 0, max_candidates: int = MAX_CANDIDATES) -> int:
    """Index (into `candidates`) of the candidate of highest qLogNEI.

    X [n, d] evaluated inputs, y [n] values (higher is better), candidates [m, d], pending [p, d];
    all inputs already scaled to [0, 1].
    """
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.optim import optimize_acqf_discrete
    from botorch.sampling import SobolQMCNormalSampler
    from gpytorch.mlls import ExactMarginalLogLikelihood

    rng = np.random.default_rng(seed)
    subset = np.arange(len(candidates))
    if len(subset) > max_candidates:
        subset = np.sort(rng.choice(subset, max_candidates, replace=False))
    torch.manual_seed(seed)
    dt = torch.float64
    train_x = torch.as_tensor(X, dtype=dt)
    train_y = torch.as_tensor(y, dtype=dt).unsqueeze(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # input-scaling and fit warnings on small data sets
        model = SingleTaskGP(train_x, train_y)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acq = qLogNoisyExpectedImprovement(
            model, X_baseline=train_x,
            X_pending=torch.as_tensor(pending, dtype=dt) if pending is not None and len(pending) else None,
            sampler=SobolQMCNormalSampler(torch.Size([MC_SAMPLES]), seed=seed),
        )
        choice, _ = optimize_acqf_discrete(acq, q=1, choices=torch.as_tensor(candidates[subset], dtype=dt))
    hit = np.nonzero(np.all(np.isclose(candidates[subset], choice.numpy()[0]), axis=1))[0]
    return int(subset[hit[0]])

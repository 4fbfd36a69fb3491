"""What a session measures and how its time is shared: the plan of the GPU session runner.

A lent GPU comes for a few minutes, so every step has a value rank and a time rule:

    step        what it adds                                               time rule
    smoke       machine, versions, a few keys and one network: the cost   cap
                per key and per network that sizes everything after it
    reference   keys of the reference networks (GPUNet-0/1/2) and grids   share of what is left
    validate    held-out Sobol networks at real resolution: their keys    all that is left after the
                network by network, then end to end; the reference         reserves of later steps
                networks end to end; calibration fitted and stored
    protocol    the reference networks' keys timed warm and cold too      cap
                (weights-cold on CUDA is the table's): e2e/sum of each,
                the evidence for the default protocol
    gpu-tests   pytest -m "gpu or timm": the CUDA-graph path on    cap
                the GPU, latbench's timm data against timm
    harness     latbench's harness beside its peers, a row per block      cap
    cudnn-*     cuDNN heuristics, then autotuning (each in its own       cap
                process), on a few keys and a network
    fresh       networks of another seed against the stored calibration   cap (kept for it only
                                                                          when a calibration is stored)
    more-keys   keys of more Sobol networks                               what is left

A step gets min(cap, time left - reserves of the steps after it); one that cannot get its floor is
skipped and says so. Steps stop themselves at their deadline (no key or network is started that
would end after it) and are killed a little later if they do not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: Seconds kept at the end for archiving and the summary.
END_SLACK_S = 8.0
#: Seconds a step may run past its deadline (finishing the key in hand) before it is killed.
GRACE_S = 20.0


@dataclass(frozen=True)
class StepRule:
    """Time rule of a step (seconds): at most `cap` (or `share` of the time left), at least
    `floor` or the step is skipped; `reserve` is kept for it while earlier steps run."""

    name: str
    cap: float | None = None
    share: float | None = None
    floor: float = 5.0
    reserve: float = 0.0


@dataclass(frozen=True)
class Plan:
    """A session's work, per mode (GPU or CPU rehearsal); see the module docstring."""

    mode: str
    device: str
    precision: str
    protocol: str | None
    quick: bool
    space: str
    reference: tuple[str, ...]
    grids: tuple[str, ...]
    smoke_keys: int
    validate_seed: int
    validate_max: int
    fresh_seed: int
    fresh_n: int
    more_seed: int
    more_networks: int
    harness_args: tuple[str, ...]
    cudnn_keys: int
    rules: tuple[StepRule, ...] = field(default_factory=tuple)

    def rule(self, name: str) -> StepRule:
        return next(r for r in self.rules if r.name == name)

    @property
    def steps(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rules)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        """Inverse of `as_dict` (JSON turns tuples into lists)."""
        tuples = {k: tuple(d[k]) for k in ("reference", "grids", "harness_args")}
        return cls(**{**d, **tuples, "rules": tuple(StepRule(**r) for r in d["rules"])})


GPU_RULES = (
    StepRule("smoke", cap=60, floor=20),
    StepRule("reference", share=0.35, floor=15),
    StepRule("validate", share=1.0, floor=30),
    StepRule("protocol", cap=60, floor=20, reserve=40),
    StepRule("gpu-tests", cap=70, floor=20, reserve=50),
    StepRule("harness", cap=70, floor=25, reserve=50),
    StepRule("cudnn-heuristics", cap=25, floor=15, reserve=20),
    StepRule("cudnn-autotuned", cap=30, floor=15, reserve=20),
    StepRule("fresh", cap=60, floor=25, reserve=40),
    StepRule("more-keys", share=1.0, floor=10),
)


def gpu_plan() -> Plan:
    """The plan for a lent NVIDIA GPU: fp16, batch 1, torch CUDA graphs, the GPUNet space."""
    return Plan(
        mode="gpu", device="cuda", precision="fp16", protocol=None, quick=False, space="gpunet",
        reference=("gpunet-0", "gpunet-1", "gpunet-2"), grids=("factor_grid",), smoke_keys=6,
        validate_seed=1, validate_max=160, fresh_seed=2, fresh_n=30, more_seed=0, more_networks=512,
        harness_args=("--blocks", "24", "--repeats", "5"), cudnn_keys=12, rules=GPU_RULES,
    )


REHEARSAL_RULES = (
    StepRule("smoke", cap=40, floor=5),
    StepRule("reference", share=0.3, floor=3),
    StepRule("validate", share=1.0, floor=8),
    StepRule("protocol", cap=12, floor=3),
    StepRule("gpu-tests", cap=30, floor=3, reserve=8),
    StepRule("harness", cap=30, floor=3, reserve=10),
    StepRule("cudnn-heuristics", cap=10, floor=1),
    StepRule("cudnn-autotuned", cap=10, floor=1),
    StepRule("fresh", cap=20, floor=4, reserve=6),
    StepRule("more-keys", share=1.0, floor=2),
)


def rehearsal_plan(space) -> Plan:
    """The same steps on this CPU with tiny sizes: the tiny space, the smoke grid, a handful of
    networks, quick timing. `space` is the loaded tiny space (its extreme networks are the
    reference networks)."""
    vectors = tuple(",".join(str(int(v)) for v in x) for x in (space.lower, space.upper))
    return Plan(
        mode="rehearsal", device="cpu", precision="fp32", protocol="warm", quick=True,
        space=space.name, reference=vectors, grids=("smoke_grid",), smoke_keys=3,
        validate_seed=1, validate_max=8, fresh_seed=2, fresh_n=6, more_seed=0, more_networks=4,
        harness_args=("--quick", "--blocks", "2", "--repeats", "2"), cudnn_keys=0,
        rules=REHEARSAL_RULES,
    )


def allot(rule: StepRule, left_s: float, later: list[StepRule]) -> float:
    """Seconds a step gets when `left_s` remain and `later` steps still want their reserves;
    0 means skip it."""
    avail = left_s - END_SLACK_S - sum(r.reserve for r in later)
    limit = rule.cap if rule.cap is not None else (rule.share or 1.0) * avail
    seconds = min(limit, avail)
    return seconds if seconds >= rule.floor else 0.0

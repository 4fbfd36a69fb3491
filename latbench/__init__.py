"""latbench: GPU latency tables and hardware-aware NAS after NVIDIA's GPUNet.

The root namespace is the public API and imports neither torch nor TensorRT:

    >>> import latbench
    >>> arch = latbench.load_arch("gpunet-1")            # file, bundled name or encoded vector
    >>> table = latbench.load_table("tables/....jsonl")  # rows + provenance (+ calibration)
    >>> latbench.Predictor(table).predict(arch).latency_ms
    >>> space = latbench.load_space("gpunet")            # search spaces, encoding, Sobol sampling
    >>> X = latbench.sample(space, 1024, seed=0)

Layers, each importing only those below it: errors/precision/resources -> blocks (block kinds,
keys, costs) -> arch, space -> builders, onnx_export -> harness -> backends -> table, provenance
-> predictor, calibration -> build, validate, session -> (nas: the search) -> plots -> cli.
"""

from latbench.arch import Arch, HeadSpec, StagedArch, StageSpec, TailSpec
from latbench.arch_io import arch_to_json, load_arch
from latbench.blocks import KINDS, BlockArgs, BlockSpec, parse_key
from latbench.errors import LatbenchError
from latbench.predictor import Prediction, Predictor
from latbench.space import SearchSpace, load_space, sample, sample_archs
from latbench.table import Table, load_table
from latbench.version import __version__

__all__ = [
    "KINDS", "Arch", "BlockArgs", "BlockSpec", "HeadSpec", "LatbenchError", "Prediction", "Predictor",
    "SearchSpace", "StageSpec", "StagedArch", "TailSpec", "Table", "arch_to_json", "load_arch",
    "load_space", "load_table", "parse_key", "sample", "sample_archs", "__version__",
]

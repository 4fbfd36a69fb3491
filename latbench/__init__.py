"""latbench: GPU latency tables and hardware-aware NAS after NVIDIA's GPUNet.

The root namespace is what the command line uses and imports neither torch nor TensorRT:

    >>> import latbench
    >>> arch = latbench.load_arch("gpunet-1")            # file, bundled name or encoded vector
    >>> table = latbench.load_table("tables/....jsonl")  # rows + provenance (+ calibration)
    >>> latbench.Predictor(table).predict(arch).latency_ms
"""

from latbench.arch import Arch, HeadSpec, StagedArch, StageSpec, TailSpec
from latbench.arch_io import arch_to_json, load_arch
from latbench.errors import LatbenchError
from latbench.predictor import Prediction, Predictor
from latbench.spec import BlockSpec, parse_key
from latbench.table import Table, load_table

__version__ = "0.1.0"

__all__ = [
    "Arch", "BlockSpec", "HeadSpec", "LatbenchError", "Prediction", "Predictor", "StageSpec",
    "StagedArch", "TailSpec", "Table", "arch_to_json", "load_arch", "load_table", "parse_key",
    "__version__",
]

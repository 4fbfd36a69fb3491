"""latbench: GPU latency tables and hardware-aware NAS after NVIDIA's GPUNet."""

from latbench.arch import Arch, HeadSpec, StagedArch, StageSpec, TailSpec
from latbench.arch_io import arch_to_json, load_arch
from latbench.errors import LatbenchError
from latbench.spec import BlockSpec

__version__ = "0.1.0"

__all__ = [
    "Arch", "BlockSpec", "HeadSpec", "LatbenchError", "StageSpec", "StagedArch", "TailSpec",
    "arch_to_json", "load_arch", "__version__",
]

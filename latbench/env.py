"""Facts about the machine and software, recorded as the provenance of every table.

Only the standard library is imported at module level: the predictor reads tables on machines
without torch. Functions that need torch import it themselves.
"""

from __future__ import annotations

import os
import platform
import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from latbench.nvml import driver_version
from latbench.version import __version__


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict:
    names = ("torch", "onnx", "onnxruntime", "onnx-graphsurgeon", "tensorrt", "numpy", "scipy",
             "pandas", "scikit-learn", "botorch", "ray", "nvidia-ml-py")
    out = {"latbench": __version__, "python": platform.python_version()}
    out |= {n: v for n in names if (v := package_version(n))}
    return out


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_cache_bytes() -> int:
    """Size of the largest CPU cache level (usually the shared L3), in bytes; 0 if unknown."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        m = re.fullmatch(r"(\d+)([KMG]?)", f.read_text().strip())
        if m:
            sizes.append(int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)])
    return max(sizes, default=0)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cuda_device_info(index: int = 0) -> dict | None:
    """Name, capability, memory, L2 size, driver and CUDA runtime of a visible GPU, or None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(index)
    info = {
        "kind": "cuda",
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_bytes": int(props.total_memory),
        "l2_bytes": int(getattr(props, "L2_cache_size", 0)),
        "sm_count": int(props.multi_processor_count),
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()),
    }
    info["driver"] = driver_version() or "unknown"
    return info


def cpu_device_info(threads: int) -> dict:
    return {
        "kind": "cpu",
        "name": cpu_name(),
        "machine": platform.machine(),
        "cpus": usable_cpus(),
        "threads": threads,
        "cache_bytes": cpu_cache_bytes(),
        "os": f"{platform.system()} {platform.release()}",
    }


def gpu_matches(requested: str, visible: str) -> bool:
    """True when the `--gpu` name (a100, h100, "rtx 4090") names the visible GPU."""
    norm = lambda s: re.sub(r"[^a-z0-9]", "", s.lower())  # noqa: E731
    return bool(norm(requested)) and norm(requested) in norm(visible)

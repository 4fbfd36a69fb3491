"""`latbench info`: devices, usable backends (and why the others are not), library versions."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from latbench.cli import app
from latbench.cli.output import console


@app.command("info")
def info():
    """What this machine offers latbench."""
    from latbench import backends, env

    out = console()
    cpu = env.cpu_device_info(env.usable_cpus())
    out.print(f"cpu: {cpu['name']} ({cpu['machine']}), {cpu['cpus']} usable cores, "
              f"largest cache {cpu['cache_bytes'] / 2**20:.0f} MiB, {cpu['os']}")
    gpu = env.cuda_device_info()
    if gpu:
        out.print(f"gpu: {gpu['name']} (sm {gpu['capability']}, {gpu['memory_bytes'] / 2**30:.0f} GiB, "
                  f"L2 {gpu['l2_bytes'] / 2**20:.0f} MiB), driver {gpu['driver']}, CUDA {gpu['cuda']}")
    else:
        out.print("gpu: none visible to torch (GPU tables and the TensorRT backend need an NVIDIA GPU)")
    table = Table(title="backends")
    for col in ("backend", "device", "usable"):
        table.add_column(col)
    for device in ("cuda", "cpu"):
        for name, reason in backends.availability(device).items():
            table.add_row(name, device, "yes" if reason is None else escape(f"no: {reason}"))
    out.print(table)
    versions = env.library_versions()
    out.print("libraries: " + ", ".join(f"{k} {v}" for k, v in versions.items()))

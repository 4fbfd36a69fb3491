"""`latbench info`: devices, usable backends (and why the others are not), library versions."""

from __future__ import annotations

from rich.table import Table

from latbench.cli import app
from latbench.cli.options import JsonOpt, emit_json
from latbench.console import console


@app.command("info")
def info(json_out: JsonOpt = False):
    """What this machine offers latbench."""
    from latbench import backends, env

    cpu = env.cpu_device_info(env.usable_cpus())
    gpu = env.cuda_device_info()
    usable = {device: backends.availability(device) for device in ("cuda", "cpu")}
    versions = env.library_versions()
    if json_out:
        emit_json({"cpu": cpu, "gpu": gpu, "backends": usable, "libraries": versions})
        return
    out = console()
    out.print(f"cpu: {cpu['name']} ({cpu['machine']}), {cpu['cpus']} usable cores, "
              f"largest cache {cpu['cache_bytes'] / 2**20:.0f} MiB, {cpu['os']}")
    if gpu:
        out.print(f"gpu: {gpu['name']} (sm {gpu['capability']}, {gpu['memory_bytes'] / 2**30:.0f} GiB, "
                  f"L2 {gpu['l2_bytes'] / 2**20:.0f} MiB), driver {gpu['driver']}, CUDA {gpu['cuda']}")
    else:
        out.print("gpu: none visible to torch (GPU tables and the TensorRT backend need an NVIDIA GPU)")
    table = Table(title="backends")
    for col in ("backend", "device", "usable"):
        table.add_column(col)
    for device, reasons in usable.items():
        for name, reason in reasons.items():
            table.add_row(name, device, "yes" if reason is None else f"no: {reason}")
    out.print(table)
    out.print("libraries: " + ", ".join(f"{k} {v}" for k, v in versions.items()))

"""A table's provenance: what was measured, where, and with what; and the backend that
measures for an existing table on this machine.

`table_meta` is the metadata record a new table starts with (device, backend identity,
precision, batch, cache protocol, harness settings, library versions, host); `backend_for_table`
rebuilds the table's backend here and refuses when this machine is not the table's device.
"""

from __future__ import annotations

import platform
import re

from latbench import backends, env
from latbench.backends.base import Backend, BackendConfig
from latbench.errors import LatbenchError
from latbench.harness import HarnessSettings
from latbench.table import UNRECORDED_PROTOCOL, Table, identity_diff


def device_info(config: BackendConfig, backend: Backend) -> dict:
    if config.device == "cuda":
        return env.cuda_device_info() | {"threads": None}
    return env.cpu_device_info(getattr(backend, "threads", None) or config.cpu_threads)


def table_meta(backend: Backend, settings: HarnessSettings) -> dict:
    """Provenance of a table measured by `backend` with `settings`."""
    cfg = backend.config
    return {
        "device": device_info(cfg, backend),
        "backend": backend.identity(),
        "precision": cfg.precision,
        "batch": cfg.batch,
        "protocol": cfg.protocol,
        "harness": settings.as_dict(),
        "latbench_version": env.library_versions()["latbench"],
        "libraries": env.library_versions(),
        "host": platform.node(),
    }


def default_table_name(meta: dict) -> str:
    """tables/<device>-<backend>-<precision>-b<batch>.jsonl, e.g. h200-torch-fp16-b1."""
    name = meta["device"]["name"] if meta["device"]["kind"] == "cuda" else "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower().replace("nvidia", "")).strip("-")
    return f"tables/{slug}-{meta['backend']['name']}-{meta['precision']}-b{meta['batch']}.jsonl"


def config_of(table: Table) -> BackendConfig:
    """The BackendConfig a table was measured with."""
    m = table.meta
    return BackendConfig(device=m["device"]["kind"], precision=m["precision"], batch=m["batch"],
                         threads=m["device"].get("threads"), protocol=m.get("protocol", UNRECORDED_PROTOCOL),
                         options=m["backend"].get("options") or {})


def backend_for_table(table: Table) -> Backend:
    """A backend configured exactly as the table was measured, on this machine.

    Refuses (LatbenchError naming both) when this machine is not the table's device.
    """
    m = table.meta
    be = backends.create(m["backend"]["name"], config_of(table))
    here = table_meta(be, HarnessSettings.from_dict(m["harness"]))
    diff = [d for d in identity_diff(m, here) if not d.startswith("harness")]
    if diff:
        raise LatbenchError(f"{table.path}: measured on another device or software ({'; '.join(diff)}); "
                            "validate and --missing measure run on the table's own device")
    be.attach_table(table.path)
    return be


def on_table_device(table: Table) -> bool:
    """Whether this machine is the table's device (so missing blocks can be measured here)."""
    try:
        backend_for_table(table)
    except LatbenchError:
        return False
    return True

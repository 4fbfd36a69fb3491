"""Table builds spread over a Ray cluster: one measuring worker per GPU (or per CPU slot).

The driver keeps the table: workers only measure and send rows back, and the driver appends them
as they arrive, so the table stays one crash-safe log and a re-run resumes as usual. Before any
work, every worker reports its device and software; they must agree on every identity field of a
table (same GPU model, driver, CUDA, backend version, ...), else the build is refused.
Work is handed out one key at a time (two in flight per worker), so fast and slow keys balance.
A worker that dies is restarted by Ray and its key re-run.
"""

from __future__ import annotations

import socket

from latbench import backends, env
from latbench.backends.base import BackendConfig
from latbench.build import BuildSummary, pending_specs, record
from latbench.errors import LatbenchError
from latbench.harness import HarnessSettings
from latbench.progress import Progress
from latbench.provenance import table_meta
from latbench.rows import failed_row, measure_row, monitor_for
from latbench.table import TableWriter, identity_diff

IN_FLIGHT = 2


def _ray():
    try:
        import ray
    except ImportError:
        raise LatbenchError("--ray needs ray: pip install latbench[ray]") from None
    return ray


class _Worker:
    """Body of the Ray actor: one backend, measuring the keys it is sent."""

    def __init__(self, name: str, config: BackendConfig, settings: HarnessSettings):
        self.backend = backends.create(name, config)
        self.settings = settings
        self.monitor = monitor_for(config)

    def meta(self) -> dict:
        return table_meta(self.backend, self.settings)

    def measure(self, spec) -> dict:
        return measure_row(self.backend, spec, self.settings, self.monitor)


def connect(address: str, num_cpus: int | None = None):
    """ray.init for `--ray auto` (a running cluster if RAY_ADDRESS names one, else a local
    instance) or `--ray ADDRESS`."""
    ray = _ray()
    if not ray.is_initialized():
        kw = {"include_dashboard": False, "log_to_driver": False}
        if address == "auto":
            ray.init(num_cpus=num_cpus, **kw)
        else:
            check_reachable(address)
            ray.init(address=address, **kw)
    return ray


#: Seconds to wait for a cluster's head before giving up (Ray itself retries for minutes).
CONNECT_TIMEOUT_S = 10.0


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """LatbenchError unless `address` (HOST:PORT, optionally ray://HOST:PORT) accepts a TCP
    connection within `timeout` seconds."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LatbenchError(f"--ray {address}: give auto or a cluster address HOST:PORT (e.g. 10.0.0.1:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise LatbenchError(f"--ray {address}: cannot reach the Ray cluster ({err.strerror or err}); start it "
                            "with `ray start --head` or give its address") from None


def _resolve_here(backend: str, device: str | None) -> tuple[str, str, str]:
    return backends.resolve(backend, device)


def resolve_on_cluster(ray, backend: str, device: str | None) -> tuple[str, str, str]:
    """`backends.resolve` run on a worker, where the blocks will be measured: the driver may have
    no GPU (or no TensorRT) while the workers do. (name, device, why)."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    want_gpu = device != "cpu" and gpus > 0
    task = ray.remote(num_gpus=1 if want_gpu else 0, num_cpus=0 if want_gpu else 1)(_resolve_here)
    name, dev, why = ray.get(task.remote(backend, device if device else ("cuda" if want_gpu else "cpu")))
    return name, dev, f"{why} (on a Ray worker)"


def check_same(metas: list[dict]) -> dict:
    """The common metadata of all workers; LatbenchError naming the first disagreement."""
    for i, m in enumerate(metas[1:], start=1):
        diff = identity_diff(metas[0], m)
        if diff:
            raise LatbenchError(f"Ray worker {i} differs from worker 0 ({'; '.join(diff)}): "
                                "all workers must have the same GPU model and software")
    return metas[0]


def build_table_ray(specs, out, backend_name: str, config: BackendConfig, settings: HarnessSettings,
                    *, address: str = "auto", workers: int | None = None, retry_failed: bool = False,
                    progress: bool = True, gpu: str | None = None) -> BuildSummary:
    """Measure the missing specs on Ray workers and append their rows to the table at `out`.

    `gpu` (a100, h100, ...) must name the workers' GPU, as `--gpu` must name the local one."""
    ray = connect(address)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if config.device == "cuda":
        if gpus < 1:
            raise LatbenchError("--ray with --device cuda: the Ray cluster has no GPUs")
        n, resources = workers or gpus, {"num_gpus": 1}
    else:
        threads = config.threads or 1
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n, resources = workers or max(1, cpus // threads), {"num_cpus": threads}
        config = BackendConfig(**{**config.as_dict(), "threads": threads})
    actor = ray.remote(max_restarts=2, max_task_retries=2, **resources)(_Worker)
    pool = [actor.remote(backend_name, config, settings) for _ in range(n)]
    try:
        meta = check_same(ray.get([w.meta.remote() for w in pool]))
        if gpu and not env.gpu_matches(gpu, meta["device"]["name"]):
            raise LatbenchError(f"--gpu {gpu} does not match the Ray workers' device ({meta['device']['name']}); "
                                "run on that GPU or drop --gpu")
        writer = TableWriter(out, {k: v for k, v in meta.items() if k not in ("type", "format")})
        todo = pending_specs(specs, writer, retry_failed)
        summary = BuildSummary(total=len(specs), skipped=len(specs) - len(todo))
        queue, running = list(reversed(todo)), {}
        with Progress(len(todo), f"measuring on {n} Ray workers", enabled=progress,
                      status="failed 0") as bar:
            def submit(w):
                spec = queue.pop()
                running[w.measure.remote(spec)] = (w, spec)

            for w in pool * IN_FLIGHT:
                if queue:
                    submit(w)
            while running:
                (done,), _ = ray.wait(list(running), num_returns=1)
                w, spec = running.pop(done)
                try:
                    row = ray.get(done)
                except ray.exceptions.RayError as err:  # the worker died more often than retried
                    row = failed_row(spec, f"Ray worker lost: {type(err).__name__}")
                record(writer, row, summary)
                bar.advance(status=f"failed {summary.failed}")
                if queue:
                    submit(w)
        return summary
    finally:
        for w in pool:
            ray.kill(w)

"""The Celery rows of bench/serve.py (`--celery`): the same loads through `winnow serve --broker`.

A redis-server on a free port of 127.0.0.1 (no persistence, temp dir), `winnow deploy RUN --name bench`,
two `winnow worker` processes (each with `--worker-torch-threads` OMP/MKL threads, so they do not
oversubscribe the cores) and the HTTP front, started as the README and tests/test_serve_celery.py do.
Every process is stopped on the way out, errors and Ctrl-C included.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import redis

from winnow.serve.registry import ModelRegistry, connect
from winnow.serve.server import free_port

from serve import (Answer, OfflineRate, batching_flags, load_beside, log_tail, malformed_phase, saturation_row,
                   start_http, stop, swap_every_2s, swap_row)

NAME = "bench"
HOSTS = ("w1@bench", "w2@bench")  # w1 is the one killed


def celery_rows(runs: list[Path], images: list[bytes], offline: OfflineRate, versions: set[str], scratch: Path,
                args) -> None:
    """Rows 6-9 of bench/serve.py through 2 workers behind the front, on `runs[0]` (and `runs[1]` for swaps)."""
    with ExitStack() as stack:
        url, registry, workers = start_cluster(stack, runs[0], scratch, args)
        saturation_row(url, images, offline, args, what="Celery front, 2 workers")
        malformed_phase(url, images, args)
        swap_row(url, images, versions, swap_every_2s(runs, deploy_with(registry)), args,
                 what="Celery: `winnow deploy` every 2 s under load")
        kill_row(url, images, registry, workers[HOSTS[0]], args)


def start_cluster(stack: ExitStack, run: Path, scratch: Path, args) -> tuple[str, ModelRegistry, dict]:
    """Redis, `winnow deploy run`, the workers once they serve it, the front (all stopped by `stack`).

    Returns:
        The front's URL, the deployment's registry and the worker processes by hostname.
    """
    broker = start_redis(stack, scratch / "redis", args)
    registry = ModelRegistry(connect(broker), NAME)
    # a subprocess: the CLI's logging set-up would make httpx log every request of this process
    subprocess.run([sys.executable, "-m", "winnow.cli.main", "deploy", str(run), "--broker", broker, "--name", NAME],
                   check=True)
    workers = start_workers(stack, broker, scratch, args)
    wait_for_workers(registry, workers, scratch)
    front_timeout = 2 * args.visibility_timeout + 30  # a redelivered request must not time out at the front
    resend = args.visibility_timeout + 2 * args.restore_interval  # a task lost by the killed worker is sent again
    process, url = start_http(["--broker", broker, "--name", NAME, "--request-timeout", str(front_timeout),
                               "--resend-after", str(resend), "--task-images", str(args.task_images)], args,
                              log=scratch / "front.log")
    stack.callback(stop, process)
    print(f"Celery: redis-server {broker}, front {url} (--request-timeout {front_timeout:g} s, --task-images "
          f"{args.task_images}, --resend-after {resend:g} s), 2 workers "
          f"(--threads {args.worker_threads}, {args.worker_torch_threads} torch thread(s) each, --max-batch-size "
          f"{args.batch_size}, --max-wait-ms {args.max_wait_ms:g}, --task-timeout {args.visibility_timeout / 2:g} s, "
          f"--visibility-timeout {args.visibility_timeout:g} s, --restore-interval {args.restore_interval:g} s)")
    return url, registry, workers


def start_redis(stack: ExitStack, folder: Path, args) -> str:
    """A redis-server on a free port, no persistence, stopped by `stack`; its URL once it answers PING."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen([args.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    stack.callback(stop, process)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{args.redis_server} did not answer on port {port} in 10 s")


def start_workers(stack: ExitStack, broker: str, logs: Path, args) -> dict[str, subprocess.Popen]:
    """The two `winnow worker` processes (each stopped by `stack`), logging to `logs/HOST.log`."""
    threads = str(args.worker_torch_threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    options = ["--broker", broker, "--name", NAME, "--device", args.device, "--threads", str(args.worker_threads),
               "--task-timeout", str(args.visibility_timeout / 2), "--visibility-timeout", str(args.visibility_timeout),
               "--restore-interval", str(args.restore_interval), *batching_flags(args)]
    workers = {}
    for host in HOSTS:
        with open(logs / f"{host}.log", "w") as stderr:  # the child keeps its own copy of the file
            workers[host] = subprocess.Popen([sys.executable, "-m", "winnow.cli.main", "worker", "--hostname", host,
                                              *options], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        stack.callback(stop, workers[host])
    return workers


def wait_for_workers(registry: ModelRegistry, workers: dict[str, subprocess.Popen], logs: Path) -> None:
    """Until both workers report the live version (model loaded); RuntimeError with a worker's log otherwise."""
    live = registry.live().version
    deadline = time.monotonic() + 120
    while sum(v == live for v in registry.workers().values()) < len(workers):
        dead = [host for host, process in workers.items() if process.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = "exited" if dead else "not within 120 s"
            raise RuntimeError(f"workers {dead or list(workers)} did not load version {live} ({why})"
                               + log_tail(logs / f"{(dead or list(workers))[0]}.log"))
        time.sleep(0.1)


def deploy_with(registry: ModelRegistry):
    """A swap for `swap_every_2s`: what `winnow deploy RUN` does (`ModelRegistry.publish`)."""
    async def deploy(client: httpx.AsyncClient, run: Path) -> None:
        registry.publish(run)  # a few Redis commands: fine on the event loop
    return deploy


def kill_row(url: str, images: list[bytes], registry: ModelRegistry, victim: subprocess.Popen, args) -> None:
    """kill -9 `victim` a third into `--kill-seconds` of closed-loop load; what became of every request."""
    async def killer(client: httpx.AsyncClient, deadline: float) -> tuple[float, int]:
        await asyncio.sleep(args.kill_seconds / 3)
        unacked = registry.client.hlen("unacked")  # kombu's hash of delivered, unacknowledged tasks (both workers)
        victim.send_signal(signal.SIGKILL)
        return time.perf_counter(), unacked

    results, (killed, unacked) = asyncio.run(load_beside(url, images, args.kill_seconds, args.concurrency, killer))
    victim.wait(10)
    print(f"Celery: kill -9 {HOSTS[0]} {args.kill_seconds / 3:.1f} s into {args.kill_seconds:g} s of load "
          f"({unacked} unacknowledged tasks in Redis just before; visibility timeout {args.visibility_timeout:g} s, "
          f"restore interval {args.restore_interval:g} s): {kill_summary(results, killed, args.visibility_timeout)}")


def kill_summary(results: list[Answer], killed: float, visibility: float) -> str:
    """Sent vs answered, failures, and the latencies of the requests in flight at `killed` (perf_counter)."""
    at_kill = [r.started < killed < r.started + r.seconds for r in results]
    in_flight = [r for r, flying in zip(results, at_kill) if flying]
    answered = [r for r in in_flight if r.status == 200]
    typical = statistics.median([r.seconds for r, flying in zip(results, at_kill) if not flying] or [float("nan")])
    longest = max((r.seconds for r in answered), default=float("nan"))
    last = max((r.started + r.seconds - killed for r in answered), default=float("nan"))
    return (f"{len(results)} requests sent, {sum(r.status == 200 for r in results)} answered 200, "
            f"{failures(results, killed)}; in flight at the kill {len(in_flight)} ({len(answered)} answered 200), of "
            f"which {sum(r.seconds >= visibility for r in answered)} took >= the visibility timeout (redelivered); "
            f"the longest {longest:.2f} s vs median {typical:.2f} s of the others: redelivery delay "
            f"{longest - typical:.2f} s; the last answered {last:.2f} s after the kill")


def failures(results: list[Answer], killed: float, shown: int = 5) -> str:
    """How many failed, by status and reason, and when the first `shown` were sent relative to the kill."""
    failed = [r for r in results if r.status != 200]
    reasons = Counter(f"{r.status} {r.body.get('error')}" for r in failed)
    sent = ", ".join(f"{r.started - killed:+.2f} s" for r in failed[:shown])
    return f"failed {len(failed)} {dict(reasons)}" + (f" (sent at {sent} from the kill)" if failed else "")

"""Serving: offline `predict` throughput vs `winnow serve` over HTTP, latency, malformed requests, swaps.

In one run, on a trained run folder and its images:
1. offline: `winnow.load(RUN).predict(files)` images/s (batched, decode included);
2. served at saturation: one-image requests through HTTP to a `winnow serve` subprocess from each client
   count of `--saturation-clients` (saturation: the best of them); then `--pairs` times offline and, right
   after it, served at that count: the medians of the served images/s and of the ratios (target >= 0.9);
3. latency at half the saturation rate (open loop): p50 / p99 (target p99 <= 2x p50);
4. `--requests` requests with 1% malformed (truncated, not an image, empty, oversized body, pixel bomb):
   valid ones that failed (target 0) and malformed ones not answered with a 4xx (target 0);
5. a swap every 2 s between RUN and a copy of it with other weights, under load: failed requests (target 0)
   and responses whose version is not one of the two.

With `--celery`, then the same through Celery (bench/serve_celery.py): a redis-server, `winnow deploy`, two
`winnow worker` processes and the `winnow serve --broker` front, on the same RUN and images:
6. saturation throughput through the front and its ratio to offline;
7. the malformed requests of 4 through the front;
8. a `winnow deploy` every 2 s, alternating RUN and the copy, under load: failed requests, versions named;
9. kill -9 of one worker under load: requests sent vs answered, failures, and the redelivery delay of the
   requests it held (longest latency of the requests in flight at the kill vs the median).

    .venv/bin/python bench/serve.py RUN [--images N] [--requests 10000] [--device cpu] [--celery]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable, NamedTuple

import httpx
import numpy as np
import torch
from PIL import Image

import winnow
from winnow.data.splits import load_splits
from winnow.runs.layout import RunPaths
from winnow.serve.model import ServedModel, weights_version
from winnow.serve.server import free_port
from winnow.training.checkpoint import load_checkpoint

from lean_http import lean_closed_loop  # noqa: E402  (bench/, on the path as the script's folder)

TOKEN = "bench-token"
MAX_BODY = 1_000_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder from `winnow train`")
    parser.add_argument("--images", type=int, default=64, help="distinct test images loaded in memory")
    parser.add_argument("--requests", type=int, default=1000, help="requests of the malformed phase (issue: 10000)")
    parser.add_argument("--saturation-requests", type=int, default=600, help="requests of the saturation phase")
    parser.add_argument("--concurrency", type=int, default=32, help="clients in flight in the malformed, swap and "
                        "kill phases")
    parser.add_argument("--saturation-clients", type=int, nargs="+", default=[32, 64, 128],
                        help="client counts tried at saturation; the best is the served figure")
    parser.add_argument("--pairs", type=int, default=3, help="(offline, served) pairs behind the ratio")
    parser.add_argument("--batch-size", type=int, default=32, help="offline batch size and --max-batch-size")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--swap-seconds", type=float, default=10.0, help="duration of the swap phase")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-instances", default="auto", help="`winnow serve --model-instances` (N or auto)")
    parser.add_argument("--decode-in-batch", action="store_true", help="`winnow serve --decode-in-batch`")
    celery = parser.add_argument_group("Celery rows (bench/serve_celery.py)")
    celery.add_argument("--celery", action="store_true", help="then the same through redis + 2 `winnow worker`s")
    celery.add_argument("--worker-threads", type=int, default=8, help="`winnow worker --threads` (batch bound)")
    celery.add_argument("--task-images", type=int, default=8, help="the front's `--task-images` (images per task)")
    celery.add_argument("--worker-torch-threads", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="OMP/MKL threads of each worker (default: half the cores, so 2 do not oversubscribe)")
    celery.add_argument("--visibility-timeout", type=float, default=10.0,
                        help="workers' redelivery timeout, seconds (their --task-timeout is half of it)")
    celery.add_argument("--restore-interval", type=float, default=0.5, help="workers' --restore-interval, seconds")
    celery.add_argument("--kill-seconds", type=float, default=15.0, help="load of the kill phase (kill at 1/3)")
    celery.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    return parser.parse_args(argv)


def test_images(run: Path, count: int) -> list[Path]:
    """Paths of up to `count` test-split images of the run."""
    splits = load_splits(RunPaths(run).splits)
    test = [Path(p) for p, split in zip(splits.paths, splits.splits) if split == "test"]
    paths = test or list(map(Path, splits.paths))
    return paths[:count]


def malformed_bodies(good: bytes) -> list[tuple[str, bytes]]:
    bomb = io.BytesIO()
    Image.new("L", (12_000, 12_000)).save(bomb, format="PNG")  # 144 Mpx in a few hundred kB
    return [("truncated", good[: len(good) // 3]), ("not_an_image", b"GIF89a? no, plain text"), ("empty", b""),
            ("oversized", os.urandom(MAX_BODY + 1)), ("bomb", bomb.getvalue())]


def other_weights_copy(run: Path, out: Path) -> Path:
    """A copy of `run` whose best checkpoint has slightly scaled weights: a second version to swap to."""
    copy = Path(shutil.copytree(run, out / f"{run.name}-b", ignore=shutil.ignore_patterns("tensorboard", "exports")))
    path = RunPaths(copy).checkpoint("best")
    state = load_checkpoint(path)
    for key in ("model", "eval_weights"):
        if state.get(key):
            state[key] = {k: v * 1.01 if v.is_floating_point() else v for k, v in state[key].items()}
    torch.save(state, path)
    return copy


class OfflineRate:
    """Images/s of `predict` over `total` distinct files (copies of `images`: predict skips repeated paths).

    Set up once (files written, model loaded and warmed up); each call times one `predict` over the files, so
    that the served figure can be paired with an offline figure taken just before it (this VM's speed drifts
    by 10-30% over minutes, which a single offline figure at the start passed on to the ratio).
    """

    def __init__(self, run: Path, images: list[bytes], total: int, scratch: Path, args) -> None:
        self.predictor, self.batch_size = winnow.load(run, device=args.device), args.batch_size
        self.files = []
        for i in range(total):
            self.files.append(scratch / f"offline{i:05d}.img")
            self.files[-1].write_bytes(images[i % len(images)])
        self.predictor.predict(self.files[: args.batch_size], batch_size=args.batch_size)  # warm-up

    def __call__(self) -> float:
        start = time.perf_counter()
        self.predictor.predict(self.files, batch_size=self.batch_size)
        return len(self.files) / (time.perf_counter() - start)


def model_only_rate(run: Path, total: int, args) -> float:
    """Images/s of `ServedModel.score` on batches already decoded in memory: the ceiling of serving."""
    model = ServedModel.load(run, device=args.device)
    batch = torch.zeros((args.batch_size, *model.input_shape))
    model.score(batch)
    start = time.perf_counter()
    for _ in range(max(1, total // args.batch_size)):
        model.score(batch)
    return max(1, total // args.batch_size) * args.batch_size / (time.perf_counter() - start)


def batching_flags(args) -> list[str]:
    """The batching of the embedded server, also that of the Celery workers."""
    return ["--max-batch-size", str(args.batch_size), "--max-wait-ms", str(args.max_wait_ms)]


def limit_flags(args) -> list[str]:
    """The batching and limits shared by the embedded server and the Celery front."""
    return [*batching_flags(args), "--max-body-bytes", str(MAX_BODY), "--max-queue", "100000"]


def start_http(options: list[str], args, *, log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """A `winnow serve` subprocess with `options` on a free port, once /readyz answers 200; and its URL."""
    port = free_port()
    command = [sys.executable, "-m", "winnow.cli.main", "serve", *options, "--port", str(port), *limit_flags(args)]
    with open(log or os.devnull, "w") as stderr:  # the child keeps its own copy of the file
        process = subprocess.Popen(command, env={**os.environ, "WINNOW_ADMIN_TOKEN": TOKEN},
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"`{' '.join(command)}` did not become ready in 60 s" + (log_tail(log) if log else ""))


def log_tail(log: Path, chars: int = 3000) -> str:
    """The end of a subprocess's log, for an error message (the scratch folder holding it is removed)."""
    return f"; the end of {log.name}:\n{log.read_text(errors='replace')[-chars:]}"


def stop(process: subprocess.Popen) -> None:
    """Terminate `process` (a kill after 30 s); nothing when it has already exited."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Answer(NamedTuple):
    """One request: HTTP status (0: no answer), JSON body, seconds taken, perf_counter() when sent."""

    status: int
    body: dict
    seconds: float
    started: float


async def post(client: httpx.AsyncClient, body: bytes) -> Answer:
    start = time.perf_counter()
    try:
        response = await client.post("/v1/predict", files={"files": ("image", body)})
    except httpx.HTTPError as failure:  # counted as failed (status 0), not a crash of the whole phase
        return Answer(0, {"error": type(failure).__name__}, time.perf_counter() - start, start)
    seconds = time.perf_counter() - start
    try:
        return Answer(response.status_code, response.json(), seconds, start)
    except ValueError:  # not JSON (a proxy's or uvicorn's plain-text 500): keep the status
        return Answer(response.status_code, {"error": response.text[:200]}, seconds, start)


async def closed_loop(url: str, bodies: list[bytes], concurrency: int) -> tuple[list[Answer], float]:
    """Send every body with `concurrency` requests in flight; the results in order and the seconds taken."""
    results: list = [None] * len(bodies)
    next_index = iter(range(len(bodies)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def worker():
            for i in next_index:
                results[i] = await post(client, bodies[i])
        start = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
    return results, time.perf_counter() - start


async def open_loop(url: str, bodies: list[bytes], rate: float) -> list[float]:
    """Latencies of requests started at `rate` per second, whatever the answers' pace."""
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=1000)) as client:
        start = time.perf_counter()

        async def one(i: int) -> float:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            return (await post(client, bodies[i])).seconds
        return list(await asyncio.gather(*[one(i) for i in range(len(bodies))]))


Side = Callable[[httpx.AsyncClient, float], Awaitable]


async def load_beside(url: str, bodies: list[bytes], seconds: float, concurrency: int, side: Side) -> tuple:
    """Closed-loop load for `seconds` while `side(client, deadline)` runs; every answer and what `side` returned.

    Requests in flight at the deadline are awaited, however long they take.
    """
    deadline, results = time.monotonic() + seconds, []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def worker(k: int):
            while time.monotonic() < deadline:
                results.append(await post(client, bodies[k % len(bodies)]))
                k += concurrency
        done = await asyncio.gather(side(client, deadline), *[worker(k) for k in range(concurrency)])
    return results, done[0]


Swap = Callable[[httpx.AsyncClient, Path], Awaitable[None]]


def swap_every_2s(runs: list[Path], swap: Swap) -> Side:
    """A `load_beside` side that makes runs[1], runs[0], runs[1]... live every 2 s; it returns the swaps done."""
    async def swapper(client: httpx.AsyncClient, deadline: float) -> int:
        swaps = 0
        while time.monotonic() + 2 < deadline:
            await asyncio.sleep(2)
            await swap(client, runs[(swaps + 1) % 2])
            swaps += 1
        return swaps
    return swapper


async def admin_swap(client: httpx.AsyncClient, run: Path) -> None:
    """Swap the embedded server's model (`POST /admin/model`)."""
    response = await client.post("/admin/model", json={"run": str(run)},
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=None)
    response.raise_for_status()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = test_images(args.run, args.images)
    images = [p.read_bytes() for p in paths]
    with tempfile.TemporaryDirectory() as scratch:
        offline = OfflineRate(args.run, images, args.saturation_requests, Path(scratch), args)
        print(f"offline predict: {offline():.1f} img/s")
        print(f"model only (score() on decoded batches of {args.batch_size}): "
              f"{model_only_rate(args.run, args.saturation_requests, args):.1f} img/s")
        runs = [args.run, other_weights_copy(args.run, Path(scratch))]
        versions = {weights_version(RunPaths(r).checkpoint("best")) for r in runs}
        process, url = start_http([str(args.run), "--device", args.device, "--model-instances",
                                   str(args.model_instances), *(["--decode-in-batch"] if args.decode_in_batch else [])],
                                  args)
        try:
            report(url, images, offline, versions, runs, args)
        finally:
            stop(process)
        if args.celery:
            from serve_celery import celery_rows  # this folder is on sys.path when run as bench/serve.py
            celery_rows(runs, images, offline, versions, Path(scratch), args)
    return 0


def report(url: str, images: list[bytes], offline: OfflineRate, versions: set[str], runs: list[Path], args) -> None:
    served = saturation_row(url, images, offline, args, what="served (HTTP)")
    count = min(args.saturation_requests, max(50, args.saturation_requests // 2))
    bodies = [images[i % len(images)] for i in range(count)]
    latencies = asyncio.run(open_loop(url, bodies, served / 2))
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    print(f"at half saturation ({served / 2:.1f} req/s): p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"p99/p50 {p99 / p50:.2f} (target <= 2)")
    malformed_phase(url, images, args)
    swap_row(url, images, versions, swap_every_2s(runs, admin_swap), args, what="swap every 2 s under load")


def saturation_row(url: str, images: list[bytes], offline: OfflineRate, args, *, what: str) -> float:
    """Images/s at saturation and its ratio to offline `predict`, measured in pairs.

    Saturation is the most that `--saturation-requests` one-image requests reach over the client counts of
    `--saturation-clients` (more clients than a batch holds keep every model instance fed), with the lean
    client (`lean_http`); at the best count also with httpx. Then `--pairs` times an offline `predict`
    and, right after it, the served rate at that count: the served figure and the ratio are the medians
    of those pairs. Each client's own CPU milliseconds per request are printed: it takes them from the
    server's cores here.
    """
    bodies = [images[i % len(images)] for i in range(args.saturation_requests)]
    rates = {}
    for clients in args.saturation_clients:
        asyncio.run(closed_loop(url, bodies[: clients * 2], clients))  # warm-up
        cpu = time.process_time()
        statuses, seconds = asyncio.run(lean_closed_loop(url, bodies, clients))
        lean_cpu = (time.process_time() - cpu) * 1000 / len(bodies)
        rates[clients] = len(bodies) / seconds
        print(f"  {what}, {clients} clients: {rates[clients]:.1f} img/s (lean client, {lean_cpu:.2f} CPU ms per "
              f"request), failed {sum(s != 200 for s in statuses)}")
    clients = max(rates, key=rates.get)
    cpu = time.process_time()
    results, httpx_seconds = asyncio.run(closed_loop(url, bodies, clients))
    httpx_cpu = (time.process_time() - cpu) * 1000 / len(bodies)
    with_httpx = len(bodies) / httpx_seconds
    print(f"  with the httpx client at {clients} clients: {with_httpx:.1f} img/s ({httpx_cpu:.2f} CPU ms per "
          f"request), failed {sum(r.status != 200 for r in results)}")
    pairs = [paired_rates(url, bodies, offline, clients) for _ in range(args.pairs)]
    for i, (offline_rate, served_rate) in enumerate(pairs, start=1):
        print(f"  pair {i}: offline predict {offline_rate:.1f} img/s, {what} {served_rate:.1f} img/s, "
              f"ratio {served_rate / offline_rate:.2f}")
    ratios = [served_rate / offline_rate for offline_rate, served_rate in pairs]
    served = statistics.median(served_rate for _, served_rate in pairs)
    print(f"{what} at saturation ({clients} clients): {served:.1f} img/s; ratio to offline predict, median of "
          f"{len(pairs)} pairs {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}; "
          f"target >= 0.9)")
    return served


def paired_rates(url: str, bodies: list[bytes], offline: OfflineRate, clients: int) -> tuple[float, float]:
    """(offline img/s, served img/s at `clients` lean clients), the second measured right after the first."""
    offline_rate = offline()
    statuses, seconds = asyncio.run(lean_closed_loop(url, bodies, clients))
    if any(status != 200 for status in statuses):
        raise SystemExit(f"{sum(s != 200 for s in statuses)} requests failed at saturation; see the server log")
    return offline_rate, len(bodies) / seconds


def swap_row(url: str, images: list[bytes], versions: set[str], swapper: Side, args, *, what: str) -> None:
    """Closed-loop load for `--swap-seconds` beside `swapper`: failures and answers naming one of `versions`."""
    results, swaps = asyncio.run(load_beside(url, images, args.swap_seconds, args.concurrency, swapper))
    named = sum(r.status == 200 and all(p["version"] in versions for p in r.body["predictions"]) for r in results)
    print(f"{what}: {swaps} swaps, {len(results)} requests, failed {sum(r.status != 200 for r in results)}, "
          f"responses naming one of the two versions {named}/{len(results)}")


def malformed_phase(url: str, images: list[bytes], args) -> None:
    bad = malformed_bodies(images[0])
    kinds = ["good" if i % 100 else bad[(i // 100) % len(bad)][0] for i in range(args.requests)]
    by_kind = dict(bad)
    bodies = [images[i % len(images)] if kind == "good" else by_kind[kind] for i, kind in enumerate(kinds)]
    results, _ = asyncio.run(closed_loop(url, bodies, args.concurrency))
    failed_valid = sum(kind == "good" and r.status != 200 for kind, r in zip(kinds, results))
    statuses = {}
    for kind, r in zip(kinds, results):
        if kind != "good":
            statuses.setdefault(kind, set()).add(r.status)
    not_4xx = sum(kind != "good" and not 400 <= r.status < 500 for kind, r in zip(kinds, results))
    print(f"{args.requests} requests, {sum(k != 'good' for k in kinds)} malformed: failed valid {failed_valid}, "
          f"malformed not 4xx {not_4xx}; statuses {dict(sorted((k, sorted(v)) for k, v in statuses.items()))}")


if __name__ == "__main__":
    sys.exit(main())

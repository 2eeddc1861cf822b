"""Serving: offline `predict` throughput vs `winnow serve` over HTTP, latency, malformed requests, swaps.

In one run, on a trained run folder and its images:
1. offline: `winnow.load(RUN).predict(files)` images/s (batched, decode included);
2. served at saturation: one-image requests from `--concurrency` clients through HTTP to a `winnow serve`
   subprocess; images/s and the ratio to offline (target >= 0.9);
3. latency at half the saturation rate (open loop): p50 / p99 (target p99 <= 2x p50);
4. `--requests` requests with 1% malformed (truncated, not an image, empty, oversized body, pixel bomb):
   valid ones that failed (target 0) and malformed ones not answered with a 4xx (target 0);
5. a swap every 2 s between RUN and a copy of it with other weights, under load: failed requests (target 0)
   and responses whose version is not one of the two.

    .venv/bin/python bench/serve.py RUN [--images DIR] [--requests 10000] [--device cpu]
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

TOKEN = "bench-token"
MAX_BODY = 1_000_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder from `winnow train`")
    parser.add_argument("--images", type=int, default=64, help="distinct test images loaded in memory")
    parser.add_argument("--requests", type=int, default=1000, help="requests of the malformed phase (issue: 10000)")
    parser.add_argument("--saturation-requests", type=int, default=600, help="requests of the saturation phase")
    parser.add_argument("--concurrency", type=int, default=32, help="clients in flight at saturation")
    parser.add_argument("--batch-size", type=int, default=32, help="offline batch size and --max-batch-size")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--swap-seconds", type=float, default=10.0, help="duration of the swap phase")
    parser.add_argument("--device", default="cpu")
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


def offline_rate(run: Path, images: list[bytes], total: int, scratch: Path, args) -> float:
    """Images/s of `predict` over `total` distinct files (copies of `images`: predict skips repeated paths)."""
    predictor = winnow.load(run, device=args.device)
    files = []
    for i in range(total):
        files.append(scratch / f"offline{i:05d}.img")
        files[-1].write_bytes(images[i % len(images)])
    predictor.predict(files[: args.batch_size], batch_size=args.batch_size)  # warm-up
    start = time.perf_counter()
    predictor.predict(files, batch_size=args.batch_size)
    return total / (time.perf_counter() - start)


def model_only_rate(run: Path, total: int, args) -> float:
    """Images/s of `ServedModel.score` on batches already decoded in memory: the ceiling of serving."""
    model = ServedModel.load(run, device=args.device)
    batch = torch.zeros((args.batch_size, *model.input_shape))
    model.score(batch)
    start = time.perf_counter()
    for _ in range(max(1, total // args.batch_size)):
        model.score(batch)
    return max(1, total // args.batch_size) * args.batch_size / (time.perf_counter() - start)


def start_server(run: Path, args) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "winnow.cli.main", "serve", str(run), "--port", str(port), "--device", args.device,
               "--max-batch-size", str(args.batch_size), "--max-wait-ms", str(args.max_wait_ms),
               "--max-body-bytes", str(MAX_BODY), "--max-queue", "100000"]
    process = subprocess.Popen(command, env={**os.environ, "WINNOW_ADMIN_TOKEN": TOKEN},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not become ready in 60 s")


async def post(client: httpx.AsyncClient, body: bytes) -> tuple[int, dict, float]:
    start = time.perf_counter()
    response = await client.post("/v1/predict", files={"files": ("image", body)})
    return response.status_code, response.json(), time.perf_counter() - start


async def closed_loop(url: str, bodies: list[bytes], concurrency: int) -> tuple[list[tuple[int, dict, float]], float]:
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
            return (await post(client, bodies[i]))[2]
        return list(await asyncio.gather(*[one(i) for i in range(len(bodies))]))


async def under_swaps(url: str, bodies: list[bytes], runs: list[Path], args) -> tuple[list, int]:
    """Closed-loop load for `--swap-seconds` while the model is swapped every 2 s; results and swaps done."""
    deadline, results = time.monotonic() + args.swap_seconds, []
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def worker(k: int):
            while time.monotonic() < deadline:
                results.append(await post(client, bodies[k % len(bodies)]))
                k += args.concurrency

        async def swapper() -> int:
            swaps = 0
            while time.monotonic() + 2 < deadline:
                await asyncio.sleep(2)
                response = await client.post("/admin/model", json={"run": str(runs[(swaps + 1) % 2])},
                                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=None)
                response.raise_for_status()
                swaps += 1
            return swaps
        done = await asyncio.gather(swapper(), *[worker(k) for k in range(args.concurrency)])
    return results, done[0]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = test_images(args.run, args.images)
    images = [p.read_bytes() for p in paths]
    with tempfile.TemporaryDirectory() as scratch:
        offline = offline_rate(args.run, images, args.saturation_requests, Path(scratch), args)
        print(f"model only (score() on decoded batches of {args.batch_size}): "
              f"{model_only_rate(args.run, args.saturation_requests, args):.1f} img/s")
        second = other_weights_copy(args.run, Path(scratch))
        versions = {weights_version(RunPaths(r).checkpoint("best")) for r in (args.run, second)}
        process, url = start_server(args.run, args)
        try:
            report(url, images, offline, versions, [args.run, second], args)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return 0


def report(url: str, images: list[bytes], offline: float, versions: set[str], runs: list[Path], args) -> None:
    bodies = [images[i % len(images)] for i in range(args.saturation_requests)]
    asyncio.run(closed_loop(url, bodies[: args.concurrency * 2], args.concurrency))  # warm-up
    results, seconds = asyncio.run(closed_loop(url, bodies, args.concurrency))
    served = len(bodies) / seconds
    print(f"offline predict: {offline:.1f} img/s; served (HTTP, {args.concurrency} clients): {served:.1f} img/s; "
          f"ratio {served / offline:.2f} (target >= 0.9); failed {sum(r[0] != 200 for r in results)}")
    latencies = asyncio.run(open_loop(url, bodies[: max(50, len(bodies) // 2)], served / 2))
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    print(f"at half saturation ({served / 2:.1f} req/s): p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"p99/p50 {p99 / p50:.2f} (target <= 2)")
    malformed_phase(url, images, args)
    results, swaps = asyncio.run(under_swaps(url, images, runs, args))
    named = sum(r[0] == 200 and all(p["version"] in versions for p in r[1]["predictions"]) for r in results)
    print(f"swap every 2 s under load: {swaps} swaps, {len(results)} requests, failed "
          f"{sum(r[0] != 200 for r in results)}, responses naming one of the two versions {named}/{len(results)}")


def malformed_phase(url: str, images: list[bytes], args) -> None:
    bad = malformed_bodies(images[0])
    kinds = ["good" if i % 100 else bad[(i // 100) % len(bad)][0] for i in range(args.requests)]
    by_kind = dict(bad)
    bodies = [images[i % len(images)] if kind == "good" else by_kind[kind] for i, kind in enumerate(kinds)]
    results, _ = asyncio.run(closed_loop(url, bodies, args.concurrency))
    failed_valid = sum(kind == "good" and r[0] != 200 for kind, r in zip(kinds, results))
    statuses = {}
    for kind, r in zip(kinds, results):
        if kind != "good":
            statuses.setdefault(kind, set()).add(r[0])
    not_4xx = sum(kind != "good" and not 400 <= r[0] < 500 for kind, r in zip(kinds, results))
    print(f"{args.requests} requests, {sum(k != 'good' for k in kinds)} malformed: failed valid {failed_valid}, "
          f"malformed not 4xx {not_4xx}; statuses {dict(sorted((k, sorted(v)) for k, v in statuses.items()))}")


if __name__ == "__main__":
    sys.exit(main())

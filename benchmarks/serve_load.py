"""Load test of ``aigiqa serve`` on loopback: micro-batched vs unbatched, 1/8/32 clients.

Starts the server in a subprocess (its own GIL), then for each concurrency runs that many httpx
async clients, each sending a bounded number of single-image multipart requests (64x64 PNG), and
prints throughput and p50/p99 latency plus the mean batch size the server formed. Modes:
batched (max_batch, waits up to max_wait_ms for a batch to fill), greedy (max_batch, no wait:
takes whatever queued while the previous batch ran) and unbatched (max_batch 1).

Metrics: ``bench-probe`` (defined here, a stand-in for a neural model: the image pooled to
32x32x3, a 3072x4096 float32 linear layer, ReLU, a readout; vectorised over the batch, so one
call for 32 images costs far less than 32 calls), and ``sharpness`` (shipped; a per-image loop,
so batching can only save per-call overhead). The server runs BLAS on one thread.

    python benchmarks/serve_load.py [--metrics bench-probe,sharpness] [--requests 16]
        [--clients 1,8,32] [--max-batch 32] [--max-wait-ms 5] [--time-limit 300]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import time
from typing import ClassVar

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import register_metric
from aigiqa.testing.servers import free_port


@register_metric
class BenchProbe(Metric):
    """Synthetic vectorised 'model': pooled pixels -> linear 3072x4096 -> ReLU -> readout."""

    name: ClassVar[str] = "bench-probe"
    kind: ClassVar[str] = "learned"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        rng = np.random.default_rng(0)
        self.weight = rng.standard_normal((32 * 32 * 3, 4096), dtype=np.float32) / 55.0
        self.readout = rng.standard_normal(4096, dtype=np.float32)

    def score(self, images, prompts=None):
        pooled = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR))
                           for im in images]).reshape(len(images), -1).astype(np.float32) / 255
        hidden = np.maximum(pooled @ self.weight, 0.0)
        return (hidden @ self.readout).astype(np.float64)


def batcher_only(metric: str, max_batch: int, max_wait_ms: float, callers: int,
                 per_caller: int) -> float:
    """Images/s through MicroBatcher alone (no HTTP): ``callers`` loops awaiting one image each."""
    from concurrent.futures import ThreadPoolExecutor

    from aigiqa.metrics.registry import metric_from_spec
    from aigiqa.serve.batching import MicroBatcher

    images = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)
              for i in range(16)]

    async def main() -> float:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(metric_from_spec(metric), max_batch=max_batch,
                                   max_wait_ms=max_wait_ms, executor=pool)

            async def caller(index: int) -> None:
                for k in range(per_caller):
                    await batcher.submit(images[(index + k) % len(images)])

            started = time.perf_counter()
            await asyncio.gather(*(caller(i) for i in range(callers)))
            elapsed = time.perf_counter() - started
            await batcher.close()
            return callers * per_caller / elapsed

    with threadpool_limits(1):  # like the server subprocess: BLAS on one thread
        return asyncio.run(main())


def run_server(port: int, metric: str, max_batch: int, max_wait_ms: float) -> None:
    """Server side (in the subprocess): serve the one metric until terminated."""
    import uvicorn

    from aigiqa.serve import ServeConfig, create_app

    config = ServeConfig(metrics=(metric,), max_batch=max_batch, max_wait_ms=max_wait_ms,
                         score_threads=1, max_images=4)
    uvicorn.run(create_app(config), host="127.0.0.1", port=port, log_level="warning")


def png_bytes(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


async def load(url: str, metric: str, clients: int, requests: int) -> dict[str, float]:
    """``clients`` concurrent callers, ``requests`` each; throughput and latency percentiles."""
    import httpx

    images = [png_bytes(i) for i in range(16)]
    latencies: list[float] = []

    async def caller(client: httpx.AsyncClient, index: int) -> None:
        for k in range(requests):
            files = [("files", ("x.png", images[(index + k) % len(images)]))]
            started = time.perf_counter()
            response = await client.post("/v1/score", files=files, data={"metrics": metric})
            latencies.append(time.perf_counter() - started)
            body = response.json()
            if response.status_code != 200 or metric not in body["results"][0]["scores"]:
                raise RuntimeError(f"bad answer {response.status_code}: {response.text[:200]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(client.get("/healthz") for _ in range(clients)))  # connect
        before = (await client.get("/v1/stats")).json()["batching"][metric]
        started = time.perf_counter()
        await asyncio.gather(*(caller(client, i) for i in range(clients)))
        wall = time.perf_counter() - started
        after = (await client.get("/v1/stats")).json()["batching"][metric]
    batches = after["batches"] - before["batches"]
    ms = np.array(latencies) * 1000
    return {"n": len(latencies), "rps": len(latencies) / wall, "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)),
            "batch": (after["items"] - before["items"]) / batches if batches else float("nan")}


def wait_ready(url: str, process: subprocess.Popen, limit_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def bench_setting(metric: str, max_batch: int, max_wait_ms: float, clients: list[int],
                  requests: int) -> list[dict]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, __file__, "--_serve", str(port), "--metrics", metric,
         "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        asyncio.run(load(url, metric, 4, 4))  # warm-up
        return [{"clients": n, **asyncio.run(load(url, metric, n, requests))} for n in clients]
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--metrics", default="bench-probe,sharpness")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--requests", type=int, default=16, help="requests per client")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--time-limit", type=float, default=300, help="stop after (s)")
    parser.add_argument("--_serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._serve is not None:
        run_server(args._serve, args.metrics, args.max_batch, args.max_wait_ms)
        return
    clients = [int(c) for c in args.clients.split(",")]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          f"{args.requests} requests per client, 1 image (64x64 PNG) per request")
    stop_at = time.monotonic() + args.time_limit
    print("batcher only, no HTTP (images/s, 1 scoring thread):")
    for metric in args.metrics.split(","):
        for n in clients:
            rates = {mb: batcher_only(metric, mb, args.max_wait_ms if mb > 1 else 0, n,
                                      args.requests) for mb in (args.max_batch, 1)}
            print(f"  {metric:<12} {n:>3} callers: batched {rates[args.max_batch]:8.1f}   "
                  f"unbatched {rates[1]:8.1f}   x{rates[args.max_batch] / rates[1]:.2f}")
    print("\nover HTTP:")
    print(f"{'metric':<12}{'mode':<22}{'clients':>8}{'requests':>9}{'req/s':>9}"
          f"{'p50 ms':>9}{'p99 ms':>9}{'batch':>7}")
    for metric in args.metrics.split(","):
        settings = [(f"batched {args.max_batch}/{args.max_wait_ms:g}ms", args.max_batch,
                     args.max_wait_ms), (f"greedy {args.max_batch}/0ms", args.max_batch, 0.0),
                    ("unbatched (batch 1)", 1, 0.0)]
        for mode, max_batch, wait in settings:
            if time.monotonic() > stop_at:
                print(f"time limit of {args.time_limit:g} s reached; stopping")
                return
            for row in bench_setting(metric, max_batch, wait, clients, args.requests):
                print(f"{metric:<12}{mode:<22}{row['clients']:>8}{row['n']:>9}{row['rps']:>9.1f}"
                      f"{row['p50']:>9.1f}{row['p99']:>9.1f}{row['batch']:>7.1f}", flush=True)


if __name__ == "__main__":
    main()

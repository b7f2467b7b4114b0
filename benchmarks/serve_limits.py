"""Peak memory of ``aigiqa serve`` under hostile requests; fails if over the budget.

For each case a fresh server subprocess (``aigiqa serve --port 0`` on 127.0.0.1, default limits,
the case's metrics) is started, warmed up with one small request, and its idle RSS taken; its
peak RSS (VmHWM of /proc/<pid>/status, reset after the warm-up) is then read after the case's
requests. Cases:

- ``issue-1`` / ``issue-2``: one / two 9400x9400 PNGs (a flat colour, ~280 KB each) in one
  request, scored by ``entropy`` (the issue's 3.8 GB / 5.3 GB).
- ``worst-large``: ``--clients`` concurrent requests, each with as many images of the largest
  square the per-image limit allows as the per-request pixel limit allows (8 of 2896x2896 with
  the defaults), scored by NIQE, BRISQUE and PIQE (the heaviest classical metrics; needs the LIVE
  parameter files: ``AIGIQA_HOME=../shared``).
- ``worst-many``: the same clients, each with ``max_images`` images that fill the request's
  pixel limit (64 of 1024x1024), same metrics.
- ``cheap-large``: ``worst-large``'s requests scored by entropy, sharpness and contrast.

The request shapes follow the default limits of the code under test (``aigiqa.serve.config``;
code without a per-request pixel limit, from before issue 11, is given 64 Mpx per request);
``--max-pixels``/``--max-request-pixels`` send other shapes, e.g. today's worst requests to older
code. The server always runs with its defaults. A watchdog kills a server whose RSS passes
``--rss-cap-mb``. Talks only to 127.0.0.1.

    AIGIQA_HOME=../shared python benchmarks/serve_limits.py [--cases issue-1,worst-large]
        [--clients 3] [--budget-mb 1500] [--rss-cap-mb 8000] [--time-limit 900]
        [--max-pixels N] [--max-request-pixels N]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import numpy as np
from PIL import Image

HEAVY = "niqe,brisque,piqe"
CHEAP = "entropy,sharpness,contrast"
MB = 1_000_000


def limits(**overrides: int | None) -> dict[str, int]:
    """Per-image and per-request pixel limits and images per request of the code under test."""
    from aigiqa.serve import config

    defaults = config.ServeConfig()
    found = {"max_pixels": defaults.max_pixels, "max_images": defaults.max_images,
             "max_request_pixels": getattr(defaults, "max_request_pixels", 0) or 1 << 26}
    return {**found, **{k: v for k, v in overrides.items() if v}}


def status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


@dataclass
class Server:
    """``aigiqa serve`` in a subprocess; port read from uvicorn's start-up line."""

    metrics: str
    process: subprocess.Popen = field(init=False)
    port: int | None = None
    log: list[str] = field(default_factory=list)
    killed_at_mb: float | None = None

    def start(self, limit_s: float = 120) -> None:
        code = "import sys; from aigiqa.cli import app; sys.argv[0] = 'aigiqa'; app()"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--host", "127.0.0.1", "--port", "0",
             "--metrics", self.metrics, "--timeout", "900"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + limit_s
        while self.port is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start:\n" + "\n".join(self.log[-20:]))
            time.sleep(0.05)

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log = [*self.log[-50:], line.rstrip()]
            found = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))

    def watch(self, cap_mb: float, stop: threading.Event) -> None:
        """Kill the server if its RSS passes cap_mb (protects the machine)."""
        while not stop.wait(0.02):
            try:
                rss = status_kb(self.process.pid, "VmRSS") * 1024 / MB
            except (OSError, KeyError):
                return
            if rss > cap_mb:
                self.killed_at_mb = rss
                self.process.send_signal(signal.SIGKILL)
                return

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def flat_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (90, 120, 150)).save(buf, "PNG")
    return buf.getvalue()


def textured_png(side: int, seed: int) -> bytes:
    """Random texture that PNG compresses well (each row repeats a 64-pixel random tile row)."""
    rng = np.random.default_rng(seed)
    tile = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rows = tile[(np.arange(side) + rng.integers(0, 64, side)) % 64]
    pixels = np.tile(rows, (1, -(-side // 64), 1))[:, :side]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, "PNG")
    return buf.getvalue()


def cases(clients: int, lim: dict[str, int]) -> dict[str, tuple[str, list[list[bytes]]]]:
    """Case name -> (served metrics, one list of images per concurrent request)."""
    large = math.isqrt(lim["max_pixels"])
    n_large = max(1, lim["max_request_pixels"] // (large * large))
    many = math.isqrt(lim["max_request_pixels"] // lim["max_images"])
    big = flat_png(9400)
    large_images = [textured_png(large, i) for i in range(n_large)]
    many_images = [textured_png(many, i) for i in range(lim["max_images"])]
    return {
        "issue-1": ("entropy", [[big]]),
        "issue-2": ("entropy", [[big, big]]),
        f"worst-large ({clients}x{n_large}x{large}^2)": (HEAVY, [large_images] * clients),
        f"worst-many ({clients}x{lim['max_images']}x{many}^2)": (HEAVY, [many_images] * clients),
        f"cheap-large ({clients}x{n_large}x{large}^2)": (CHEAP, [large_images] * clients),
    }


def post(url: str, images: list[bytes], metrics: str) -> str:
    """One scoring request; its status and how many images were scored/refused."""
    files = [("files", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    try:
        response = httpx.post(f"{url}/v1/score", files=files, data={"metrics": metrics},
                              timeout=900)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    if response.status_code != 200:
        return f"{response.status_code}"
    results = response.json()["results"]
    refused = sum(1 for r in results if r["error"])
    return f"200 ({len(results) - refused} scored, {refused} refused)" if refused else "200"


def run_case(name: str, metrics: str, requests: list[list[bytes]], cap_mb: float) -> dict:
    server = Server(metrics)
    server.start()
    stop = threading.Event()
    try:
        warm = textured_png(192, 99)
        if post(server.url, [warm], metrics) != "200":
            raise RuntimeError(f"warm-up request failed: {server.log[-5:]}")
        time.sleep(0.5)
        pid = server.process.pid
        idle = status_kb(pid, "VmRSS") * 1024 / MB
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current RSS
        watchdog = threading.Thread(target=server.watch, args=(cap_mb, stop), daemon=True)
        watchdog.start()
        started = time.monotonic()
        with ThreadPoolExecutor(len(requests)) as pool:
            statuses = list(pool.map(lambda imgs: post(server.url, imgs, metrics), requests))
        wall = time.monotonic() - started
        if server.killed_at_mb is not None:
            return {"case": name, "status": f"killed at {server.killed_at_mb:.0f} MB RSS",
                    "idle": idle, "peak": server.killed_at_mb - idle, "wall": wall}
        peak = status_kb(pid, "VmHWM") * 1024 / MB - idle
    finally:
        stop.set()
        server.stop()
    shown = sorted(set(statuses))
    return {"case": name, "status": ", ".join(f"{s} x{statuses.count(s)}" for s in shown),
            "idle": idle, "peak": peak, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="", help="comma-separated name prefixes; default all")
    parser.add_argument("--clients", type=int, default=3, help="concurrent worst-case requests")
    parser.add_argument("--budget-mb", type=float, default=1500, help="peak RSS over idle")
    parser.add_argument("--rss-cap-mb", type=float, default=8000, help="kill the server above")
    parser.add_argument("--time-limit", type=float, default=900, help="skip cases after (s)")
    parser.add_argument("--max-pixels", type=int, default=None, help="shape requests for this")
    parser.add_argument("--max-request-pixels", type=int, default=None,
                        help="shape requests for this")
    args = parser.parse_args()
    lim = limits(max_pixels=args.max_pixels, max_request_pixels=args.max_request_pixels)
    stop_at = time.monotonic() + args.time_limit
    wanted = [c for c in args.cases.split(",") if c]
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; requests shaped for {lim}; "
          f"budget {args.budget_mb:g} MB over idle (MB = 10^6 bytes)")
    print(f"{'case':<34}{'status':<34}{'idle MB':>9}{'peak-idle MB':>14}{'wall s':>8}")
    over = False
    for name, (metrics, requests) in cases(args.clients, lim).items():
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        if time.monotonic() > stop_at:
            print(f"time limit of {args.time_limit:g} s reached; skipping {name}")
            continue
        row = run_case(name, metrics, requests, args.rss_cap_mb)
        flag = row["peak"] > args.budget_mb
        over = over or flag
        print(f"{row['case']:<34}{row['status']:<34}{row['idle']:>9.0f}{row['peak']:>14.0f}"
              f"{row['wall']:>8.1f}{'  OVER BUDGET' if flag else ''}", flush=True)
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()

"""Load test of the study web app: simulated raters on PostgreSQL and on SQLite, loopback only.

For each backend it makes a store (a throwaway PostgreSQL 15 cluster from aigiqa.store.pgtemp,
durable settings; or a SQLite file), a small demo database and one study per load mode with
``--raters`` subjects, starts a real uvicorn server (``--workers`` processes) on 127.0.0.1 at a
free port, and lets every subject rate concurrently (asyncio + httpx), as the page does: load the
page (CSRF token), read the state, then per trial fetch the image, think, post the rating (a
``--double-submit`` share of the posts is sent twice at once with the same submission id, as a
double click would). Each rater stops after ``--ratings`` ratings or at ``--time-limit`` seconds.

Modes: ``paced`` (think time uniform in [0.5, 1.5] × ``--think`` s, raters arriving spread over
the first think time; the latency goal applies here) and ``saturation`` (no think time, all at
once: the server's capacity; latency is then mostly queueing).

After each run the server is killed with SIGKILL and the store is read back: every acknowledged
rating must be there with its value and submission id (lost = 0), no trial or submission id twice
(duplicated = 0), and a subject's ratings must fill positions 0..k-1 without a gap. Prints one
table; exits 1 if anything was lost or duplicated or a request failed (with ``--strict-goal``
also if the PostgreSQL paced p99 missed ``--goal-ms``). Bounded: at most ``--time-limit`` s of
load per run (in-flight requests then finish), plus set-up; the cluster and files are removed.
Columns: ``2x`` double submits sent, ``retry`` requests resent after a broken connection,
``lag p99`` the client's own event-loop delay (high: the client is short of CPU too).

    .venv/bin/python benchmarks/study_load.py [--raters 210] [--ratings 15] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Environment variable the uvicorn factory reads the store URL from.
STORE_ENV = "AIGIQA_LOAD_STORE"
CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def app_from_env():
    """uvicorn factory (``--factory study_load:app_from_env``): the app on $AIGIQA_LOAD_STORE."""
    from aigiqa.study.app import create_app

    return create_app(os.environ[STORE_ENV])


@dataclass
class RaterLog:
    """What one simulated rater saw: latencies (s), acknowledged ratings, errors."""

    label: str
    post_s: list[float] = field(default_factory=list)
    image_s: list[float] = field(default_factory=list)
    acked: dict[int, tuple[str, float]] = field(default_factory=dict)  # trial → (sub id, value)
    errors: list[str] = field(default_factory=list)
    double_submits: int = 0
    retries: int = 0


@dataclass
class RunResult:
    backend: str
    mode: str
    raters: int
    wall_s: float
    logs: list[RaterLog]
    lost: int = 0
    duplicated: int = 0
    gaps: int = 0
    unacknowledged: int = 0
    lag_p99_ms: float = float("nan")  # client event-loop lag: high = the client is CPU-bound

    @property
    def n_acked(self) -> int:
        return sum(len(log.acked) for log in self.logs)

    @property
    def errors(self) -> list[str]:
        return [e for log in self.logs for e in log.errors]

    def percentiles(self, attr: str) -> tuple[float, float, float]:
        values = np.array([v for log in self.logs for v in getattr(log, attr)])
        if values.size == 0:
            return (float("nan"),) * 3
        p50, p99 = np.percentile(values, [50, 99]) * 1000
        return float(p50), float(p99), float(values.max() * 1000)


def run(coro):
    """Run a coroutine on uvloop when installed (less client CPU), else on asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# The server ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A uvicorn server process group on 127.0.0.1 serving the study app on ``store_url``."""

    def __init__(self, store_url: str, workers: int, log_path: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in kill()
        env = {**os.environ, STORE_ENV: store_url, "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "study_load:app_from_env", "--factory",
             "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers), "--log-level", "warning",
             "--no-access-log", "--timeout-graceful-shutdown", "5",
             "--timeout-keep-alive", "75"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.log_path = log_path

    async def wait_ready(self, workers: int, timeout_s: float = 60.0) -> None:
        """Wait until /healthz has answered 4 × ``workers`` times (the workers are up)."""
        import httpx

        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base, timeout=2.0) as client:
            ok = 0
            while ok < 4 * workers:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"uvicorn exited ({self.proc.returncode}):\n"
                                       f"{self.log_path.read_text(errors='replace')[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn not ready in {timeout_s} s")
                try:
                    ok += (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    await asyncio.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the whole process group (supervisor and workers): no graceful shutdown."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(30)
        self.log.close()


# The raters ---------------------------------------------------------------------------------------
class Gate:
    """The start line: raters report ready after loading their page, then start together and
    stop starting new trials at ``deadline``."""

    def __init__(self, n: int, time_limit_s: float):
        self.n, self.time_limit_s = n, time_limit_s
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.deadline = float("inf")
        self.t0 = 0.0

    async def arrive(self) -> None:
        self.ready += 1
        if self.ready == self.n:
            self.t0 = time.monotonic()
            self.deadline = self.t0 + self.time_limit_s
            self.all_ready.set()
        await self.all_ready.wait()


async def send(client, log: RaterLog, method: str, url: str, **kwargs):
    """One request, sent again once if the connection broke (a kept-alive connection closed by
    the server at the moment of reuse); a rating post is safe to resend: same submission id."""
    import httpx

    try:
        return await client.request(method, url, **kwargs)
    except httpx.TransportError:
        log.retries += 1
        return await client.request(method, url, **kwargs)


async def rate(client, label: str, token: str, n_ratings: int, think_s: float,
               double_share: float, gate: Gate, rng: random.Random,
               scale: tuple[float, float, float]) -> RaterLog:
    """One rater: page, state, then (image, think, post) until n ratings or the deadline."""
    log = RaterLog(label)
    try:
        try:
            page = await send(client, log, "GET", f"/s/{token}")
        finally:
            await gate.arrive()
        match = CSRF_RE.search(page.text) if page.status_code == 200 else None
        if match is None:
            log.errors.append(f"page {page.status_code}: no CSRF token")
            return log
        headers = {"X-CSRF-Token": match.group(1)}
        state = (await send(client, log, "GET", f"/api/s/{token}/state")).json()
        await _rate_trials(client, log, token, headers, state, n_ratings, think_s,
                           double_share, gate, rng, scale)
    except Exception as exc:  # noqa: BLE001 - a rater that fails is reported, not fatal
        log.errors.append(f"rater stopped: {type(exc).__name__}: {exc}")
    return log


async def _rate_trials(client, log: RaterLog, token: str, headers: dict, state: dict,
                       n_ratings: int, think_s: float, double_share: float, gate: Gate,
                       rng: random.Random, scale: tuple[float, float, float]) -> None:
    """The rating loop of one rater (see ``rate``)."""
    lo, hi, step = scale
    n_steps = int(round((hi - lo) / step))
    if think_s > 0:  # paced raters arrive spread over one think time, not in one burst
        await asyncio.sleep(rng.uniform(0, think_s))
    k = 0
    while len(log.acked) < n_ratings and time.monotonic() < gate.deadline:
        trial = state.get("trial")
        if trial is None:
            break
        t0 = time.perf_counter()
        image = await send(client, log, "GET", trial["image_url"])
        log.image_s.append(time.perf_counter() - t0)
        if image.status_code != 200:
            log.errors.append(f"image {image.status_code}")
        if think_s > 0:
            await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))
        value = round(lo + step * rng.randint(0, n_steps), 6)
        body = {"trial_id": trial["id"], "value": value,
                "submission_id": f"{log.label}-{k}-{uuid.uuid4().hex[:12]}"}
        k += 1
        twice = rng.random() < double_share
        t0 = time.perf_counter()
        answers = await asyncio.gather(
            *(send(client, log, "POST", f"/api/s/{token}/ratings", json=body, headers=headers)
              for _ in range(2 if twice else 1)),
            return_exceptions=True,
        )
        log.post_s.append(time.perf_counter() - t0)
        good = []
        for a in answers:
            if isinstance(a, BaseException):
                log.errors.append(f"post {type(a).__name__}: {a}")
            elif a.status_code != 200:
                log.errors.append(f"post {a.status_code}: {a.text[:200]}")
            else:
                good.append(a.json())
        if not good:
            state = (await send(client, log, "GET", f"/api/s/{token}/state")).json()
            continue
        stored = good[0]["rating"]
        if any(g["rating"] != stored for g in good):
            log.errors.append(f"a double submit got two answers: {[g['rating'] for g in good]}")
        if (stored["trial_id"], stored["submission_id"], stored["value"]) != (
                body["trial_id"], body["submission_id"], value):
            log.errors.append(f"acknowledged {stored} for {body}")
        log.double_submits += twice
        log.acked[stored["trial_id"]] = (stored["submission_id"], stored["value"])
        state = good[0]["state"]


async def drive(base: str, tokens: dict[str, str], n_ratings: int, think_s: float,
                double_share: float, time_limit_s: float, seed: int,
                scale: tuple[float, float, float]) -> tuple[list[RaterLog], float, float]:
    """All raters at once; returns their logs, the wall time from the common start (s) and the
    client's event-loop lag p99 (ms)."""
    import httpx

    n = len(tokens)
    limits = httpx.Limits(max_connections=2 * n + 10, max_keepalive_connections=2 * n + 10)
    gate = Gate(n, time_limit_s)
    lags: list[float] = []
    monitor = asyncio.create_task(loop_lag(lags))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
        tasks = [
            rate(client, label, token, n_ratings, think_s, double_share, gate,
                 random.Random(seed * 100_003 + i), scale)
            for i, (label, token) in enumerate(tokens.items())
        ]
        logs = await asyncio.wait_for(asyncio.gather(*tasks), 2 * time_limit_s + 60)
    monitor.cancel()
    lag = float(np.percentile(lags, 99) * 1000) if lags else float("nan")
    return list(logs), time.monotonic() - gate.t0, lag


async def loop_lag(lags: list[float], period_s: float = 0.01) -> None:
    """Record how late 10 ms sleeps wake up (the client's own event-loop delay)."""
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(period_s)
        lags.append(max(0.0, time.perf_counter() - t0 - period_s))


# Checking the store -------------------------------------------------------------------------------
def verify(store_url: str, study_id: int, result: RunResult) -> None:
    """Read the study's ratings back; count lost, duplicated, gaps and unacknowledged rows."""
    from sqlalchemy import func, select

    from aigiqa.store import make_engine
    from aigiqa.store.study_models import Rating, Subject, Trial

    engine = make_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Subject.label, Rating.trial_id, Rating.submission_id, Rating.value,
                       Trial.position)
                .join(Subject, Subject.id == Rating.subject_id)
                .join(Trial, Trial.id == Rating.trial_id)
                .where(Subject.study_id == study_id)
            ).all()
            per_trial = conn.execute(
                select(Rating.trial_id, func.count()).join(Subject, Subject.id ==
                                                           Rating.subject_id)
                .where(Subject.study_id == study_id).group_by(Rating.trial_id)
                .having(func.count() > 1)
            ).all()
    finally:
        engine.dispose()
    stored = {(r.label, r.trial_id): (r.submission_id, float(r.value)) for r in rows}
    trial_counts = Counter((r.label, r.trial_id) for r in rows)
    submission_counts = Counter((r.label, r.submission_id) for r in rows)
    result.duplicated = (len(per_trial) + sum(c - 1 for c in trial_counts.values() if c > 1)
                         + sum(c - 1 for c in submission_counts.values() if c > 1))
    acked = {(log.label, t): v for log in result.logs for t, v in log.acked.items()}
    result.lost = sum(1 for key, v in acked.items() if stored.get(key) != v)
    result.unacknowledged = sum(1 for key in stored if key not in acked)
    positions: dict[str, list[int]] = {}
    for r in rows:
        positions.setdefault(r.label, []).append(r.position)
    result.gaps = sum(sorted(p) != list(range(len(p))) for p in positions.values())


# One backend --------------------------------------------------------------------------------------
def run_backend(backend: str, store_url: str, db_root: Path, args, work: Path) -> list[RunResult]:
    """Plan one study per mode on ``store_url``, serve, load, kill, verify."""
    from aigiqa.study.plan import create_study

    scale = (0.0, 5.0, 0.1)
    modes = [("paced", args.think), ("saturation", 0.0)] if not args.paced_only else [
        ("paced", args.think)]
    studies = {}
    for mode, _ in modes:
        t0 = time.perf_counter()
        studies[mode] = create_study(
            store_url, "demo", db_root, subjects=args.raters, design="full",
            training=args.training, repeats=2, seed=args.seed, scale=scale,
            name=f"load {mode}",
        )
        print(f"  {backend}: planned study {mode!r} ({args.raters} subjects, "
              f"{max(studies[mode].n_trials.values())} trials each) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    results = []
    for mode, think in modes:
        study = studies[mode]
        server = Server(store_url, args.workers, work / f"uvicorn-{backend}-{mode}.log")
        try:
            run(server.wait_ready(args.workers))
            tokens = {s.label: s.token for s in study.subjects}
            logs, wall, lag = run(drive(
                server.base, tokens, args.ratings, think, args.double_submit, args.time_limit,
                args.seed, scale))
        finally:
            server.kill()  # SIGKILL: acknowledged ratings must survive it
        result = RunResult(backend, mode, args.raters, wall, logs, lag_p99_ms=lag)
        verify(store_url, study.id, result)
        results.append(result)
        print(f"  {backend} {mode}: {result.n_acked} ratings in {wall:.1f} s, "
              f"{len(result.errors)} errors", flush=True)
        for e in list(dict.fromkeys(result.errors))[:5]:
            print(f"    error: {e}", flush=True)
        if result.errors:
            tail = server.log_path.read_text(errors="replace").splitlines()[-15:]
            print("    server log:\n      " + "\n      ".join(tail), flush=True)
    return results


def print_table(results: list[RunResult], args) -> None:
    head = (f"{'backend':<10} {'mode':<10} {'raters':>6} {'ratings':>7} {'s':>5} "
            f"{'ratings/s':>9} {'post p50':>9} {'p99':>7} {'max':>7} {'image p50':>9} "
            f"{'p99':>7} {'errors':>6} {'retry':>5} {'lost':>4} {'dup':>4} {'gaps':>4} {'2x':>4} "
            f"{'lag p99':>7}")

    fast = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m)]
    print(f"\nStudy load: {args.workers} uvicorn worker(s) ({'+'.join(fast) or 'asyncio+h11'}),"
          f" think {args.think} s (paced), latencies in ms as the client saw them, loopback, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(head)
    print("-" * len(head))
    for r in results:
        p50, p99, pmax = r.percentiles("post_s")
        i50, i99, _ = r.percentiles("image_s")
        doubles = sum(log.double_submits for log in r.logs)
        retries = sum(log.retries for log in r.logs)
        print(f"{r.backend:<10} {r.mode:<10} {r.raters:>6} {r.n_acked:>7} {r.wall_s:>5.1f} "
              f"{r.n_acked / r.wall_s:>9.1f} {p50:>9.1f} {p99:>7.1f} {pmax:>7.1f} "
              f"{i50:>9.1f} {i99:>7.1f} {len(r.errors):>6} {retries:>5} {r.lost:>4} "
              f"{r.duplicated:>4} {r.gaps:>4} {doubles:>4} {r.lag_p99_ms:>7.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raters", type=int, default=210)
    parser.add_argument("--ratings", type=int, default=15, help="ratings per rater and mode")
    parser.add_argument("--think", type=float, default=2.0,
                        help="mean think time per trial in the paced mode (s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="uvicorn worker processes")
    parser.add_argument("--time-limit", type=float, default=60.0,
                        help="seconds of load per run at most")
    parser.add_argument("--double-submit", type=float, default=0.05,
                        help="share of ratings posted twice at once")
    parser.add_argument("--images", type=int, default=40, help="demo images (>= ratings)")
    parser.add_argument("--training", type=int, default=3)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--paced-only", action="store_true")
    parser.add_argument("--goal-ms", type=float, default=100.0,
                        help="p99 goal of rating posts on PostgreSQL (paced)")
    parser.add_argument("--strict-goal", action="store_true",
                        help="exit 1 when the goal is missed too (not only on lost/duplicated)")
    parser.add_argument("--pg-settings", default="",
                        help="extra server settings name=value,… (diagnosis, e.g. "
                             "synchronous_commit=off: not durable against an OS crash)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.images < args.ratings:
        parser.error("--images must be at least --ratings")
    try:
        import httpx  # noqa: F401
        import uvicorn  # noqa: F401

        from aigiqa.study.app import create_app  # noqa: F401
        from aigiqa.study.plan import create_study  # noqa: F401
    except ImportError as exc:
        print(f"study_load: cannot run, {exc} (needs the study app, httpx and uvicorn)")
        return 1
    from aigiqa.demo import build_demo
    from aigiqa.store.pgtemp import TempPostgres

    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="aigiqa-load-") as tmp:
        work = Path(tmp)
        db_root = build_demo(work / "demo", n=args.images, seed=args.seed)
        for backend in args.backends.split(","):
            if backend == "postgresql":
                # Durable defaults (fsync, synchronous_commit on); room for every pool.
                settings = {"max_connections": "300"}
                settings.update(kv.split("=", 1) for kv in args.pg_settings.split(",") if kv)
                pg = TempPostgres.start(dbname="study_load", settings=settings)
                try:
                    results += run_backend(backend, pg.url, db_root, args, work)
                finally:
                    pg.stop()
            elif backend == "sqlite":
                results += run_backend(backend, f"sqlite:///{work / 'study.sqlite'}", db_root,
                                       args, work)
            else:
                parser.error(f"unknown backend {backend!r}")
    print_table(results, args)
    bad = [r for r in results if r.lost or r.duplicated or r.gaps or r.errors]
    slow = [r for r in results if r.backend == "postgresql" and r.mode == "paced"
            and not r.percentiles("post_s")[1] < args.goal_ms]
    for r in bad:
        print(f"FAIL {r.backend} {r.mode}: lost {r.lost}, duplicated {r.duplicated}, "
              f"gaps {r.gaps}, errors {len(r.errors)}")
    for r in slow:
        print(f"GOAL MISSED {r.backend} {r.mode}: post p99 "
              f"{r.percentiles('post_s')[1]:.1f} ms >= {args.goal_ms} ms")
    return 1 if bad or (slow and args.strict_goal) else 0


if __name__ == "__main__":
    sys.exit(main())

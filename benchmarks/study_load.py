"""Load test of the study web app: simulated raters on PostgreSQL and on SQLite, loopback only.

For each backend it makes a store (a throwaway PostgreSQL 15 cluster from aigiqa.testing.postgres
with its durable ``SERVER_SETTINGS``; or a SQLite file), a small demo database and one study per
load mode with ``--raters`` subjects, starts a real uvicorn server (``--workers`` processes) on
127.0.0.1 at a free port, and lets every subject rate concurrently, as the page does: load the
page (CSRF token), read the state, then per trial fetch the image, think, post the rating (a
``--double-submit`` share of the posts is sent twice at once with the same submission id, as a
double click would). Each rater stops after ``--ratings`` ratings or at ``--time-limit`` seconds.
The raters are asyncio tasks (uvloop when installed) in this process, each with its own
keep-alive HTTP/1.1 connections, like a browser tab, through a minimal client on asyncio
streams (a full client such as httpx costs several times the CPU per request, taken from the
server on a small machine). PostgreSQL is checkpointed before each run.

Modes: ``paced`` (think time uniform in [0.5, 1.5] × ``--think`` s, raters arriving spread over
the first think time; the latency goal applies here) and ``saturation`` (no think time, all at
once: the server's capacity; latency is then mostly queueing).

Latency, two views: the client's (request written → whole answer read, every request kept) and
the server's (``$AIGIQA_STUDY_TIMING``: each worker logs every request's time inside the app, its
database time and its event-loop lag). The gap is the client, the kernel, uvicorn's HTTP layer
and the wait for a CPU on a machine the client, the server and PostgreSQL share. CPU seconds of
the client and of the server's workers are counted too.

After each run the server is killed with SIGKILL and the store is read back: every acknowledged
rating must be there with its value and submission id (lost = 0), no trial or submission id twice
(duplicated = 0), and a subject's ratings must fill positions 0..k-1 without a gap. Prints two
tables; exits 1 if anything was lost or duplicated or a request failed (with ``--strict-goal``
also if the PostgreSQL paced p99 missed ``--goal-ms``). Bounded: at most ``--time-limit`` s of
load per run (in-flight requests then finish), plus set-up; the cluster and files are removed.
Columns: ``2x`` double submits sent, ``retry`` requests resent after a broken connection,
``lag p99`` the client's own event-loop delay (high: the client is short of CPU too).

    .venv/bin/python benchmarks/study_load.py [--raters 210] [--ratings 15] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aigiqa.testing.servers import free_port

#: Environment variable the uvicorn factory reads the store URL from.
STORE_ENV = "AIGIQA_LOAD_STORE"
CSRF_RE = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def app_from_env():
    """uvicorn factory (``--factory study_load:app_from_env``): the app on $AIGIQA_LOAD_STORE,
    tuned for a server process as ``aigiqa study serve`` does (warm pool, ``gc.freeze``)."""
    from aigiqa.study.app import create_app

    return create_app(os.environ[STORE_ENV], tune_process=True)


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
    server: dict[str, np.ndarray] = field(default_factory=dict)  # server timings (ms) by kind
    client_cpu_s: float = float("nan")
    server_cpu_s: float = float("nan")
    postgres_cpu_s: float = float("nan")

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


# A minimal HTTP/1.1 client -----------------------------------------------------------------------
class Broken(Exception):
    """The connection closed or broke before a whole answer came."""


@dataclass(slots=True)
class Reply:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


class MiniClient:
    """Keep-alive HTTP/1.1 on asyncio streams, one per rater (a browser tab): idle connections
    are reused, a second request while one is out opens a second connection. Only what the
    study app answers is understood: Content-Length or chunked bodies, ``Connection: close``."""

    def __init__(self, host: str, port: int, timeout_s: float = 30.0):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._host_header = f"Host: {host}:{port}\r\n"
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, method: str, path: str, *, json_body=None,
                      headers: dict[str, str] | None = None) -> Reply:
        head = [f"{method} {path} HTTP/1.1\r\n", self._host_header]
        body = b""
        if json_body is not None:
            body = json.dumps(json_body).encode()
            head.append(f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1") + body
        conn = self._idle.pop() if self._idle else None
        try:
            async with asyncio.timeout(self.timeout_s):
                if conn is None:
                    conn = await asyncio.open_connection(self.host, self.port)
                reply, keep = await self._exchange(conn, data)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            if conn is not None:
                conn[1].close()
            raise Broken(f"{type(exc).__name__}: {exc}") from None
        if keep:
            self._idle.append(conn)
        else:
            conn[1].close()
        return reply

    @staticmethod
    async def _exchange(conn, data: bytes) -> tuple[Reply, bool]:
        reader, writer = conn
        writer.write(data)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        keep = headers.get("connection", "").lower() != "close"
        if "content-length" in headers:
            content = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer lines
                pass
            content = b"".join(parts)
        else:
            content, keep = await reader.read(), False
        return Reply(status, headers, content), keep

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


# The server ---------------------------------------------------------------------------------------
class Server:
    """A uvicorn server process group on 127.0.0.1 serving the study app on ``store_url``."""

    def __init__(self, store_url: str, workers: int, log_path: Path, timing_dir: Path):
        from aigiqa.study.app import TIMING_ENV

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in kill()
        self.timing_dir = timing_dir
        env = {**os.environ, STORE_ENV: store_url, "HF_HUB_OFFLINE": "1",
               TIMING_ENV: str(timing_dir)}
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
        """Wait until /healthz has answered 4 × ``workers`` times on fresh connections (the
        workers are up)."""
        deadline = time.monotonic() + timeout_s
        ok = 0
        while ok < 4 * workers:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited ({self.proc.returncode}):\n"
                                   f"{self.log_path.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn not ready in {timeout_s} s")
            client = MiniClient("127.0.0.1", self.port, timeout_s=2.0)
            try:
                ok += (await client.request("GET", "/healthz")).status_code == 200
            except (Broken, TimeoutError):
                await asyncio.sleep(0.2)
            finally:
                client.close()

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the server's processes (Linux /proc)."""
        total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return float("nan")
        pids += [int(c) for c in children.split()]
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

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
        self.t0_wall = 0.0  # Unix time of the start (to match the server's timing lines)

    async def arrive(self) -> None:
        self.ready += 1
        if self.ready == self.n:
            self.t0, self.t0_wall = time.monotonic(), time.time()
            self.deadline = self.t0 + self.time_limit_s
            self.all_ready.set()
        await self.all_ready.wait()


async def send(client: MiniClient, log: RaterLog, method: str, url: str, **kwargs) -> Reply:
    """One request, sent again once if the connection broke (a kept-alive connection closed by
    the server at the moment of reuse); a rating post is safe to resend: same submission id."""
    try:
        return await client.request(method, url, **kwargs)
    except Broken:
        log.retries += 1
        return await client.request(method, url, **kwargs)


async def rate(port: int, label: str, token: str, n_ratings: int, think_s: float,
               double_share: float, gate: Gate, rng: random.Random,
               scale: tuple[float, float, float]) -> RaterLog:
    """One rater (own connections): page, state, then (image, think, post) until n ratings or
    the deadline."""
    log = RaterLog(label)
    client = MiniClient("127.0.0.1", port)
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
    finally:
        client.close()
    return log


async def _rate_trials(client: MiniClient, log: RaterLog, token: str, headers: dict, state: dict,
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
            *(send(client, log, "POST", f"/api/s/{token}/ratings", json_body=body,
                   headers=headers) for _ in range(2 if twice else 1)),
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


async def drive(port: int, tokens: dict[str, str], n_ratings: int, think_s: float,
                double_share: float, time_limit_s: float, seed: int,
                scale: tuple[float, float, float]
                ) -> tuple[list[RaterLog], float, float, tuple[float, float]]:
    """All raters at once; returns their logs, the wall time from the common start (s), the
    client's event-loop lag p99 (ms) and the run's (start, end) in Unix time."""
    n = len(tokens)
    gate = Gate(n, time_limit_s)
    lags: list[float] = []
    monitor = asyncio.create_task(loop_lag(lags))
    tasks = [
        rate(port, label, token, n_ratings, think_s, double_share, gate,
             random.Random(seed * 100_003 + i), scale)
        for i, (label, token) in enumerate(tokens.items())
    ]
    logs = await asyncio.wait_for(asyncio.gather(*tasks), 2 * time_limit_s + 60)
    monitor.cancel()
    lag = float(np.percentile(lags, 99) * 1000) if lags else float("nan")
    return list(logs), time.monotonic() - gate.t0, lag, (gate.t0_wall, time.time())


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
def read_timings(folder: Path, window: tuple[float, float]) -> dict[str, np.ndarray]:
    """The server's per-request times (ms) by kind, every worker's file; ``post_db`` the rating
    posts' database time, ``lag`` the workers' event-loop lag samples and ``gc0``-``gc2`` their
    garbage collections' pauses (those within the run's ``window`` only; requests: all)."""
    found: dict[str, list[float]] = {}
    for path in sorted(folder.glob("timing-*.tsv")):
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) != 5:  # a line cut by SIGKILL (none expected: one write per line)
                continue
            kind, _status, start, ms, db_ms = parts
            if kind in ("lag", "gc0", "gc1", "gc2") and not (
                    window[0] <= float(start) <= window[1]):
                continue
            found.setdefault(kind, []).append(float(ms))
            if db_ms:
                found.setdefault(f"{kind}_db", []).append(float(db_ms))
    return {k: np.array(v) for k, v in found.items()}


def run_backend(backend: str, store_url: str, db_root: Path, args, work: Path,
                pg=None) -> list[RunResult]:
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
        if pg is not None:
            pg.checkpoint()  # the planning's writes are on disk before the run, not during it
        timing_dir = work / f"timing-{backend}-{mode}"
        server = Server(store_url, args.workers, work / f"uvicorn-{backend}-{mode}.log",
                        timing_dir)
        try:
            run(server.wait_ready(args.workers))
            tokens = {s.label: s.token for s in study.subjects}
            gc.collect()
            gc.freeze()  # the client's set-up objects: out of its collector's way
            cpu0, server_cpu0, pg_cpu0 = _self_cpu_s(), server.cpu_s(), _postgres_cpu_s()
            logs, wall, lag, window = run(drive(
                server.port, tokens, args.ratings, think, args.double_submit, args.time_limit,
                args.seed, scale))
            client_cpu, server_cpu = _self_cpu_s() - cpu0, server.cpu_s() - server_cpu0
            pg_cpu = _postgres_cpu_s() - pg_cpu0 if pg is not None else float("nan")
        finally:
            server.kill()  # SIGKILL: acknowledged ratings must survive it
            gc.unfreeze()
        result = RunResult(backend, mode, args.raters, wall, logs, lag_p99_ms=lag,
                           server=read_timings(timing_dir, window), client_cpu_s=client_cpu,
                           server_cpu_s=server_cpu, postgres_cpu_s=pg_cpu)
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


def _postgres_cpu_s() -> float:
    """CPU seconds used so far by all processes named ``postgres`` (Linux /proc); finished
    processes are not counted (the pools keep their connections open through a run)."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1:text.rindex(")")] == "postgres":
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(values: np.ndarray | None) -> tuple[float, float, float]:
    if values is None or values.size == 0:
        return (float("nan"),) * 3
    p50, p99 = np.percentile(values, [50, 99])
    return float(p50), float(p99), float(values.max())


def print_server_table(results: list[RunResult]) -> None:
    """The server's view: time inside the app per request (all workers, every request)."""
    head = (f"{'backend':<10} {'mode':<10} {'posts':>6} {'post p50':>9} {'p99':>7} {'max':>7} "
            f"{'db p50':>7} {'db p99':>7} {'images':>6} {'image p50':>9} {'p99':>7} "
            f"{'lag p99':>7} {'lag max':>7} {'full gc':>7} {'gc max':>6} {'cpu srv':>7} "
            f"{'cpu cli':>7} {'cpu pg':>6}")
    print("\nServer side (ms inside the app, from $AIGIQA_STUDY_TIMING; lag: the workers' event "
          "loops; full gc: the workers' full collections, gc max: the longest collection pause; "
          "cpu: CPU seconds of the server's processes, of this client and of PostgreSQL during "
          "the run)")
    print(head)
    print("-" * len(head))
    for r in results:
        p50, p99, pmax = _pct(r.server.get("post"))
        d50, d99, _ = _pct(r.server.get("post_db"))
        i50, i99, _ = _pct(r.server.get("image"))
        _, l99, lmax = _pct(r.server.get("lag"))
        full_gc = r.server.get("gc2", np.empty(0))
        gc_max = max((float(v.max()) for k, v in r.server.items()
                      if k.startswith("gc") and v.size), default=float("nan"))
        print(f"{r.backend:<10} {r.mode:<10} {r.server.get('post', np.empty(0)).size:>6} "
              f"{p50:>9.1f} {p99:>7.1f} {pmax:>7.1f} {d50:>7.1f} {d99:>7.1f} "
              f"{r.server.get('image', np.empty(0)).size:>6} {i50:>9.1f} {i99:>7.1f} "
              f"{l99:>7.1f} {lmax:>7.1f} {full_gc.size:>7} {gc_max:>6.1f} "
              f"{r.server_cpu_s:>7.1f} {r.client_cpu_s:>7.1f} "
              f"{r.postgres_cpu_s:>6.1f}")


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
    parser.add_argument("--keep", type=Path, default=None,
                        help="copy the server's timing files and logs to this folder")
    args = parser.parse_args(argv)
    if args.images < args.ratings:
        parser.error("--images must be at least --ratings")
    try:
        import uvicorn  # noqa: F401

        from aigiqa.study.app import create_app  # noqa: F401
        from aigiqa.study.plan import create_study  # noqa: F401
    except ImportError as exc:
        print(f"study_load: cannot run, {exc} (needs the study app and uvicorn)")
        return 1
    from aigiqa.demo import build_demo
    from aigiqa.testing.postgres import SERVER_SETTINGS, TempPostgres

    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="aigiqa-load-") as tmp:
        work = Path(tmp)
        db_root = build_demo(work / "demo", n=args.images, seed=args.seed)
        for backend in args.backends.split(","):
            if backend == "postgresql":
                # Durable (fsync, synchronous_commit on), tuned for a server; room for every
                # pool.
                settings = {**SERVER_SETTINGS, "max_connections": "300"}
                settings.update(kv.split("=", 1) for kv in args.pg_settings.split(",") if kv)
                args.pg_used = settings
                pg = TempPostgres.start(dbname="study_load", settings=settings)
                try:
                    results += run_backend(backend, pg.url, db_root, args, work, pg)
                finally:
                    pg.stop()
            elif backend == "sqlite":
                results += run_backend(backend, f"sqlite:///{work / 'study.sqlite'}", db_root,
                                       args, work)
            else:
                parser.error(f"unknown backend {backend!r}")
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in [*work.glob("timing-*"), *work.glob("uvicorn-*.log")]:
                if path.is_dir():
                    shutil.copytree(path, args.keep / path.name, dirs_exist_ok=True)
                else:
                    shutil.copy2(path, args.keep / path.name)
    print_table(results, args)
    print_server_table(results)
    if getattr(args, "pg_used", None):
        print("\nPostgreSQL settings: " + ", ".join(f"{k}={v}" for k, v in args.pg_used.items()))
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

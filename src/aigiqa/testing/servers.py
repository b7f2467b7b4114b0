"""Live servers for tests and benchmarks: a free port, an app on a uvicorn thread, and
``aigiqa study serve`` in a subprocess.

``running_server(app)`` yields the base URL of ``app`` served in this process;
``start_study_server(db, port=free_port())`` returns the ``Popen`` once ``GET /healthz`` answers
200 on 127.0.0.1 (stop it with ``proc.terminate()`` or ``os.kill(proc.pid, SIGKILL)``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from aigiqa.errors import AigiqaError
from aigiqa.store.study_domain import StudyError

if TYPE_CHECKING:
    from fastapi import FastAPI


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                   start_timeout_s: float = 20.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yield its base URL; stop it on exit.

    ``port=0`` takes a free port. Raises AigiqaError if the server does not start in time.
    """
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="aigiqa-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            raise AigiqaError(f"uvicorn did not start on {host}:{port} "
                              f"within {start_timeout_s:g} s")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(start_timeout_s)


def start_study_server(db: str | Path, *, port: int, host: str = "127.0.0.1",
                       log: str | Path | None = None, images_root: str | Path | None = None,
                       workers: int = 1, timeout_s: float = 60.0) -> subprocess.Popen:
    """Start ``aigiqa study serve`` on host:port in a new Python process; wait for ``/healthz``.

    ``workers`` > 1 runs that many uvicorn worker processes. Output goes to ``log`` (appended)
    or is discarded. StudyError (with the log's tail) if the process exits or does not answer
    within ``timeout_s``.
    """
    cmd = [sys.executable, "-c", "from aigiqa.study.cli import app; app()", "serve",
           "--db", str(db), "--host", host, "--port", str(port)]
    if images_root is not None:
        cmd += ["--images-root", str(images_root)]
    if workers != 1:
        cmd += ["--workers", str(workers)]
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log is not None:
            out.close()
    url = f"http://{host}:{port}/healthz"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StudyError(f"study server exited with code {proc.returncode}"
                             f"{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback URL
                if r.status == 200:
                    return proc
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise StudyError(f"study server did not answer on {url} within {timeout_s:g} s{_tail(log)}")


def _tail(log: str | Path | None) -> str:
    if log is None:
        return ""
    text = Path(log).read_text(errors="replace")[-2000:]
    return f"; log {log}:\n{text}"

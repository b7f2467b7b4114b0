"""Run the app on a real uvicorn server in a background thread (tests, benchmarks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from aigiqa.errors import AigiqaError


@contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                   start_timeout_s: float = 20.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yield its base URL; stop it on exit.

    ``port=0`` takes a free port. Raises AigiqaError if the server does not start in time.
    """
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

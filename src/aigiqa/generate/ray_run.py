"""``aigiqa generate run --backend ray``: one pipeline per Ray actor, the batches spread over them.

For each generator, as many actors as the cluster holds (one GPU and one CPU each when the
cluster has GPUs and ``--device`` is not cpu; one CPU each otherwise), at most one per batch,
load the pipeline once and generate the batches the driver hands them (each actor one batch
ahead). An actor returns the checked, PNG-encoded images; the driver writes them atomically
and logs them (as the local run does), so a killed driver loses only the batches in flight and
a rerun (with either backend) generates only what is missing. Batches are the local run's, each
image with its own seeded generator: a batch gives the pixels it gives locally on the same
device and dtype (up to the rounding of a different CPU thread count). An actor that dies is
restarted and its batch retried (``MAX_RESTARTS``).

Every node needs aigiqa with the ``generate`` extra and the pipeline folders (or the hub cache)
at the same paths as the driver; only the driver writes the output folder.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from aigiqa.errors import AigiqaError, GenerateError, describe_error

__all__ = ["MAX_RESTARTS", "GeneratorActor", "generate_with_ray"]

MAX_RESTARTS = 3


class GeneratorActor:
    """One pipeline on one Ray worker: ``load`` once, then ``generate`` batches of plan rows."""

    def __init__(self, row: dict, generator: str, device: str, dtype: str,
                 allow_download: bool) -> None:
        self.row, self.generator, self.device_text = row, generator, device
        self.dtype, self.allow_download = dtype, allow_download
        self.loaded: Any = None

    def load(self) -> dict:
        """Load the pipeline; the log fields of its images (weights, scheduler, device…)."""
        import torch

        from aigiqa.devices import check_bf16, resolve_device
        from aigiqa.generate.pipelines import library_versions, load_pipeline

        device = resolve_device(self.device_text, "--device", GenerateError)
        check_bf16(device, getattr(torch, self.dtype), "--dtype", GenerateError)
        row = self.row
        self.loaded = load_pipeline(str(row["pipeline"]), self.generator, device=device,
                                    dtype=self.dtype, scheduler=str(row["scheduler"]),
                                    variant=str(row["variant"]),
                                    allow_download=self.allow_download)
        return {"weights_sha256": self.loaded.sha256, "scheduler": self.loaded.scheduler,
                "dtype": self.dtype, "device": str(device), "versions": library_versions(),
                "worker": f"{socket.gethostname()}:{os.getpid()}"}

    def generate(self, rows: list[dict]) -> tuple[list, float, list[int]]:
        """(checked PNG outcomes, seconds of the pipeline call, prompt tokens dropped) of one
        batch."""
        from aigiqa.generate.run import encode_batch, run_batch

        if self.loaded is None:  # a restarted actor
            self.load()
        images, seconds, dropped = run_batch(self.loaded, pd.DataFrame(rows), self.generator)
        return encode_batch(images), seconds, dropped


def _get(ray: Any, ref: Any, generator: str) -> Any:
    """``ray.get`` with an actor's AigiqaError raised as itself (not Ray's wrapper)."""
    try:
        return ray.get(ref)
    except Exception as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, AigiqaError):
            raise cause from None
        raise GenerateError(f"generator {generator!r}: a Ray actor failed "
                            f"({describe_error(exc).splitlines()[0]})") from None


def _check_device(device: str) -> None:
    if device not in ("auto", "cpu", "cuda"):
        raise GenerateError(f"--device {device!r} with --backend ray: use auto, cuda or cpu "
                            "(Ray gives each actor its own GPU)")


def _actor_resources(ray: Any, device: str) -> dict[str, float]:
    gpus = ray.cluster_resources().get("GPU", 0.0)
    if device == "cuda" and gpus < 1:
        raise GenerateError("--device cuda with --backend ray: the Ray cluster has no GPU")
    return {"num_cpus": 1.0, "num_gpus": 1.0} if device != "cpu" and gpus >= 1 else \
        {"num_cpus": 1.0}


def _drain(ray: Any, actors: list, commons: list[dict], queue: list[list[dict]],
           generator: str, out: Path, result: Any, log: dict) -> Iterator[list[dict]]:
    """Hand the batches of ``queue`` to the actors (each one batch ahead), write and log each
    finished batch in the driver; yields its log entries."""
    from aigiqa.generate.run import collect_entries, write_batch

    flight: dict[Any, tuple[int, list[dict]]] = {}

    def submit(k: int) -> None:
        if queue:
            batch = queue.pop(0)
            flight[actors[k].generate.remote(batch)] = (k, batch)

    for k in range(len(actors)):
        submit(k)
        submit(k)
    while flight:
        [ref], _ = ray.wait(list(flight), num_returns=1)
        k, batch = flight.pop(ref)
        outcomes, seconds, dropped = _get(ray, ref, generator)
        submit(k)
        result.seconds += seconds
        entries = write_batch(out, batch, outcomes,
                              {**commons[k], "seconds": seconds / len(batch)}, dropped)
        collect_entries(entries, result, log)
        yield entries


def generate_with_ray(todo: pd.DataFrame, out: Path, result: Any, log: dict, *, device: str,
                      dtype: str | None, batch_size: int, allow_download: bool,
                      on_batch: Callable[[int, int], None] | None, workers: int,
                      address: str | None) -> None:
    """Generate ``todo`` on Ray actors (see the module docstring); fills ``result``/``log``."""
    from aigiqa.benchmark.ray_backend import RayBackend
    from aigiqa.generate.run import batches

    _check_device(device)
    backend = RayBackend(workers, address)
    ray = backend.ray
    started = backend._connect()
    total, count = len(todo), 0
    try:
        resources = _actor_resources(ray, device)
        capacity = backend.capacity(resources)
        if capacity < 1:
            raise GenerateError(f"the Ray cluster has no room for a generation actor "
                                f"({resources})")
        remote = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(
            GeneratorActor)
        actor_device = "cuda" if "num_gpus" in resources else "cpu"
        for generator, rows in todo.groupby("generator", sort=False):
            first = rows.iloc[0].to_dict()
            kind = dtype or str(first["dtype"]) or "float32"
            queue = [b.to_dict("records") for b in batches(rows, batch_size)]
            actors = [remote.options(**resources).remote(first, str(generator), actor_device,
                                                         kind, allow_download)
                      for _ in range(min(capacity, len(queue)))]
            try:
                loading = time.perf_counter()
                commons = [_get(ray, a.load.remote(), str(generator)) for a in actors]
                result.load_seconds += time.perf_counter() - loading
                done = _drain(ray, actors, commons, queue, str(generator), out, result, log)
                for entries in done:
                    count += len(entries)
                    if on_batch is not None:
                        on_batch(count, total)
            finally:
                for actor in actors:
                    ray.kill(actor)
    finally:
        if started:
            ray.shutdown()

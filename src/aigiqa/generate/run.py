"""Run a generation plan with diffusers: images in the AIGIQA-20K release layout.

``DIR/<split>/<name>`` (PNG), ``DIR/info_<split>.csv`` (name, prompt, empty mos),
``DIR/hyperparameters.csv`` and ``DIR/failures.csv`` (see :mod:`aigiqa.generate.state`).
Each pipeline is loaded once; rows of one generator with equal size, steps, CFG, negative
prompt and extra arguments share a batch (at most ``batch_size`` images, in plan order); every
image has its own ``torch.Generator`` seeded with its plan seed, so the same plan, device and
dtype give the same pixels. Images are written atomically and logged after they are written (in
a thread, while the next batch is generated): a
rerun (also after a kill) generates only the images not finished. An output with NaN or an
all-black image (e.g. a safety checker's) is a failure of that image, logged with its reason,
not kept; a rerun tries it again only with ``retry_failed``.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aigiqa.devices import DTYPES, check_bf16, is_device, resolve_device
from aigiqa.errors import GenerateError
from aigiqa.files import atomic_write, check_folder
from aigiqa.generate import state
from aigiqa.generate.pipelines import (
    library_versions,
    load_pipeline,
    locate,
    require_generation,
    tokens_dropped,
)
from aigiqa.generate.plan import read_plan

__all__ = ["RunResult", "run_plan", "check_output", "encode_batch", "write_batch",
           "collect_entries", "batches", "run_batch"]

_BATCH_KEY = ["width", "height", "steps", "cfg", "negative_prompt", "kwargs"]


@dataclass
class RunResult:
    """What a run did: images generated now, skipped as finished, failed now, generated now
    with a prompt truncated to the text encoder's context (``pipelines.tokens_dropped``),
    external rows left out, the seconds spent in pipeline calls and in loading pipelines, and
    the counts of the folder's tables."""

    generated: int = 0
    skipped: int = 0
    failed: int = 0
    truncated: int = 0
    external: int = 0
    seconds: float = 0.0
    load_seconds: float = 0.0
    tables: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def check_output(image: np.ndarray) -> tuple[np.ndarray | None, str]:
    """A pipeline's float output (H, W, 3) in [0, 1] → (uint8 image, '') or (None, reason)."""
    if not np.all(np.isfinite(image)):
        return None, f"NaN/inf in the output ({int(np.sum(~np.isfinite(image)))} values)"
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    if int(pixels.max()) == 0:
        return None, "all-black output (a safety checker or a diverged run)"
    return pixels, ""


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def batches(rows: pd.DataFrame, batch_size: int) -> list[pd.DataFrame]:
    """Rows of one generator → batches of equal size/steps/cfg/…, in plan order."""
    out = []
    for _, group in rows.groupby(_BATCH_KEY, sort=False):
        for start in range(0, len(group), batch_size):
            out.append(group.iloc[start:start + batch_size])
    return out


def run_plan(plan_file: str | Path, out: str | Path, *, device: str = "auto",
             dtype: str | None = None, batch_size: int = 4, allow_download: bool = False,
             only: list[str] | None = None, retry_failed: bool = False,
             on_batch: Callable[[int, int], None] | None = None, backend: str = "local",
             workers: int = 1, address: str | None = None) -> RunResult:
    """Generate every unfinished image of the plan into ``out`` (see the module docstring).

    ``dtype`` (float32 | bfloat16 | float16) overrides the plan's per-generator dtype (default
    float32); ``only``: these generators. ``on_batch(done, total)`` after every batch.
    ``backend="ray"``: one pipeline per Ray actor (:mod:`aigiqa.generate.ray_run`), on a local
    Ray with ``workers`` CPUs or the cluster at ``address``.
    """
    if backend not in ("local", "ray"):
        raise GenerateError(f"--backend {backend!r} is invalid; use local or ray")
    if not is_device(device):
        raise GenerateError(f"--device {device!r} is invalid; use auto, cpu, cuda or cuda:N")
    if dtype is not None and dtype not in DTYPES:
        raise GenerateError(f"--dtype {dtype!r} is invalid; use {' or '.join(DTYPES)}")
    if batch_size < 1:
        raise GenerateError("--batch-size must be >= 1")
    plan = read_plan(plan_file)
    if only:
        unknown = [g for g in only if g not in set(plan["generator"])]
        if unknown:
            raise GenerateError(f"{plan_file}: unknown generator(s) {', '.join(unknown)}; the "
                                f"plan has {', '.join(dict.fromkeys(plan['generator']))}")
    out = check_folder(out, "the output folder", "--out")
    with state.folder_lock(out, "run"):
        return _run_locked(plan, str(plan_file), out, device=device, dtype=dtype,
                           batch_size=batch_size, allow_download=allow_download, only=only,
                           retry_failed=retry_failed, on_batch=on_batch, backend=backend,
                           workers=workers, address=address)


def _run_locked(plan: pd.DataFrame, plan_file: str, out: Path, *, device: str,
                dtype: str | None, batch_size: int, allow_download: bool,
                only: list[str] | None, retry_failed: bool,
                on_batch: Callable[[int, int], None] | None, backend: str, workers: int,
                address: str | None) -> RunResult:
    state.check_plan_copy(out, plan, plan_file)
    log = state.read_log(out)
    result = RunResult()

    def finished(row: pd.Series) -> bool:
        entry = log.get(row["name"])
        if entry is None:
            return False
        if entry.get("status") == "failed":
            return not retry_failed
        return state.image_path(out, row).is_file()

    chosen = plan[plan["generator"].isin(only)] if only else plan
    result.external = int(chosen["external"].sum())
    internal = chosen[~chosen["external"]]
    done = internal.apply(finished, axis=1) if len(internal) else pd.Series(dtype=bool)
    result.skipped = int(done.sum())
    todo = internal[~done] if len(internal) else internal
    if len(todo):
        require_generation()
    for generator, rows in todo.groupby("generator", sort=False):  # fail before any work
        locate(str(rows["pipeline"].iloc[0]), str(generator), allow_download=allow_download)
    local = backend == "local"
    torch_device = resolve_device(device, "--device", GenerateError) if local and len(todo) \
        else None
    (out / state.STATE).mkdir(parents=True, exist_ok=True)
    state.keep_plan_copy(out, plan)
    state.remove_stale_temporaries(out)
    if len(todo) and not local:
        from aigiqa.generate.ray_run import generate_with_ray

        generate_with_ray(todo, out, result, log, device=device, dtype=dtype,
                          batch_size=batch_size, allow_download=allow_download,
                          on_batch=on_batch, workers=workers, address=address)
    elif len(todo):
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigiqa-save") as saver:
            _generate_all(todo, out, result, log, saver, device=torch_device, dtype=dtype,
                          batch_size=batch_size, allow_download=allow_download,
                          on_batch=on_batch)
    result.tables = state.write_tables(out, plan, log)
    return result


def _generate_all(todo: pd.DataFrame, out: Path, result: RunResult, log: dict, saver, *,
                  device, dtype: str | None, batch_size: int, allow_download: bool,
                  on_batch: Callable[[int, int], None] | None) -> None:
    """Generate ``todo`` generator by generator; each batch is saved (PNG, fsync, log) in the
    ``saver`` thread while the next one is generated, one batch in flight at most."""
    import torch

    total, count = len(todo), 0
    versions = library_versions()
    pending: Future | None = None

    def collect() -> None:
        nonlocal pending, count
        if pending is None:
            return
        entries, pending = pending.result(), None  # re-raises a failed write here
        collect_entries(entries, result, log)
        count += len(entries)
        if on_batch is not None:
            on_batch(count, total)

    try:
        for generator, rows in todo.groupby("generator", sort=False):
            first = rows.iloc[0]
            kind = dtype or str(first["dtype"]) or "float32"
            check_bf16(device, getattr(torch, kind), "--dtype", GenerateError)
            loading = time.perf_counter()
            loaded = load_pipeline(str(first["pipeline"]), str(generator), device=device,
                                   dtype=kind, scheduler=str(first["scheduler"]),
                                   variant=str(first["variant"]), allow_download=allow_download)
            result.load_seconds += time.perf_counter() - loading
            common = {"weights_sha256": loaded.sha256, "scheduler": loaded.scheduler,
                      "dtype": kind, "device": str(device), "versions": versions}
            for batch in batches(rows, batch_size):
                images, seconds, dropped = run_batch(loaded, batch, str(generator))
                result.seconds += seconds
                collect()
                pending = saver.submit(_save, out, batch.to_dict("records"), images,
                                       {**common, "seconds": seconds / len(batch)}, dropped)
            collect()
            del loaded
    finally:
        if pending is not None and not pending.cancelled():
            with contextlib.suppress(Exception):  # keep what the last batch finished
                collect()


def encode_batch(images: np.ndarray) -> list[tuple[bytes | None, str]]:
    """Check and PNG-encode the float images of a batch: (PNG bytes, '') or (None, reason)."""
    outcomes = []
    for image in images:
        pixels, reason = check_output(image)
        outcomes.append((_png(pixels) if pixels is not None else None, reason))
    return outcomes


def write_batch(out: Path, rows: list[dict], outcomes: list[tuple[bytes | None, str]],
                common: dict, dropped: list[int]) -> list[dict]:
    """Write (atomically) and log the images of one batch; their log entries (with the
    prompt tokens the text encoders did not see, ``dropped``)."""
    entries = []
    for row, (data, reason), lost in zip(rows, outcomes, dropped, strict=True):
        extra = {**common, "prompt_tokens_dropped": int(lost)}
        if data is not None:
            with atomic_write(state.image_path(out, row), f"image {row['name']}") as handle:
                handle.write(data)
            entries.append({"name": row["name"], "status": "ok", **extra})
        else:
            entries.append({"name": row["name"], "status": "failed", "reason": reason,
                            **extra})
    state.append_log(out, entries)
    return entries


def _save(out: Path, rows: list[dict], images: np.ndarray, common: dict,
          dropped: list[int]) -> list[dict]:
    return write_batch(out, rows, encode_batch(images), common, dropped)


def collect_entries(entries: list[dict], result: RunResult, log: dict) -> None:
    """Count the log entries of a saved batch in ``result`` and ``log``."""
    for entry in entries:
        if entry["status"] == "ok":
            result.generated += 1
            result.truncated += entry.get("prompt_tokens_dropped", 0) > 0
        else:
            result.failed += 1
            result.failures.append(f"{entry['name']}: {entry['reason']}")
    log.update({e["name"]: e for e in entries})


def run_batch(loaded, batch: pd.DataFrame, generator: str
              ) -> tuple[np.ndarray, float, list[int]]:
    """Generate one batch: (float images (B, H, W, 3) in [0, 1], seconds of the call, prompt
    tokens each image's text encoders did not see)."""
    import torch

    first = batch.iloc[0]
    gen_device = loaded.device if loaded.device.type != "mps" else "cpu"
    generators = [torch.Generator(gen_device).manual_seed(int(s)) for s in batch["seed"]]
    kwargs = json.loads(str(first["kwargs"]) or "{}")
    negative = str(first["negative_prompt"])
    start = time.perf_counter()
    try:
        output = loaded.pipe(
            prompt=[str(p) for p in batch["prompt"]],
            negative_prompt=[negative] * len(batch) if negative else None,
            num_inference_steps=int(first["steps"]), guidance_scale=float(first["cfg"]),
            height=int(first["height"]), width=int(first["width"]), generator=generators,
            output_type="np", **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        names = ", ".join(batch["name"])
        raise GenerateError(f"generator {generator!r}: the pipeline call failed for {names} "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    seconds = time.perf_counter() - start
    dropped = tokens_dropped(loaded.pipe, [str(p) for p in batch["prompt"]])
    return np.asarray(output.images, dtype=np.float32), seconds, dropped

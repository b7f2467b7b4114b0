"""Helpers of the torch metrics that need no metric: package presence, the plan
of forward passes, the prepare-ahead pipeline, device transfer and atomic ``torch.save``.

torch is imported inside functions only: importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

def missing_modules(names: Sequence[str]) -> list[str]:
    """The modules of ``names`` that cannot be imported (found without importing them)."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package missing, or a blocked import
            found = False
        if not found:
            missing.append(name)
    return missing


def plan_chunks(pixels: Sequence[int], groups: Sequence[Hashable], batch_size: int,
                max_pixels: int | None) -> list[list[int]]:
    """Indices of the forward passes: sorted by (group, pixels), at most ``batch_size`` each,
    one group each, and at most ``max_pixels`` when every image is counted at the size of the
    largest (what padding makes of them); an image over the bound goes alone."""
    order = sorted(range(len(pixels)), key=lambda i: (groups[i], pixels[i]))
    chunks: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) >= batch_size or groups[i] != groups[current[0]]
                        or (max_pixels is not None
                            and (len(current) + 1) * pixels[i] > max_pixels)):
            chunks.append(current)
            current = []
        current.append(i)
    if current:
        chunks.append(current)
    return chunks


def atomic_torch_save(obj: Any, path: str | Path, what: str = "the checkpoint") -> None:
    """``torch.save`` through :func:`aigiqa.files.atomic_write` (temporary file beside ``path``,
    fsync, rename: never a half file). AigiqaError naming the file if it cannot be written."""
    import torch

    from aigiqa.files import atomic_write

    with atomic_write(path, what) as handle:
        torch.save(obj, handle)


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors of a batch (a tensor, or a tuple/list/dict of them) on ``device``; pinned and
    copied asynchronously to CUDA."""
    import torch

    if isinstance(batch, torch.Tensor):
        if device.type == "cuda":
            return batch.pin_memory().to(device, non_blocking=True)
        return batch.to(device)
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def prepared(chunks: list[list[int]], ready: Callable[[list[int]], Any],
             overlap: bool) -> Iterator[tuple[list[int], Any]]:
    """(indices, prepared batch) of each chunk; with ``overlap`` the next chunk is prepared in a
    background thread while the caller works on the current one."""
    if not overlap or len(chunks) < 2:
        for indices in chunks:
            yield indices, ready(indices)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigiqa-prepare") as pool:
        pending = pool.submit(ready, chunks[0])
        for k, indices in enumerate(chunks):
            batch = pending.result()
            if k + 1 < len(chunks):
                pending = pool.submit(ready, chunks[k + 1])
            yield indices, batch

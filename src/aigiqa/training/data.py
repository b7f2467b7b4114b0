"""Training data: train/val/test parts of a database and a torch Dataset that decodes in workers.

Images are decoded (:func:`aigiqa.images.load_image`) and transformed (resize/crop/augment by the
metric's ``transform``) inside DataLoader worker processes. Augmentation is seeded per sample by
``(seed, epoch, index)``, so a batch is the same whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aigiqa.databases.base import Database, Record
from aigiqa.errors import SplitError
from aigiqa.splits import resolve_split

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from aigiqa.metrics.learned.base import LearnedMetric

#: Part names a split may give its validation part.
VAL_NAMES = ("val", "validation", "valid", "dev")


def carve_validation(db: Database, names: Sequence[str], fraction: float,
                     seed: int) -> tuple[list[str], list[str]]:
    """Split ``names`` into (train, val), ``fraction`` of them to val, stratified by generator.

    Within each generator names are ordered by ``sha256(f"{seed}:val:{name}")``; over the
    generators' concatenated sequence image t (1-based) goes to val when ``floor(t * fraction)``
    steps up, so every generator is split in proportion. Keeps the database order.
    """
    if not 0 < fraction < 1:
        raise SplitError(f"{db.name}: validation fraction must be in (0, 1), got {fraction}")
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(db.record(name).generator or "", []).append(name)
    seq: list[str] = []
    for generator in sorted(groups):
        seq += sorted(groups[generator],
                      key=lambda n: hashlib.sha256(f"{seed}:val:{n}".encode()).digest())
    val = {n for t, n in enumerate(seq, start=1)
           if math.floor(t * fraction) > math.floor((t - 1) * fraction)}
    return [n for n in names if n not in val], [n for n in names if n in val]


def training_parts(db: Database, spec: str, seed: int,
                   val_fraction: float) -> dict[str, list[str]]:
    """``{"train", "val", "test"}`` name lists for a split spec (test may be empty).

    ``official`` uses the database's val split when it has MOS, else carves ``val_fraction`` of
    train; ``fold:K`` carves val from the fold's training part.
    """
    split = resolve_split(db, spec, seed=seed)
    if "train" not in split:
        raise SplitError(f"{db.name}: split {spec!r} has no labelled 'train' part "
                         f"(parts: {', '.join(split) or 'none'})")
    val = next((split[k] for k in VAL_NAMES if split.get(k)), None)
    train = split["train"]
    if val is None:
        train, val = carve_validation(db, train, val_fraction, seed)
    parts = {"train": train, "val": val, "test": split.get("test", [])}
    if len(parts["train"]) < 2 or len(parts["val"]) < 3:
        raise SplitError(f"{db.name}: split {spec!r} gives {len(parts['train'])} training and "
                         f"{len(parts['val'])} validation images; at least 2 and 3 are needed")
    return parts


class RecordDataset:
    """torch-style Dataset of records: item i → (image tensor, target, text, i).

    ``targets`` are the (normalised) training targets or None (then NaN); ``train`` turns on the
    metric's random augmentation, seeded by ``(seed, epoch, i)``; set ``epoch`` before each epoch.
    ``text`` is the prompt; with ``allow_names`` the metric's ``model_text(prompt, name,
    generator)`` (:mod:`aigiqa.training.protocol`: name-blind by default).
    """

    def __init__(self, metric: LearnedMetric, records: Sequence[Record],
                 targets: np.ndarray | None, *, train: bool, seed: int = 0,
                 allow_names: bool = False) -> None:
        from aigiqa.training.protocol import model_texts

        self.metric = metric
        self.records = list(records)
        self.texts = model_texts(metric, self.records, allow_names)
        self.targets = targets
        self.train = train
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, float, str, int]:
        from aigiqa.images import load_image

        rec = self.records[i]
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        image = self.metric.transform(load_image(rec.path), rng)
        target = float(self.targets[i]) if self.targets is not None else float("nan")
        return image, target, self.texts[i], i


class Collate:
    """Batch items: (metric.collate(images), float32 targets (B,), prompts list, indices (B,))."""

    def __init__(self, metric: LearnedMetric) -> None:
        self.metric = metric

    def __call__(self, items: Sequence[tuple[Any, float, str, int]]) -> tuple[Any, ...]:
        import torch

        images, targets, prompts, idx = zip(*items, strict=True)
        return (self.metric.collate(images), torch.tensor(targets, dtype=torch.float32),
                list(prompts), torch.tensor(idx))


def worker_init(worker_id: int) -> None:
    """One torch thread per worker (the main process uses the cores for the model)."""
    import torch

    torch.set_num_threads(1)


def make_loader(dataset: RecordDataset, batch_size: int, *, shuffle: bool, num_workers: int,
                seed: int, drop_last: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader with a seeded shuffle order (same order for any ``num_workers``)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
        collate_fn=Collate(dataset.metric), worker_init_fn=worker_init if num_workers else None,
        generator=generator, drop_last=drop_last, pin_memory=False)

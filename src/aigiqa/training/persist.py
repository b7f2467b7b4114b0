"""The files of a training run: the resume state (``last.pt``), the best weights (``model.pt``)
and ``result.json``; see :mod:`aigiqa.training.loop` for what each holds."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aigiqa.databases.base import Database
from aigiqa.errors import MetricError
from aigiqa.files import write_text
from aigiqa.metrics.torch_util import atomic_torch_save

if TYPE_CHECKING:  # pragma: no cover
    from aigiqa.metrics.learned.base import LearnedMetric
    from aigiqa.training.loop import TrainConfig, TrainResult

STATE_FILE = "last.pt"
MODEL_FILE = "model.pt"
RESULT_FILE = "result.json"
#: settings that change the trained weights (a resumed run must match them)
RUN_KEYS = ("split", "seed", "epochs", "batch_size", "lr", "weight_decay", "loss",
            "val_fraction", "target", "allow_names")


def run_id(metric: LearnedMetric, database: Database, config: TrainConfig, target: str) -> str:
    blob = {"metric": metric.name, "options": {k: str(v) for k, v in metric.options.items()
                                               if k not in metric.runtime_options},
            "database": database.name, "n": len(database), "target": target,
            **{k: str(getattr(config, k)) for k in RUN_KEYS if k != "target"}}
    if not config.allow_names:  # name-blind (the default) keeps the ids of earlier runs
        del blob["allow_names"]
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def save_state(path: Path, run_id: str, state: dict, model, optimizer, scheduler) -> None:
    import torch

    atomic_torch_save({
        "run_id": run_id, **copy.deepcopy(state),
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                "python": random.getstate()},
    }, path, "the training state")


def resume(out: Path, run_id: str, model, optimizer, scheduler) -> dict:
    import torch

    path = out / STATE_FILE
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise MetricError(f"cannot resume from {path} ({exc}); delete it or use --no-resume") \
            from exc
    if blob.get("run_id") != run_id:
        raise MetricError(f"{path} belongs to a run with other settings (metric, database, "
                          "split, seed or hyper-parameters); use another --out or --no-resume")
    model.load_state_dict(blob["model"])
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["rng"]["torch"])
    np.random.set_state(blob["rng"]["numpy"])
    random.setstate(blob["rng"]["python"])
    return {k: blob[k] for k in ("epoch", "best_srcc", "best_epoch", "history")}


def save_model(metric: LearnedMetric, state_dict: dict, path: Path,
               affine: tuple[float, float], extra: dict) -> None:
    metric.save(path, extra, state_dict=state_dict, target_affine=affine)


def bench_spec(metric: LearnedMetric, checkpoint: Path) -> str:
    """``name:opt=value…:checkpoint=PATH`` for ``aigiqa bench --metrics``."""
    skip = ("checkpoint", *metric.runtime_options)
    opts = [f"{k}={v}" for k, v in sorted(metric.options.items())
            if k not in skip and v != metric.defaults[k]]
    return ":".join([metric.name, *opts, f"checkpoint={checkpoint}"])


def finish(metric: LearnedMetric, database: Database, config: TrainConfig, target: str,
           parts: dict[str, list], result: TrainResult, out: Path) -> None:
    checkpoint = (out / MODEL_FILE).resolve()
    result.checkpoint = checkpoint
    result.bench_spec = bench_spec(metric, checkpoint)
    metric.use_checkpoint(checkpoint)  # model.pt holds the weights the metric now has
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    payload = {
        "metric": metric.name, "options": {k: v for k, v in metric.options.items()},
        "bench_spec": result.bench_spec, "database": database.name,
        "root": str(database.root), "split": config.split, "seed": config.seed,
        "target": target, "sizes": {k: len(v) for k, v in parts.items()},
        "settings": settings, "best_epoch": result.best_epoch, "val": result.val,
        "test": result.test, "history": result.history,
        "protocol": result.protocol, "name_blind": result.protocol.get("name_blind"),
    }
    path = write_text(out / RESULT_FILE, json.dumps(payload, indent=2, default=str),
                      "the training results")
    result.result_file = path


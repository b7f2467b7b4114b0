"""The fit loop: fine-tune on train, select on validation SRCC, test, resume after a kill.

Files in ``out`` (when given):

- ``last.pt``: the full training state after each finished epoch (model, optimizer, scheduler,
  RNG states, epoch, best validation SRCC, history), written atomically; a rerun with the same
  settings resumes from it (``resume=True``, the default), and ends with the same weights as an
  uninterrupted run (CPU: deterministic algorithms, per-epoch seeds).
- ``model.pt``: the weights of the best validation epoch, in the format ``checkpoint=`` reads
  (``{"state_dict", "aigiqa": meta}``, meta holding the target normalisation; ``metric.save``).
- ``result.json``: metric spec and options, database, split, seed, settings, best epoch,
  validation and test metrics (:func:`aigiqa.evaluation.evaluate`), history, and the spec for
  ``aigiqa bench --metrics``.

Targets are standardised with the training part's mean and standard deviation; the checkpoint keeps
them, so the trained metric predicts in MOS units. Files are written through
:func:`aigiqa.files.atomic_write` (temporary file, fsync, rename). The loop uses the metric's public
methods only (``set_device``, ``model``, ``parameter_groups``, ``set_model``, ``save``,
``use_checkpoint`` …); it never imports :mod:`aigiqa.metrics.learned`, which imports it.
"""

from __future__ import annotations

import math
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aigiqa.databases.base import Database
from aigiqa.errors import MetricError
from aigiqa.evaluation import evaluate
from aigiqa.training.data import RecordDataset, make_loader
from aigiqa.training.losses import make_loss
from aigiqa.training.persist import (
    MODEL_FILE,
    RESULT_FILE,
    STATE_FILE,
    bench_spec,
    finish,
    resume,
    run_id,
    save_model,
    save_state,
)
from aigiqa.training.protocol import run_data

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from aigiqa.metrics.learned.base import LearnedMetric

__all__ = ["MODEL_FILE", "RESULT_FILE", "STATE_FILE", "TrainConfig", "TrainResult",
           "bench_spec", "predict", "train"]


@dataclass
class TrainConfig:
    """Settings of one training run (all but ``num_workers``/``progress``/``device`` change it)."""

    split: str = "official"
    seed: int = 0
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: str = "mse"
    val_fraction: float = 0.15
    target: str | None = None
    allow_names: bool = False
    num_workers: int = 0
    device: str = "auto"
    amp: bool = True
    cache_features: bool = True
    out: str | Path | None = None
    resume: bool = True
    progress: bool = True

    def check(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs={self.epochs} (need >= 1)")
        if self.batch_size < 2:
            problems.append(f"batch_size={self.batch_size} (need >= 2)")
        if not self.lr > 0:
            problems.append(f"lr={self.lr} (need > 0)")
        if self.num_workers < 0:
            problems.append(f"num_workers={self.num_workers} (need >= 0)")
        if not re.match(r"^(auto|cpu|cuda(:\d+)?)$", str(self.device)):
            problems.append(f"device={self.device!r} (auto, cpu, cuda or cuda:N)")
        if problems:
            raise MetricError("invalid training settings", problems)
        make_loss(self.loss)


@dataclass
class TrainResult:
    """What a run gives: best epoch, validation/test metrics, files written (if ``out``)."""

    best_epoch: int
    val: dict[str, Any]
    test: dict[str, Any] | None
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    result_file: Path | None = None
    bench_spec: str = ""
    #: what :func:`aigiqa.training.protocol.describe` says: split, parts, name-blind, mapping
    protocol: dict[str, Any] = field(default_factory=dict)


def train(metric: LearnedMetric, database: Database, config: TrainConfig,
          test_database: Database | None = None) -> TrainResult:
    """Fine-tune ``metric`` on ``database``; the metric then scores with the best weights.

    ``test_database``: the database a ``cross:DB`` split tests on (:mod:`.protocol`)."""
    import torch

    if getattr(metric, "kind", None) != "learned":
        raise MetricError(f"metric {getattr(metric, 'name', metric)!r} is not trainable (kind "
                          f"{getattr(metric, 'kind', None)!r}); "
                          f"{getattr(metric, 'train_refusal', 'choose a learned metric')}")
    config.check()
    metric.pin_protocol()  # the checkpoint and its bench spec name the protocol validated with
    data = run_data(metric, database, config, test_database)
    records, truth, target = data.records, data.truth, data.target
    mean, std = float(truth["train"].mean()), float(truth["train"].std()) or 1.0
    if config.device != "auto":
        metric.set_device(config.device)
    device = metric.device
    out = Path(config.out) if config.out is not None else None
    run = run_id(metric, database, config, target)

    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        _seed_all(config.seed)
        model = metric.model
        model.to(device)
        groups = metric.parameter_groups(model, config.lr)
        optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        n_train = len(records["train"])
        drop_last = n_train > config.batch_size and n_train % config.batch_size == 1
        steps = (n_train // config.batch_size if drop_last
                 else math.ceil(n_train / config.batch_size))
        total = max(1, steps * config.epochs)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
        state = {"epoch": 0, "best_srcc": -math.inf, "best_epoch": -1, "history": []}
        best_state: dict[str, Any] | None = None
        if out is not None and config.resume and (out / STATE_FILE).is_file():
            state = resume(out, run, model, optimizer, scheduler)
            if (out / MODEL_FILE).is_file() and state["best_epoch"] >= 0:
                best_state = torch.load(out / MODEL_FILE, map_location="cpu",
                                        weights_only=True)["state_dict"]
        loss_fn = make_loss(config.loss)
        y_train = torch.tensor((truth["train"] - mean) / std, dtype=torch.float32)
        extractor = metric.feature_extractor(model) if config.cache_features else None
        cache = ({k: extract_features(metric, extractor, v, config) for k, v in records.items()}
                 if extractor is not None else None)
        train_set = RecordDataset(metric, records["train"], y_train.numpy(), train=True,
                                  seed=config.seed, allow_names=config.allow_names)
        use_amp = config.amp and device.type == "cuda"
        amp_dtype = (torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported()
                     else torch.float16)
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
        bar = _progress(config, total, state["epoch"] * steps)
        for epoch in range(state["epoch"], config.epochs):
            epoch_seed = config.seed * 100_003 + epoch
            _seed_all(epoch_seed)
            model.train()
            if cache is None:
                train_set.epoch = epoch
                batches = ((metric.forward, images.to(device), y, prompts)
                           for images, y, prompts, _ in make_loader(
                               train_set, config.batch_size, shuffle=True,
                               num_workers=config.num_workers, seed=epoch_seed,
                               drop_last=drop_last))
            else:
                batches = _feature_batches(metric, cache["train"], y_train, config.batch_size,
                                           epoch_seed, drop_last)
            losses = []
            for fn, x, y, prompts in batches:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    pred = fn(model, x, prompts).float()
                loss = loss_fn(pred, y.to(device))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                losses.append(float(loss.detach()))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}",
                                    val_srcc=f"{state['best_srcc']:.3f}")
            val_pred = _predict_part(metric, model, records, cache, "val", config, (mean, std))
            val_srcc = evaluate(val_pred, truth["val"], fit="none")["srcc"]
            val_loss = loss_fn(torch.tensor((val_pred - mean) / std, dtype=torch.float32),
                               torch.tensor((truth["val"] - mean) / std, dtype=torch.float32))
            state["history"].append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                                     "val_loss": float(val_loss), "val_srcc": float(val_srcc)})
            if val_srcc > state["best_srcc"]:
                state["best_srcc"], state["best_epoch"] = float(val_srcc), epoch + 1
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                if out is not None:
                    save_model(metric, best_state, out / MODEL_FILE, (mean, std),
                               {"epoch": epoch + 1, "val_srcc": float(val_srcc),
                                "protocol": data.protocol})
            state["epoch"] = epoch + 1
            if bar is not None:
                bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses):.4f}",
                                val_srcc=f"{val_srcc:.3f}")
            if out is not None:
                save_state(out / STATE_FILE, run, state, model, optimizer, scheduler)
        if bar is not None:
            bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        metric.set_model(model.eval(), (mean, std))  # the key follows the trained weights

        val_metrics = evaluate(
            _predict_part(metric, model, records, cache, "val", config, (mean, std)),
            truth["val"])
        test_metrics = (evaluate(
            _predict_part(metric, model, records, cache, "test", config, (mean, std)),
            truth["test"]) if len(records["test"]) >= 3 else None)
    finally:
        torch.use_deterministic_algorithms(previous)
    result = TrainResult(state["best_epoch"], val_metrics, test_metrics, state["history"],
                         protocol=data.protocol)
    if out is not None:
        finish(metric, database, config, target, records, result, out)
    return result


def predict(metric: LearnedMetric, model: torch.nn.Module, records: list, config: TrainConfig,
            affine: tuple[float, float]) -> np.ndarray:
    """Scores of ``records`` in target units (eval mode, no augmentation); (len(records),)."""
    import torch

    if not records:
        return np.zeros(0)
    dataset = RecordDataset(metric, records, None, train=False, allow_names=config.allow_names)
    loader = make_loader(dataset, max(config.batch_size, 1), shuffle=False,
                         num_workers=config.num_workers, seed=0)
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for images, _, prompts, _ in loader:
            out.append(metric.forward(model, images.to(device), prompts).float().cpu())
    return torch.cat(out).double().numpy() * affine[1] + affine[0]


def extract_features(metric: LearnedMetric, extractor: torch.nn.Module, records: list,
                     config: TrainConfig) -> tuple[torch.Tensor, list[str]]:
    """Output of the frozen ``extractor`` for every record (no augmentation), on the model's
    device, and the prompts; features (N, ...)."""
    import torch

    dataset = RecordDataset(metric, records, None, train=False, allow_names=config.allow_names)
    loader = make_loader(dataset, max(config.batch_size, 1), shuffle=False,
                         num_workers=config.num_workers, seed=0)
    device = next(extractor.parameters()).device
    feats, prompts = [], []
    extractor.eval()
    with torch.no_grad():
        for images, _, p, _ in loader:
            feats.append(extractor(images.to(device)).float())
            prompts += p
    if not feats:
        return torch.zeros(0), []
    return torch.cat(feats), prompts


def _feature_batches(metric: LearnedMetric, cached: tuple, y: torch.Tensor, batch_size: int,
                     seed: int, drop_last: bool):
    """Shuffled batches (forward_features, features, targets, prompts) of cached features."""
    import torch

    feats, prompts = cached
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        if drop_last and len(idx) < batch_size:
            break
        yield metric.forward_features, feats[idx], y[idx], [prompts[i] for i in idx.tolist()]


def _predict_part(metric: LearnedMetric, model, records: dict, cache: dict | None, part: str,
                  config: TrainConfig, affine: tuple[float, float]) -> np.ndarray:
    """Predictions for one part, from cached features when there are some."""
    import torch

    if cache is None:
        return predict(metric, model, records[part], config, affine)
    feats, prompts = cache[part]
    if not prompts:
        return np.zeros(0)
    model.eval()
    with torch.inference_mode():
        raw = torch.cat([metric.forward_features(model, feats[i:i + 256], prompts[i:i + 256])
                         .float().cpu() for i in range(0, len(prompts), 256)])
    return raw.double().numpy() * affine[1] + affine[0]


# Helpers -----------------------------------------------------------------------------------------
def _seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _progress(config: TrainConfig, total: int, done: int):
    if not config.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="train", unit="step", file=sys.stderr)

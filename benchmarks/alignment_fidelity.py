"""Equality of the alignment metrics with the official code, on seeded random weights.

Needs local copies of the official repositories (never committed), e.g.::

    python benchmarks/alignment_fidelity.py --refs /tmp/aigiqa_ref [--write-fixtures]

with ``REFS/HPSv2`` (tgxs002/HPSv2), ``REFS/CLIP-IQA/clip`` (IceClear/CLIP-IQA's
``mmedit/models/components/clip``: model.py, simple_tokenizer.py, bpe_simple_vocab_16e6.txt.gz)
and ``REFS/ImageReward`` (THUDM/ImageReward). For each metric the official model is built with
random weights, its state dict is saved and strict-loaded into ours, and both score the same images
and prompts with their own preprocessing; the largest absolute difference is printed.
``--write-fixtures`` records the official full-size models' key-and-shape lists in tests/fixtures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
PROMPTS = ["a red sports car on a mountain road", "Good photo.", " ".join(["castle"] * 90),
           "an oil painting of a cat wearing a hat", "x"]
TINY_H14 = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 80, "head_width": 40,
                   "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}


def images() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    shapes = [(224, 224), (300, 180), (97, 333), (512, 512), (257, 641)]
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


def shapes_of(state: dict) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state.items()}


def import_hpsv2(refs: Path):
    """The official hpsv2 open_clip fork, imported without the package's download helpers."""
    sys.path.insert(0, str(refs / "HPSv2"))
    pkg = types.ModuleType("hpsv2")
    pkg.__path__ = [str(refs / "HPSv2" / "hpsv2")]
    sys.modules["hpsv2"] = pkg
    try:
        import turtle  # noqa: F401  (the fork's factory.py imports it by accident)
    except ImportError:
        stub = types.ModuleType("turtle")
        stub.forward = None
        sys.modules["turtle"] = stub
    import hpsv2.src.open_clip as hps_open_clip

    return hps_open_clip


def check_hpsv2(refs: Path, write: bool, tmp: Path) -> float:
    oc = import_hpsv2(refs)
    from aigiqa.metrics.alignment.hpsv2 import HPSv2

    if write:
        cfg = oc.get_model_config("ViT-H-14")
        with torch.device("meta"):
            full = oc.CLIP(**cfg)
        (FIXTURES / "hpsv2_vit_h_14_state_dict.json").write_text(
            json.dumps(shapes_of(full.state_dict()), indent=0))
    cfg_file = tmp / "ViT-H-14-aigiqa-tiny.json"
    cfg_file.write_text(json.dumps(TINY_H14))
    oc.add_model_config(cfg_file)
    import open_clip

    open_clip.add_model_config(cfg_file)
    torch.manual_seed(0)
    model, _, preprocess_val = oc.create_model_and_transforms(
        "ViT-H-14-aigiqa-tiny", None, precision="fp32", device="cpu", jit=False,
        force_quick_gelu=False, force_custom_text=False, force_patch_dropout=False,
        force_image_size=None, pretrained_image=False, image_mean=None, image_std=None,
        light_augmentation=True, aug_cfg={}, output_dict=True, with_score_predictor=False,
        with_region_predictor=False)
    model.eval()
    ckpt = tmp / "hps.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    tokenizer = oc.get_tokenizer("ViT-H-14")
    ref = []
    with torch.no_grad():
        for im, prompt in zip(images(), PROMPTS, strict=True):  # as hpsv2.score, one pair a call
            out = model(preprocess_val(Image.fromarray(im)).unsqueeze(0), tokenizer([prompt]))
            ref.append(torch.diagonal(out["image_features"] @ out["text_features"].T)[0].item())
    ours = HPSv2(model="ViT-H-14-aigiqa-tiny", checkpoint=str(ckpt)).score(images(), PROMPTS)
    return report("hpsv2", ours, np.array(ref))


def check_clipiqa(refs: Path, tmp: Path) -> float:
    folder = refs / "CLIP-IQA" / "clip"
    pkg = types.ModuleType("clipiqa_ref")
    pkg.__path__ = [str(folder)]
    sys.modules["clipiqa_ref"] = pkg
    model_mod = _load("clipiqa_ref.model", folder / "model.py")
    tok_mod = _load("clipiqa_ref.simple_tokenizer", folder / "simple_tokenizer.py")
    import open_clip

    from aigiqa.metrics.alignment.clipiqa import CLIPIQA, MEAN, STD

    torch.manual_seed(0)
    ours_model = open_clip.create_model("RN50", pretrained=None, force_quick_gelu=True)
    with torch.no_grad():
        ours_model.logit_scale.fill_(np.log(100.0))
    # the official build_model stores weights in float16 (as OpenAI's checkpoints are): use
    # float16-representable random weights so that both models hold the same numbers
    state = {k: v.half().float() if v.is_floating_point() else v
             for k, v in ours_model.state_dict().items()}
    ckpt = tmp / "RN50.pt"
    torch.save(state, ckpt)
    official = model_mod.build_model(dict(torch.load(ckpt))).float().eval()  # strict load
    tok = tok_mod.SimpleTokenizer()
    ids = torch.zeros(2, 77, dtype=torch.long)
    for i, text in enumerate(["Good photo.", "Bad photo."]):  # clip.tokenize
        t = [tok.encoder["<|startoftext|>"], *tok.encode(text), tok.encoder["<|endoftext|>"]]
        ids[i, : len(t)] = torch.tensor(t)
    worst = 0.0
    for pos in (False, True):
        ref = []
        with torch.no_grad():
            for im in images():
                x = torch.from_numpy(im.astype(np.float32) / 255).permute(2, 0, 1)[None]
                x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
                logits, _ = official(x, ids, pos)
                ref.append(logits.softmax(dim=-1)[0, 0].item())
        ours = CLIPIQA(checkpoint=str(ckpt), positional_embedding=pos).score(images())
        worst = max(worst, report(f"clipiqa(positional_embedding={pos})", ours, np.array(ref)))
    return worst


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def report(name: str, ours: np.ndarray, ref: np.ndarray) -> float:
    diff = float(np.max(np.abs(ours - ref)))
    print(f"{name:<40} max |ours - official| = {diff:.2e}   (scores {np.round(ref, 4).tolist()})")
    return diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=Path, required=True)
    parser.add_argument("--write-fixtures", action="store_true")
    parser.add_argument("--only", default="hpsv2,clipiqa,imagereward,blipscore")
    args = parser.parse_args()
    only = set(args.only.split(","))
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        if "hpsv2" in only:
            worst = max(worst, check_hpsv2(args.refs, args.write_fixtures, Path(tmp)))
        if "clipiqa" in only:
            worst = max(worst, check_clipiqa(args.refs, Path(tmp)))
        if only & {"imagereward", "blipscore"}:
            sys.path.insert(0, str(Path(__file__).parent))
            from alignment_fidelity_blip import check_blip

            worst = max(worst, check_blip(args.refs, args.write_fixtures, Path(tmp), only))
    print(f"worst difference {worst:.2e} ({'OK' if worst <= 1e-4 else 'FAIL'}: tolerance 1e-4)")
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()

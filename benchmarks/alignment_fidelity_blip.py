"""ImageReward / BLIPScore against the official ImageReward code (see alignment_fidelity.py).

The official BLIP code (ImageReward/models/BLIP: med.py, vit.py) needs transformers 4.x, so it runs
in a separate interpreter (``--ref-python``, e.g. a scratch venv with transformers==4.44.2 and
fairscale) as ``python alignment_fidelity_blip.py --official OUT REFS``: it builds reduced-size
official models with seeded random weights, scores images and prompts with the official
``ImageReward.score`` / ``BLIPScore.score`` methods and saves weights, inputs and scores in OUT.
``check_blip`` (in the project's environment) loads those weights into ours and compares.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

PROMPTS = ["a red car on a road", "A CAT, sitting on the sofa!", " ".join(["tree"] * 60),
           "café at night", "x"]
WORDS = ("a red car on road cat sitting the sofa tree cafe cafe at night x photo of and with "
         "dog in blue sky").split()
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def synthetic_vocab() -> list[str]:
    """A small WordPiece vocabulary with BERT's special-token ids (0, 100-103)."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab += sorted(set(WORDS)) + letters + [f"##{c}" for c in letters] + list("!,.;") + ["é"]
    return list(dict.fromkeys(vocab))


def official(out: Path, refs: Path, full_fixture: bool) -> None:
    """Runs under the reference interpreter: build, score, save."""
    import torch
    from PIL import Image

    sys.path.insert(0, str(refs / "ImageReward"))
    import timm.models as tm

    if "timm.models.hub" not in sys.modules:  # blip.py imports a download helper it won't use
        hub = types.ModuleType("timm.models.hub")
        hub.download_cached_file = None
        sys.modules["timm.models.hub"] = hub
        tm.hub = hub
    root = refs / "ImageReward" / "ImageReward"
    for name, folder in (("ImageReward", root), ("ImageReward.models", root / "models"),
                         ("ImageReward.models.BLIP", root / "models" / "BLIP")):
        pkg = types.ModuleType(name)  # packages without their __init__ (it imports `clip`)
        pkg.__path__ = [str(folder)]
        sys.modules[name] = pkg
    from ImageReward.ImageReward import MLP, _transform
    from ImageReward.ImageReward import ImageReward as IR
    from ImageReward.models.BLIP.med import BertConfig, BertModel
    from ImageReward.models.BLIP.vit import VisionTransformer
    from ImageReward.models.BLIPScore import BLIPScore as BS
    from transformers import BertTokenizer

    out.mkdir(parents=True, exist_ok=True)
    vocab = synthetic_vocab()
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(out / "vocab.txt"))  # as init_tokenizer, from a local vocab
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})

    def blip(width: int, depth: int, heads: int, text_width: int, text_layers: int, vocab_size):
        cfg = BertConfig(vocab_size=vocab_size, hidden_size=text_width,
                         num_hidden_layers=text_layers, num_attention_heads=text_width // 64,
                         intermediate_size=4 * text_width, max_position_embeddings=512,
                         layer_norm_eps=1e-12, hidden_act="gelu", pad_token_id=0,
                         type_vocab_size=2, add_cross_attention=True)
        cfg.encoder_width = width
        b = torch.nn.Module()
        b.visual_encoder = VisionTransformer(img_size=224, patch_size=16, embed_dim=width,
                                             depth=depth, num_heads=heads)
        b.tokenizer = tokenizer
        b.text_encoder = BertModel(config=cfg, add_pooling_layer=False)
        b.vision_proj = torch.nn.Linear(width, 256)
        b.text_proj = torch.nn.Linear(text_width, 256)
        return b

    if full_fixture:  # BLIP_Pretrain(vit='large') + MLP(768), as ImageReward builds it
        ir = torch.nn.Module()  # (on CPU: the official ViT calls .item() while it is built)
        ir.blip = blip(1024, 24, 16, 768, 12, 30524)
        ir.mlp = MLP(768)
        shapes = {k: list(v.shape) for k, v in ir.state_dict().items()}
        (out / "imagereward_state_dict.json").write_text(json.dumps(shapes, indent=0))

    torch.manual_seed(0)
    n_vocab = len(tokenizer)
    reward = IR.__new__(IR)
    torch.nn.Module.__init__(reward)
    reward.device = "cpu"
    reward.blip = blip(128, 2, 2, 128, 2, n_vocab)
    reward.preprocess = _transform(224)
    reward.mlp = MLP(128)
    with torch.no_grad():
        for layer in reward.mlp.layers:  # the official init (std 1/129 here) gives ~constant
            if isinstance(layer, torch.nn.Linear):  # rewards: use unit-gain weights instead
                layer.weight.normal_(0, layer.in_features ** -0.5)
                layer.bias.normal_(0, 0.1)
    reward.mean, reward.std = 0.16717362830052426, 1.0333394966054072
    reward.eval()
    score = BS.__new__(BS)
    torch.nn.Module.__init__(score)
    score.device = "cpu"
    score.blip = blip(128, 2, 2, 128, 2, n_vocab)
    score.preprocess = _transform(224)
    score.eval()

    rng = np.random.default_rng(7)
    paths = []
    for i, (h, w) in enumerate([(224, 224), (300, 180), (97, 333), (512, 512), (257, 641)]):
        path = out / f"image{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    with torch.no_grad():
        pairs = list(zip(PROMPTS, paths, strict=True))
        ir_scores = [reward.score(p, Image.open(path)) for p, path in pairs]
        bs_scores = [score.score(p, str(path)) for p, path in pairs]
    torch.save(reward.state_dict(), out / "ImageReward.pt")
    torch.save({"model": score.blip.state_dict()}, out / "model_large.pth")
    ids = tokenizer(PROMPTS, padding="max_length", truncation=True, max_length=35)["input_ids"]
    (out / "official.json").write_text(json.dumps(
        {"imagereward": ir_scores, "blipscore": bs_scores, "ids": ids}))


def check_blip(refs: Path, write: bool, tmp: Path, only: set[str],
               ref_python: str = "/tmp/refvenv/bin/python") -> float:
    """Run the official side in ``ref_python``, then compare ours; returns the worst difference."""
    from PIL import Image

    from aigiqa.metrics.alignment import _blip
    from aigiqa.metrics.alignment.blipscore import BLIPScore
    from aigiqa.metrics.alignment.imagereward import ImageReward

    out = tmp / "blip_official"
    cmd = [ref_python, __file__, "--official", str(out), str(refs)]
    if write:
        cmd.append("--full-fixture")
    subprocess.run(cmd, check=True)
    if write:
        (FIXTURES / "imagereward_state_dict.json").write_text(
            (out / "imagereward_state_dict.json").read_text())
    got = json.loads((out / "official.json").read_text())
    images = [np.asarray(Image.open(out / f"image{i}.png").convert("RGB")) for i in range(5)]
    tok = _blip.bert_tokenizer(out / "vocab.txt")
    ids, _ = _blip.tokenize(tok, PROMPTS)
    assert ids.tolist() == got["ids"], "token ids differ from the official BertTokenizer"
    print(f"{'bert tokenizer (5 prompts, max_length 35)':<40} ids equal")
    worst = 0.0
    if "imagereward" in only:
        ours = ImageReward(checkpoint=str(out / "ImageReward.pt"), vocab=str(out / "vocab.txt"))
        worst = max(worst, _report("imagereward", ours.score(images, PROMPTS),
                                   np.array(got["imagereward"])))
    if "blipscore" in only:
        ours = BLIPScore(checkpoint=str(out / "model_large.pth"), vocab=str(out / "vocab.txt"))
        worst = max(worst, _report("blipscore", ours.score(images, PROMPTS),
                                   np.array(got["blipscore"])))
    return worst


def _report(name: str, ours: np.ndarray, ref: np.ndarray) -> float:
    diff = float(np.max(np.abs(ours - ref)))
    print(f"{name:<40} max |ours - official| = {diff:.2e}   (scores {np.round(ref, 4).tolist()})")
    return diff


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--official":
        official(Path(sys.argv[2]), Path(sys.argv[3]), "--full-fixture" in sys.argv)
    else:
        sys.exit(__doc__)

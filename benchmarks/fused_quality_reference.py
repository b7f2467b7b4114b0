"""Equality check of ``fused-quality-alignment``'s network against the official SF-IQA code.

Not a test. The official code is NOT part of this project: put it in a scratch folder,

    git -C <SF-IQA clone> archive 73122a4 | tar x -C /tmp/sfiqa     # github.com/Travois/SF-IQA
    PYTHONPATH=src:tests python benchmarks/fused_quality_reference.py --official /tmp/sfiqa

What runs of the official code, unchanged: ``Net.__init__`` and ``Net.forward`` (``swin_forward``:
the stage pooling, position embedding, transformer and read-out; ``pick_forward``; ``ScoreModel``)
and the CLIP processor of its ``dataloader.collate_fn`` (``pretrained/processor``, with the PIL
backend: the CLIPImageProcessor of the transformers 4.38.2 SF-IQA pins; transformers 5 would
default to torchvision resizing, up to 0.015 off per pixel). Two things are
put in its place, because they cannot run here:

- the Swin-V2 backbone: the official ``swin_forward`` reads the stage tokens of timm 0.6.13
  (stage outputs *after* patch merging, as (B, L, C)) with raw ``.view`` calls into (B, C, H, W)
  maps, which fail on the installed timm (1.x keeps NHWC stages, merging at the start of a
  stage). A stand-in backbone hands the official code seeded random stage maps of the shapes
  its views expect (192×32², 384×16², 768×8², 768×8² for a 256² input); our network gets the
  same maps;
- PickScore_v1 (not on this machine): ``AutoModel.from_pretrained`` returns the tiny seeded
  CLIP of ``tests/tiny_weights.py`` (its ``get_*_features`` returning tensors, as the
  transformers 4.38.2 SF-IQA pins), which our metric reads as its ``clip=`` folder.

Our network then takes the official state dict (key names mapped), and both score the same
images and prompts: the official code with its processor's tensors, ours with our own
preprocessing. Printed: the largest absolute differences of the quality, the similarity and the
fused score (goal <= 1e-5).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

TOL = 1e-5
PROMPTS = ["a red car on the road", "a cat sleeping on a sofa", "a blue sky with clouds",
           "an astronaut riding a horse on the moon, highly detailed"]
SIZES = [(512, 512), (600, 900), (768, 640), (300, 420)]
#: the stage maps the official views expect for a 256×256 input
STAGES = [(192, 32), (384, 16), (768, 8), (768, 8)]


class StandInSwin(torch.nn.Module):
    """What ``swin_forward`` reads of timm's Swin-V2: ``patch_embed``, ``pos_drop``, ``layers``
    (each returns the next preset stage map) and ``head.in_features``."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = torch.nn.Identity()
        self.pos_drop = torch.nn.Identity()
        self.head = torch.nn.Linear(768, 1000)
        self.maps: list[torch.Tensor] = []
        self.layers = torch.nn.ModuleList(_Preset(self, i) for i in range(4))


class _Preset(torch.nn.Module):
    def __init__(self, owner: StandInSwin, index: int) -> None:
        super().__init__()
        self.owner, self.index = [owner], index  # a list: not a submodule (no cycle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.owner[0].maps[self.index].contiguous()


class Transformers4Clip(torch.nn.Module):
    """The CLIP model as transformers 4.38 (SF-IQA's pin) behaves: ``get_*_features`` return
    the projected embeddings (transformers 5 returns an output object holding them)."""

    def __init__(self, clip: torch.nn.Module) -> None:
        super().__init__()
        self.clip = clip
        self.logit_scale = clip.logit_scale

    def get_image_features(self, **inputs):
        return _tensor(self.clip.get_image_features(**inputs))

    def get_text_features(self, **inputs):
        return _tensor(self.clip.get_text_features(**inputs))


def _tensor(out):
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def official_net(folder: Path, clip: torch.nn.Module) -> torch.nn.Module:
    sys.path.insert(0, str(folder))
    import Net as official  # noqa: N813 - the official module's name

    official.swinv2_tiny_window16_256 = lambda pretrained=False: StandInSwin()
    official.AutoModel = types.SimpleNamespace(
        from_pretrained=lambda path: Transformers4Clip(clip))
    torch.manual_seed(0)
    return official.Net(current_path=str(folder)).eval()


def our_state(official_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official head's weights under our names."""
    out = {}
    for key, value in official_state.items():
        if key.startswith("transformer.encoder.layers."):
            out["encoder." + key[len("transformer.encoder.layers."):]] = value
        elif key.startswith(("fc.", "fc2.")):
            out[key] = value
        elif key.startswith("ScoreModel."):
            index = {"fc1": 0, "fc2": 2, "fc3": 4}[key.split(".")[1]]
            out[f"fusion.{index}.{key.split('.')[2]}"] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, default=Path("/work/scratch/sfiqa"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from transformers import AutoProcessor

    from aigiqa.metrics.learned._fusion_net import make_fusion_net
    from aigiqa.metrics.learned.fused_quality import FusedQualityAlignment
    from tiny_weights import hf_clip_folder

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        clip_dir = Path(tmp) / "pick"
        clip = hf_clip_folder(clip_dir, args.seed).float().eval()
        net = official_net(args.official, clip)
        ours = make_fusion_net(torch.nn.Identity(), [c for c, _ in STAGES], 16, 2, clip).eval()
        missing, unexpected = ours.load_state_dict(our_state(net.state_dict()), strict=False)
        assert not unexpected and all(k.startswith("clip.") for k in missing), (missing, unexpected)
        metric = FusedQualityAlignment(clip=str(clip_dir), device="cpu")

        rng = np.random.default_rng(args.seed)
        images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]
        generator = torch.Generator().manual_seed(args.seed)
        maps = [torch.randn(len(images), c, s, s, generator=generator) for c, s in STAGES]
        net.model.maps = maps
        # the PIL processor: transformers 4.38.2's CLIPImageProcessor (5.x defaults to torchvision)
        processor = AutoProcessor.from_pretrained(args.official / "pretrained" / "processor",
                                                  backend="pil")
        pil = [Image.fromarray(im) for im in images]
        image_inputs = processor(images=pil, padding=True, truncation=True, max_length=77,
                                 return_tensors="pt")
        text_inputs = processor(text=PROMPTS, padding=True, truncation=True, max_length=77,
                                return_tensors="pt")
        with torch.no_grad():
            img = torch.zeros(len(images), 3, 256, 256)
            q_official = net.swin_forward(img).squeeze(-1)
            s_official = net.pick_forward(image_inputs, text_inputs)
            official = net(img, image_inputs, text_inputs)
            pixels = torch.stack([metric.transform(im) for im in images])
            s_ours = metric.similarity(ours, metric.unpack(pixels)[1], PROMPTS)
            q_ours = ours.quality(maps)
            fused = ours(maps, s_ours)
    diffs = {"quality": (q_ours - q_official).abs().max().item(),
             "similarity": (s_ours - s_official).abs().max().item(),
             "score": (fused - official).abs().max().item()}
    print(f"official processor: {type(processor.image_processor).__name__}; "
          f"scores {official.numpy().round(5).tolist()}")
    for name, diff in diffs.items():
        print(f"max |ours - official| {name}: {diff:.3g}")
    worst = max(diffs.values())
    print("OK" if worst <= TOL else f"FAIL: {worst:.3g} > {TOL}")
    sys.exit(0 if worst <= TOL else 1)


if __name__ == "__main__":
    main()

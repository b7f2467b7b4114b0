"""Prompt-conditioned CLIP quality levels: the IPCE / LIQE model family (trainable).

Score of one image with prompt ``p`` and K level words ``w_1 … w_K`` (default IPCE's ``badly,
poorly, fairly, well, perfectly``): the K texts ``template.format(level=w_k, prompt=p)`` (default
``a photo that {level} matches '{prompt}'``) and the image's views are embedded by an open_clip
CLIP; ``logit = exp(logit_scale) · cos(view, text_k)``. Views, as the official IPCE code
(github.com/pf0607/IPCE, ``ImageDataset.py`` + ``do_batch_prompt``):

- the image as RGB, its sides brought to at least ``min_side`` (768; if either side is shorter, the
  shorter side becomes ``min_side``, bilinear, Pillow as ``transforms.Resize``), normalised with the
  OpenAI mean/std;
- the grid of ``S×S`` windows (S the model's input side, 224) with stride 48 when a side is
  ≥ 1024 pixels, else 32, in row-major order; at inference ``patches`` (15) of them at
  ``(N // patches) · i``, when training ``train_patches`` (8) drawn uniformly with replacement;
- the whole normalised image resized to S×S (bilinear, ``F.interpolate``, no antialias).

The patch logits are averaged and soft-maxed over the levels; with ``whole_image`` (default, as
IPCE) the soft-max of the whole-image view is averaged with it (``whole_image=false``: patches only,
as LIQE). The expected level ``E = Σ k·p_k`` is the quality; the raw output is ``4 (E − 1) /
(K − 1) − 2`` (in [−2, 2]: training standardises the MOS), and an untrained model or a released
checkpoint scores ``5 (E − 1) / (K − 1)``, IPCE's 0–5 scale; after ``aigiqa train`` the checkpoint
maps it to MOS units. Train with ``--loss l1`` and ``--lr 5e-6`` to follow IPCE (AdamW, fine-tune
all, ``logit_scale`` frozen).

Options: ``model`` (open_clip architecture, ViT-B-32; IPCE used ViT-L-14), ``quick_gelu``
(OpenAI's weights use QuickGELU), ``levels``, ``template``, ``patches``, ``train_patches``,
``min_side``, ``whole_image``, ``generator_prefix`` (below), ``freeze`` (``none``, ``text`` or
``image``: that tower is frozen; with a frozen image tower its features are computed once per
image in training), ``pretrained``
(``auto``: OpenAI's CLIP weights of the architecture when found locally — aigiqa assets, the
Hugging Face cache, ``~/.cache/clip`` — else random weights and a warning; ``none``: random),
``image_tower`` (``clip``, the CLIP's own; ``effnet-lite0``: EfficientNet-Lite0 with its ImageNet
weights and a linear projection in place of the CLIP's image tower, normalised as EfficientNet-Lite
— see :mod:`aigiqa.metrics.learned._clip_towers`; the text tower stays the CLIP's).
``checkpoint=`` reads our checkpoints, or an OpenAI-CLIP state dict (IPCE's training script saves
one under ``model_state_dict``; LIQE releases one for ViT-B/32), loaded strictly. The pf0607/IPCE
repository publishes no trained weights; the team's challenge repository
(woshidandan/Champion-Solution-for-CVPR-NTIRE-2024-Quality-Assessment-on-AIGC) links two ViT-L/14
state dicts on Google Drive (``nomodelname.pth``, ``modelname.pth``: not checked here), which its
final script scored with ``min_side=512`` and fused as ``q1 · q2 / 5``.

The second model reads the generator before the prompt: in that code (``ImageDataset.py``) its
text is the prompt ``image_name.split('_')[0] + ' ' + prompt`` put into the same template, e.g.
``a photo that badly matches 'SD1.5 a cat on a mat'``. ``generator_prefix`` (default ``none``)
makes this a model that reads names (``reads_names``): ``name`` prefixes the file name up to its
first ``_`` (IPCE's rule: ``LCM_SDXL_0001.png`` gives ``LCM``), ``generator`` the database's
generator id. The name and generator come from the caller through :meth:`model_text` (training
and ``aigiqa bench`` with ``--allow-names``; refused otherwise), never from a path here.

Peng et al., AIGC Image Quality Assessment via Image-Prompt Correspondence (IPCE), CVPR Workshops
(NTIRE) 2024; Zhang et al., Blind Image Quality Assessment via Vision-Language Correspondence: A
Multitask Learning Perspective (LIQE), CVPR 2023.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.learned._blocks import resize_shorter_tv
from aigiqa.metrics.learned._clip_towers import (
    IMAGE_TOWERS,
    LITE_MEAN,
    LITE_MODULES,
    LITE_STD,
    make_lite_tower,
)
from aigiqa.metrics.learned.base import LEARNED_DEFAULTS, LearnedMetric
from aigiqa.metrics.registry import register_metric

if TYPE_CHECKING:  # pragma: no cover
    import torch

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IPCE_LEVELS = "badly,poorly,fairly,well,perfectly"
IPCE_TEMPLATE = "a photo that {level} matches '{prompt}'"
#: Values of the ``generator_prefix`` option (what is put before the prompt).
PREFIXES = ("none", "name", "generator")
_OPENAI_ONLY = ("input_resolution", "context_length", "vocab_size")


def grid_stride(height: int, width: int) -> int:
    """IPCE's window stride: 48 pixels when a side is at least 1024, else 32."""
    return 48 if height >= 1024 or width >= 1024 else 32


def grid_windows(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """(top, left) of every size×size window of the stride grid, row-major (``unfold`` order)."""
    step = grid_stride(height, width)
    rows = range(0, height - size + 1, step)
    cols = range(0, width - size + 1, step)
    return [(top, left) for top in rows for left in cols]


def inference_windows(count: int, patches: int) -> list[int]:
    """Indices of the windows scored at inference: ``(count // patches) · i``."""
    return [(count // patches) * i for i in range(patches)]


def expected_level(logits: torch.Tensor, whole_image: bool) -> torch.Tensor:
    """E = Σ k·p_k (k = 1…K) from logits (B, V, K): the last view is the whole image when
    ``whole_image`` (its soft-max averaged with that of the mean patch logits), else all views are
    patches (soft-max of their mean logits)."""
    import torch

    patches = logits[:, :-1] if whole_image else logits
    probs = patches.mean(1).softmax(-1)
    if whole_image:
        probs = (probs + logits[:, -1].softmax(-1)) / 2
    k = torch.arange(1, logits.shape[-1] + 1, device=logits.device, dtype=probs.dtype)
    return (probs * k).sum(-1)


def image_features(model: torch.nn.Module, views: torch.Tensor) -> torch.Tensor:
    """Unit image embeddings (B, V, D) of views (B, V, 3, S, S)."""
    import torch.nn.functional as F

    b, v = views.shape[:2]
    return F.normalize(model.visual(views.flatten(0, 1)), dim=-1).view(b, v, -1)


def make_feature_extractor(model: torch.nn.Module) -> torch.nn.Module:
    """A module (B, V, 3, S, S) → unit image embeddings (B, V, D) sharing ``model.visual``."""
    from torch import nn

    class ViewFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = model.visual

        def forward(self, views: torch.Tensor) -> torch.Tensor:
            return image_features(self, views)

    return ViewFeatures()


@register_metric
class ClipPromptLevels(LearnedMetric):
    """CLIP image patches vs "a photo that {badly…perfectly} matches '<prompt>'": expected level.

    The model family of IPCE (NTIRE 2024 AIGIQA winner) and LIQE; see the module docstring.
    """

    name: ClassVar[str] = "clip-prompt-levels"
    needs_prompt: ClassVar[bool] = True
    lower_better: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ("torch", "open_clip")
    description: ClassVar[str] = (
        "open_clip CLIP: patches + whole image vs prompt-conditioned quality-level texts, "
        "expected level (IPCE/LIQE); train it")
    citation: ClassVar[str] = (
        "F. Peng, H. Fu, A. Ming, C. Wang, H. Ma, S. He, Z. Dou, S. Chen. AIGC Image Quality "
        "Assessment via Image-Prompt Correspondence. CVPR Workshops (NTIRE) 2024, pp. 6432-6441; "
        "W. Zhang, G. Zhai, Y. Wei, X. Yang, K. Ma. Blind Image Quality Assessment via "
        "Vision-Language Correspondence: A Multitask Learning Perspective. CVPR 2023")
    defaults: ClassVar[dict[str, Any]] = {
        **LEARNED_DEFAULTS, "batch_size": 8, "model": "ViT-B-32", "quick_gelu": True,
        "levels": IPCE_LEVELS, "template": IPCE_TEMPLATE, "patches": 15, "train_patches": 8,
        "min_side": 768, "whole_image": True, "freeze": "none", "pretrained": "auto",
        "generator_prefix": "none", "image_tower": "clip"}
    mean: ClassVar[tuple[float, float, float]] = OPENAI_MEAN
    std: ClassVar[tuple[float, float, float]] = OPENAI_STD
    #: an untrained model / a released checkpoint scores IPCE's 5 (E - 1) / (K - 1)
    untrained_affine: ClassVar[tuple[float, float]] = (2.5, 1.25)
    _unpicklable: ClassVar[tuple[str, ...]] = ("_tokenizer",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        problems = []
        if len(self.levels) < 2:
            problems.append(f"levels={o['levels']!r} (need at least 2 comma-separated words)")
        try:
            o["template"].format(level="x", prompt="y")
            if "{level}" not in o["template"] or "{prompt}" not in o["template"]:
                raise ValueError
        except (KeyError, IndexError, ValueError, AttributeError):
            problems.append(f"template={o['template']!r} (needs {{level}} and {{prompt}} and "
                            "no other braces)")
        for key in ("patches", "train_patches"):
            if int(o[key]) < 1:
                problems.append(f"{key}={o[key]} (need >= 1)")
        if o["freeze"] not in ("none", "text", "image"):
            problems.append(f"freeze={o['freeze']!r} (none, text or image)")
        if o["pretrained"] not in ("auto", "none"):
            problems.append(f"pretrained={o['pretrained']!r} (auto or none)")
        if o["generator_prefix"] not in PREFIXES:
            problems.append(f"generator_prefix={o['generator_prefix']!r} "
                            f"({', '.join(PREFIXES)})")
        if o["image_tower"] not in IMAGE_TOWERS:
            problems.append(f"image_tower={o['image_tower']!r} ({', '.join(IMAGE_TOWERS)})")
        if problems:
            raise MetricError(f"metric {self.name!r}: invalid options", problems)
        if o["image_tower"] == "effnet-lite0":
            self.mean, self.std = LITE_MEAN, LITE_STD  # type: ignore[misc]
        import open_clip

        config = open_clip.get_model_config(str(o["model"]))
        if config is None:
            raise MetricError(f"metric {self.name!r}: model={o['model']!r} is not an open_clip "
                              "architecture (open_clip.list_models())")
        self.embed_dim = int(config["embed_dim"])
        side = config["vision_cfg"]["image_size"]
        self.patch_size = int(side if isinstance(side, int) else side[0])
        if int(o["min_side"]) < self.patch_size:
            raise MetricError(f"metric {self.name!r}: min_side={o['min_side']} is smaller than "
                              f"the model's {self.patch_size}-pixel patches")
        self._tokenizer: Any = None
        #: an instance that prefixes the generator reads names (refused unless they are allowed)
        self.reads_names = o["generator_prefix"] != "none"

    @property
    def levels(self) -> list[str]:
        return [w.strip() for w in str(self.options["levels"]).split(",") if w.strip()]

    # Weights -------------------------------------------------------------------------------------
    def _openai_file(self) -> Path | None:
        """OpenAI's CLIP weights of the architecture if they are on this machine, else None."""
        from aigiqa.assets import find_asset
        from aigiqa.metrics.alignment._clip import OPENAI_FILES, OPENAI_HUB, openai_cache
        from aigiqa.metrics.alignment._common import hub_cached

        arch = str(self.options["model"]).removesuffix("-quickgelu")
        if self.options["pretrained"] != "auto" or arch not in OPENAI_FILES:
            return None
        found = [find_asset(OPENAI_FILES[arch].name), hub_cached(OPENAI_HUB[arch]),
                 *(p for p in openai_cache(arch) if p.is_file())]
        return next((Path(p) for p in found if p is not None), None)

    def required_modules(self) -> tuple[str, ...]:
        """open_clip, and with ``image_tower=effnet-lite0`` its architecture and weights."""
        lite = LITE_MODULES if not self.options["checkpoint"] else LITE_MODULES[:1]
        return (*self.requires, *(lite if self.options["image_tower"] != "clip" else ()))

    def default_weights_id(self) -> str:
        from aigiqa.digests import file_sha256
        from aigiqa.metrics.learned.backbones import lite_weights_file

        found = self._openai_file()
        clip = file_sha256(found) if found is not None else "random-init"
        if self.options["image_tower"] == "clip":
            return clip
        return f"{clip}:image_tower:{file_sha256(lite_weights_file(0, self.name))}"

    def build_model(self) -> torch.nn.Module:
        import open_clip

        from aigiqa.metrics.alignment._common import load_strict, read_state_dict

        arch = str(self.options["model"])
        model = open_clip.create_model(arch, pretrained=None,
                                       force_quick_gelu=bool(self.options["quick_gelu"]))
        if self.options["checkpoint"]:
            return self._with_image_tower(model, load_pretrained=False).float()
        found = self._openai_file()
        if found is not None:
            load_strict(model, self.convert_state_dict(read_state_dict(found)), found, self.name)
        elif self.options["pretrained"] == "auto":
            warnings.warn(f"metric {self.name!r}: OpenAI CLIP weights of {arch} not found "
                          "(aigiqa assets, Hugging Face cache, ~/.cache/clip); the model starts "
                          "from random weights (pretrained=none says so silently)", stacklevel=3)
        return self._with_image_tower(model, load_pretrained=True).float()

    def _with_image_tower(self, model: torch.nn.Module, load_pretrained: bool) -> torch.nn.Module:
        """``model`` with ``image_tower``'s tower in place of its own (``clip``: unchanged)."""
        if self.options["image_tower"] != "clip":
            model.visual = make_lite_tower(self.embed_dim, load_pretrained)
        return model

    def convert_state_dict(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """OpenAI-CLIP / open_clip names are ours: drop ``module.`` and OpenAI's int entries."""
        state = dict(state_dict)
        if state and all(k.startswith("module.") for k in state):
            state = {k[len("module."):]: v for k, v in state.items()}
        return {k: v for k, v in state.items() if k not in _OPENAI_ONLY}

    # Inputs --------------------------------------------------------------------------------------
    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Views (P + 1 or P, 3, S, S): selected grid windows, then the resized whole image."""
        import torch
        import torch.nn.functional as F

        from aigiqa.metrics.learned.base import to_tensor

        size, side = self.patch_size, int(self.options["min_side"])
        h, w = image.shape[:2]
        if h < side or w < side:
            image = resize_shorter_tv(image, side)
        full = to_tensor(image, self.mean, self.std)
        h, w = image.shape[:2]
        windows = grid_windows(h, w, size)
        count = int(self.options["patches"] if rng is None else self.options["train_patches"])
        if len(windows) < count:
            raise MetricError(f"metric {self.name!r}: a {w}x{h} image (after resizing) has "
                              f"{len(windows)} windows of {size} pixels, fewer than the {count} "
                              "patches asked for; lower patches/train_patches or raise min_side")
        picks = (inference_windows(len(windows), count) if rng is None
                 else rng.integers(0, len(windows), count).tolist())
        views = [full[:, t:t + size, s:s + size] for t, s in (windows[i] for i in picks)]
        if self.options["whole_image"]:
            views.append(F.interpolate(full[None], size=(size, size), mode="bilinear",
                                       align_corners=False)[0])
        return torch.stack(views)

    def model_text(self, prompt: str, name: str, generator: str) -> str:
        """The prompt with ``generator_prefix``'s generator before it, space-separated (IPCE's
        second model); the prompt alone with ``generator_prefix=none``, and an empty prompt stays
        empty (the image is then refused for want of a prompt, as without names)."""
        mode = self.options["generator_prefix"]
        if mode == "none" or not prompt.strip():
            return prompt
        prefix = (name.split("_", 1)[0] if mode == "name" else generator).strip()
        if not prefix:
            raise MetricError(f"metric {self.name!r}: generator_prefix={mode} but image "
                              f"{name!r} has no {'file name' if mode == 'name' else 'generator'}")
        return f"{prefix} {prompt}"

    def texts(self, prompts: Sequence[str] | None, n: int) -> list[str]:
        """The K level texts of each prompt, prompt-major (B·K)."""
        if prompts is None or len(prompts) != n or not all(p and p.strip() for p in prompts):
            raise MetricError(f"metric {self.name!r} needs a prompt for every image")
        template = str(self.options["template"])
        return [template.format(level=w, prompt=p) for p in prompts for w in self.levels]

    def text_features(self, model: torch.nn.Module, prompts: Sequence[str] | None,
                      n: int) -> torch.Tensor:
        """Unit text embeddings (B, K, D) of the level texts of each prompt."""
        import open_clip
        import torch.nn.functional as F

        if self._tokenizer is None:
            self._tokenizer = open_clip.get_tokenizer(str(self.options["model"]))
        tokens = self._tokenizer(self.texts(prompts, n)).to(model.logit_scale.device)
        return F.normalize(model.encode_text(tokens), dim=-1).view(n, len(self.levels), -1)

    # Scores --------------------------------------------------------------------------------------
    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        return self.forward_features(model, image_features(model, batch), prompts)

    def forward_features(self, model: torch.nn.Module, features: torch.Tensor,
                         prompts: Sequence[str] | None) -> torch.Tensor:
        """Raw scores (B,) from unit image embeddings (B, V, D): 4 (E − 1) / (K − 1) − 2."""
        import torch

        text = self.text_features(model, prompts, features.shape[0]).to(features.dtype)
        logits = model.logit_scale.exp() * torch.einsum("bvd,bkd->bvk", features, text)
        e = expected_level(logits.float(), bool(self.options["whole_image"]))
        return 4 * (e - 1) / (len(self.levels) - 1) - 2

    # Training ------------------------------------------------------------------------------------
    def parameter_groups(self, model: torch.nn.Module, lr: float) -> list[dict[str, Any]]:
        """Every parameter of the unfrozen tower(s) at ``lr``; ``logit_scale`` frozen (IPCE)."""
        freeze = self.options["freeze"]
        train = []
        for name, p in model.named_parameters():
            image = name.startswith("visual.")
            keep = name not in ("logit_scale", "logit_bias") and not (
                (freeze == "image" and image) or (freeze == "text" and not image))
            p.requires_grad_(keep)
            if keep:
                train.append(p)
        return [{"params": train, "lr": lr}]

    def feature_extractor(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """The image tower when it is frozen (``freeze=image``), else None."""
        return make_feature_extractor(model) if self.options["freeze"] == "image" else None


__all__ = ["ClipPromptLevels", "expected_level", "grid_windows", "inference_windows"]

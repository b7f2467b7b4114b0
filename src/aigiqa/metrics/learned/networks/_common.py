"""Small helpers shared by the networks: checkpoint key conversion and torchvision backbones."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torchvision.models import resnet50

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def strip_prefix(
    state: Mapping[str, torch.Tensor], prefix: str = "module."
) -> dict[str, torch.Tensor]:
    """Drop ``prefix`` (e.g. the ``module.`` that ``nn.DataParallel`` adds) from every key."""
    return {k.removeprefix(prefix): v for k, v in state.items()}


def resnet50_trunk() -> dict[str, nn.Module]:
    """torchvision ResNet-50 stem and stages (conv1, bn1, relu, maxpool, layer1-4), random init.

    Returned as named modules so that a network can hold them under the official key names.
    """
    net = resnet50(weights=None)
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return {name: getattr(net, name) for name in names}

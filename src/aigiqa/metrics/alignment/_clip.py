"""An open_clip CLIP model loaded strictly from a checkpoint, plus its tokenizer and transform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aigiqa.assets import catalog
from aigiqa.metrics.alignment._common import HubFile, load_strict, read_state_dict, resolve_weights

#: OpenAI CLIP checkpoints (TorchScript archives), from the asset catalog (the sha256 is the one
#: the official download code checks: it is part of the URL).
OPENAI_FILES = {arch: catalog.entry(f"clip/{arch}.pt") for arch in ("RN50", "ViT-B-32", "ViT-L-14")}

#: The same OpenAI weights as open_clip state dicts on the hub (open_clip's own cache).
OPENAI_HUB = {
    "RN50": HubFile("timm/resnet50_clip.openai", "open_clip_pytorch_model.bin"),
    "ViT-B-32": HubFile("timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin"),
    "ViT-L-14": HubFile("timm/vit_large_patch14_clip_224.openai", "open_clip_pytorch_model.bin"),
}


def openai_cache(arch: str) -> list[Path]:
    """Where the official ``clip`` package keeps its download: ``~/.cache/clip/<arch>.pt``."""
    return [Path.home() / ".cache" / "clip" / f"{arch}.pt"]


def openai_weights(metric: str, checkpoint: str, arch: str, default: str) -> Path:
    """The weight file of an OpenAI CLIP ``arch``: ``checkpoint`` if given, else the catalog's
    file (``default``'s for an architecture OpenAI did not release), the hub's open_clip copy
    or the ``clip`` package's cache (:func:`~aigiqa.metrics.alignment._common.resolve_weights`)."""
    return resolve_weights(
        metric,
        checkpoint,
        OPENAI_FILES.get(arch, OPENAI_FILES[default]).name,
        [OPENAI_HUB[arch]] if arch in OPENAI_HUB else [],
        openai_cache(arch),
    )


def build_open_clip(arch: str, path: Path, metric: str, quick_gelu: bool) -> Any:
    """open_clip model ``arch`` (random init, no download), strict-loaded from ``path``, eval, fp32.

    ``quick_gelu``: True for OpenAI's weights (trained with QuickGELU), False for LAION's.
    """
    import open_clip
    import torch

    with torch.random.fork_rng():  # keep the caller's RNG stream untouched by the random init
        model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=quick_gelu)
    load_strict(model, read_state_dict(path), path, metric)
    return model.float().eval()


def tokenizer(arch: str) -> Any:
    """open_clip's tokenizer for ``arch`` (the CLIP BPE vocabulary ships with open_clip).

    Prompts longer than the context (77 tokens with SOT/EOT) keep their first 75 tokens and end in
    EOT, as OpenAI's ``clip.tokenize(truncate=True)`` and open_clip do.
    """
    import open_clip

    return open_clip.get_tokenizer(arch)

"""Shared pieces of the vision-language metrics: weight lookup, state-dict loading, transforms.

Weights are looked up without any network access, in order: the metric's ``checkpoint`` option,
``$AIGIQA_HOME/assets/<name>`` and the aigiqa cache (``aigiqa.assets``), then the Hugging Face hub
cache (``$HF_HOME``/``$HF_HUB_CACHE``, as filled by ``huggingface_hub`` or open_clip) and the
OpenAI CLIP cache ``~/.cache/clip``. A missing file raises AssetError at metric creation.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigiqa import assets
from aigiqa.digests import remember_sha256
from aigiqa.errors import AssetError


@dataclass(frozen=True, slots=True)
class HubFile:
    """Where a weight file lives on the Hugging Face hub (for the cache lookup and the message)."""

    repo: str
    filename: str
    repo_type: str = "model"

    @property
    def url(self) -> str:
        prefix = "spaces/" if self.repo_type == "space" else ""
        return f"https://huggingface.co/{prefix}{self.repo}/resolve/main/{self.filename}"


def hub_cached(hub: HubFile) -> Path | None:
    """Path of ``hub`` in the local Hugging Face cache, or None; never touches the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers/open_clip
        return None
    found = try_to_load_from_cache(hub.repo, hub.filename, repo_type=hub.repo_type)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def resolve_weights(
    metric: str,
    checkpoint: str,
    asset_name: str,
    hub: Sequence[HubFile] = (),
    extra: Sequence[Path] = (),
) -> Path:
    """The weight file (or folder) of a metric: explicit option → aigiqa assets → hub cache.

    ``checkpoint`` is the metric's option ('' if unset); ``asset_name`` its entry in
    ``aigiqa.assets.MODEL_FILES``; ``hub`` the hub files that hold the same weights; ``extra``
    other local candidates (e.g. the OpenAI CLIP cache). Raises AssetError naming the file, its
    sha256 and where to get it.
    """
    if checkpoint:
        explicit = Path(checkpoint).expanduser()
        if not explicit.exists():
            raise AssetError(f"metric {metric!r}: checkpoint {explicit} does not exist")
        return explicit
    info = assets.asset_info(asset_name)
    tried: list[str] = []
    for folder in assets.search_dirs():
        tried.append(f"looked at {folder / info.name}")
        if (folder / info.name).is_file():  # checked against its sha256 (AssetError if it fails)
            found = assets.asset_path(asset_name)
            if info.sha256:  # verified: the key uses the registry's sha256 without rehashing
                remember_sha256(found, info.sha256)
            return found
    for candidate in extra:
        tried.append(f"looked at {candidate}")
        if candidate.is_file():
            return candidate
    for item in hub:
        tried.append(f"looked in the Hugging Face cache for {item.repo}/{item.filename}")
        found = hub_cached(item)
        if found is not None:
            return found
    sources = "; ".join([info.url, *(h.url for h in hub if h.url != info.url)])
    offline = " (HF_HUB_OFFLINE=1: nothing is downloaded)" if _offline() else ""
    raise AssetError(
        f"metric {metric!r}: file {info.filename} not found{offline}; "
        f"sha256 {info.sha256 or 'not recorded'}; get it from {sources} and pass "
        f"checkpoint=PATH, or put it at $AIGIQA_HOME/assets/{info.name}, or run "
        f"`aigiqa assets download {info.name}`",
        tried,
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def read_state_dict(path: Path) -> dict[str, Any]:
    """Tensors of a checkpoint: safetensors, a torch pickle (``state_dict`` unwrapped, ``module.``
    stripped) or an OpenAI TorchScript archive (its three int buffers dropped)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError…
            text = " ".join(str(exc).split())[:300]
            raise AssetError(f"{path}: not a readable safetensors file ({type(exc).__name__}: "
                             f"{text}); fix or replace the file") from exc
    try:
        with warnings.catch_warnings():  # a TorchScript archive: torch.load says it dispatches
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001 - TorchScript archives do not unpickle: try that
        try:
            with warnings.catch_warnings():  # "torch.jit.load is deprecated": still the format
                warnings.simplefilter("ignore", FutureWarning)
                obj = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception:  # noqa: BLE001
            raise AssetError(
                f"{path}: not a readable PyTorch checkpoint (weights-only load: "
                f"{str(first)[:300]}); aigiqa does not unpickle arbitrary objects"
            ) from first
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise AssetError(f"{path}: expected a state dict, found {type(obj).__name__}")
    state = dict(obj)
    for key in ("input_resolution", "context_length", "vocab_size"):
        state.pop(key, None)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_strict(
    module: Any, state: dict[str, Any], path: Path, metric: str, assign: bool = False
) -> None:
    """``module.load_state_dict(state, strict=True)``, with an AssetError naming the checkpoint."""
    try:
        module.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as exc:
        raise AssetError(
            f"metric {metric!r}: checkpoint {path} does not fit the model ({str(exc)[:800]})"
        ) from exc


def open_clip_transform(image_size: int) -> Callable[[Any], Any]:
    """OpenAI CLIP's test preprocessing (as open_clip builds it): shortest side to ``image_size``
    (bicubic, PIL), centre crop, RGB, [0, 1], normalise with the OpenAI mean/std."""
    import open_clip

    return open_clip.image_transform(image_size, is_train=False)

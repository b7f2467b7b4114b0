"""diffusers pipelines for a plan: found, loaded once, identified by the sha256 of their weights.

A pipeline is a diffusers folder (``model_index.json`` in it) or a Hugging Face hub id, read from
the local cache (``local_files_only=True``) unless a download is allowed. diffusers is imported
inside functions only: importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from aigiqa.errors import GenerateError

__all__ = ["LoadedPipeline", "library_versions", "load_pipeline", "locate", "require_generation",
           "tokens_dropped", "weights_sha256"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".gguf")
EXTRA = "pip install 'aigiqa[generate]'"


def require_generation() -> None:
    """GenerateError naming the extra to install when torch or diffusers is missing."""
    import importlib.util

    for name in ("torch", "diffusers", "transformers"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise GenerateError(f"generation needs {name}, which is not installed: {EXTRA}")


def _is_folder(pipeline: str) -> bool:
    return pipeline.startswith((".", "/", "~")) or Path(pipeline).expanduser().exists()


def locate(pipeline: str, generator: str, *, allow_download: bool = False) -> Path | None:
    """The local folder of ``pipeline`` (None: a hub id to download). GenerateError naming the
    generator, the pipeline and how to get it when it is not on this machine."""
    if _is_folder(pipeline):
        folder = Path(pipeline).expanduser()
        if not (folder / "model_index.json").is_file():
            what = "has no model_index.json" if folder.is_dir() else "not found"
            raise GenerateError(
                f"generator {generator!r}: pipeline folder {folder} {what}; save a diffusers "
                "pipeline there (pipeline.save_pretrained(folder)) or set its pipeline to a hub "
                "id in the generators file")
        return folder
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(pipeline, "model_index.json")
    except Exception as exc:  # invalid repo id
        raise GenerateError(f"generator {generator!r}: pipeline {pipeline!r} is neither a "
                            f"folder nor a hub id ({exc})") from None
    if isinstance(cached, str):
        return Path(cached).parent
    if allow_download:
        return None
    raise GenerateError(
        f"generator {generator!r}: pipeline {pipeline!r} is not in the Hugging Face cache; get "
        f"it with `huggingface-cli download {pipeline}` (or `hf download {pipeline}`), or rerun "
        "with --allow-download")


def weights_sha256(folder: Path) -> str:
    """sha256 over (relative path, sha256) of every weight file under ``folder``."""
    from aigiqa.digests import file_sha256

    files = sorted(p for p in Path(folder).rglob("*")
                   if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def library_versions() -> str:
    """``torch=… diffusers=… transformers=…`` of this environment."""
    parts = []
    for name in ("torch", "diffusers", "transformers"):
        try:
            parts.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name}=none")
    return " ".join(parts)


@dataclass
class LoadedPipeline:
    """A loaded pipeline and what identifies its outputs."""

    pipe: Any
    pipeline: str
    sha256: str
    scheduler: str
    device: Any


def load_pipeline(pipeline: str, generator: str, *, device: Any, dtype: str,
                  scheduler: str = "default", variant: str = "",
                  allow_download: bool = False) -> LoadedPipeline:
    """Load ``pipeline`` once on ``device`` in ``dtype`` (weights), with the named diffusers
    scheduler class (``default``: the pipeline's own). GenerateError naming the generator."""
    try:
        import diffusers
        import torch
    except ImportError as exc:
        raise GenerateError(f"generation needs diffusers and torch ({exc.name} is not "
                            f"installed): {EXTRA}") from None
    folder = locate(pipeline, generator, allow_download=allow_download)
    options: dict[str, Any] = {"torch_dtype": getattr(torch, dtype)}
    if variant:
        options["variant"] = variant
    source = str(folder) if folder is not None else pipeline
    try:
        with warnings.catch_warnings():  # newer diffusers name torch_dtype dtype; both work
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            pipe = diffusers.DiffusionPipeline.from_pretrained(
                source, local_files_only=not allow_download, **options)
    except (OSError, ValueError) as exc:
        raise GenerateError(f"generator {generator!r}: pipeline {pipeline!r} does not load "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if scheduler and scheduler != "default":
        cls = getattr(diffusers, scheduler, None)
        if cls is None or not hasattr(cls, "from_config"):
            raise GenerateError(f"generator {generator!r}: scheduler {scheduler!r} is not a "
                                "diffusers scheduler class (e.g. DPMSolverMultistepScheduler)")
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if folder is None:
        from huggingface_hub import try_to_load_from_cache

        folder = Path(str(try_to_load_from_cache(pipeline, "model_index.json"))).parent
    return LoadedPipeline(pipe=pipe, pipeline=pipeline, sha256=weights_sha256(folder),
                          scheduler=type(pipe.scheduler).__name__, device=device)


def tokens_dropped(pipe: Any, prompts: list[str]) -> list[int]:
    """Per prompt, the tokens a pipeline's text encoders will not see: diffusers truncates a
    prompt to each tokenizer's ``model_max_length`` (77 for the CLIP encoders) with a warning
    only; this counts them (the largest over the pipeline's tokenizers, 0 when it fits)."""
    dropped = [0] * len(prompts)
    for attr in ("tokenizer", "tokenizer_2", "tokenizer_3"):
        tokenizer = getattr(pipe, attr, None)
        limit = getattr(tokenizer, "model_max_length", None)
        if tokenizer is None or not isinstance(limit, int) or limit > 100_000:
            continue
        lengths = [len(ids) for ids in tokenizer(list(prompts), truncation=False).input_ids]
        dropped = [max(d, n - limit) for d, n in zip(dropped, lengths, strict=True)]
    return dropped

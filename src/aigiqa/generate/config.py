"""Generators files (TOML) and prompt files: read, checked, every fault named.

A generators file has one table per generator::

    [generators.SD1.5]                      # the generator's name (quoted if it has a dot)
    prefix = "SD1.5"                        # images are <prefix>_<NNNN>.png
    pipeline = "stable-diffusion-v1-5/stable-diffusion-v1-5"   # hub id or diffusers folder
    count = 1000
    steps = [50, 25, 12]                    # values, drawn in proportion to steps_weights
    steps_weights = [2, 1, 1]               # optional (default: equal)
    cfg = [7.5]                             # optional cfg_weights
    sizes = ["512x512"]                     # "WxH", multiples of 8; optional sizes_weights
    scheduler = "DPMSolverMultistepScheduler"   # optional diffusers class (default: the model's)
    negative_prompt = ""                    # optional
    dtype = "float16"                       # optional (float32 | bfloat16 | float16)
    variant = "fp16"                        # optional weights variant of from_pretrained
    external = false                        # true: no open weights (planned, not generated)
    note = "…"                              # optional free text (ignored)
    [generators.SD1.5.kwargs]               # optional extra keyword arguments of the call
    eta = 0.0

A relative pipeline folder is relative to the generators file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigiqa.devices import DTYPES
from aigiqa.errors import GenerateError

__all__ = ["GeneratorSpec", "read_generators", "read_prompts", "parse_size", "PRESETS"]

PRESETS = Path(__file__).parent / "presets"
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*(?:_[A-Za-z][A-Za-z0-9.\-]*)*$")
_KEYS = {"prefix", "pipeline", "count", "steps", "steps_weights", "cfg", "cfg_weights", "sizes",
         "sizes_weights", "scheduler", "negative_prompt", "dtype", "variant", "external",
         "kwargs", "note"}


@dataclass(frozen=True)
class GeneratorSpec:
    """One generator of a generators file (see the module docstring)."""

    name: str
    prefix: str
    pipeline: str
    count: int
    steps: tuple[int, ...]
    steps_weights: tuple[float, ...]
    cfg: tuple[float, ...]
    cfg_weights: tuple[float, ...]
    sizes: tuple[tuple[int, int], ...]
    sizes_weights: tuple[float, ...]
    scheduler: str = ""
    negative_prompt: str = ""
    dtype: str = ""
    variant: str = ""
    external: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)


def parse_size(text: str, where: str) -> tuple[int, int]:
    """``"WxH"`` → (W, H), both positive multiples of 8; GenerateError naming ``where``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not match:
        raise GenerateError(f"{where}: size {text!r} is not WxH (e.g. \"512x512\")")
    w, h = int(match.group(1)), int(match.group(2))
    if w <= 0 or h <= 0 or w % 8 or h % 8:
        raise GenerateError(f"{where}: size {text!r}: width and height must be positive "
                            "multiples of 8 (the autoencoder's factor); e.g. "
                            f"\"{max(8, w - w % 8)}x{max(8, h - h % 8)}\"")
    return w, h


def _values(table: dict, key: str, where: str, kind: type, default: list | None = None) -> tuple:
    raw = table.get(key, default)
    if raw is None:
        raise GenerateError(f"{where}: {key} is required")
    if not isinstance(raw, list):
        raw = [raw]
    if not raw:
        raise GenerateError(f"{where}: {key} is empty")
    out = []
    for v in raw:
        if isinstance(v, bool) or not isinstance(v, int | float | str) or (
                kind is int and isinstance(v, float) and not v.is_integer()):
            raise GenerateError(f"{where}: {key} value {v!r} is not a {kind.__name__}")
        try:
            out.append(kind(v))
        except ValueError:
            raise GenerateError(f"{where}: {key} value {v!r} is not a {kind.__name__}") from None
    return tuple(out)


def _weights(table: dict, key: str, n: int, where: str) -> tuple[float, ...]:
    weights = _values(table, f"{key}_weights", where, float, [1.0] * n)
    if len(weights) != n:
        raise GenerateError(f"{where}: {key}_weights has {len(weights)} values for {n} {key}")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise GenerateError(f"{where}: {key}_weights must be >= 0 with a positive sum")
    return weights


def _spec(name: str, table: Any, where: str, base: Path) -> GeneratorSpec:
    if not isinstance(table, dict):
        raise GenerateError(f"{where}: must be a table of options")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise GenerateError(f"{where}: unknown option(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(_KEYS))}")
    prefix = str(table.get("prefix", name))
    if not _PREFIX.match(prefix):
        raise GenerateError(f"{where}: prefix {prefix!r} must be letters, digits, '.', '-' and "
                            "'_' (no '_<digits>' part, which would end a name)")
    external = bool(table.get("external", False))
    pipeline = str(table.get("pipeline", ""))
    if not pipeline and not external:
        raise GenerateError(f"{where}: pipeline is required (a diffusers folder or hub id), or "
                            "external = true for a generator without open weights")
    if pipeline and (pipeline.startswith((".", "/", "~")) or (base / pipeline).is_dir()):
        pipeline = str((base / Path(pipeline).expanduser()).resolve())
    count = table.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise GenerateError(f"{where}: count must be a positive integer, not {count!r}")
    steps = _values(table, "steps", where, int)
    if any(s < 1 for s in steps):
        raise GenerateError(f"{where}: steps must be >= 1, not {list(steps)}")
    cfg = _values(table, "cfg", where, float)
    sizes = tuple(parse_size(s, f"{where} sizes") for s in _values(table, "sizes", where, str))
    dtype = str(table.get("dtype", ""))
    if dtype and dtype not in DTYPES:
        raise GenerateError(f"{where}: dtype {dtype!r} is invalid; use {' or '.join(DTYPES)}")
    kwargs = table.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise GenerateError(f"{where}: kwargs must be a table")
    return GeneratorSpec(
        name=name, prefix=prefix, pipeline=pipeline, count=count,
        steps=steps, steps_weights=_weights(table, "steps", len(steps), where),
        cfg=cfg, cfg_weights=_weights(table, "cfg", len(cfg), where),
        sizes=sizes, sizes_weights=_weights(table, "sizes", len(sizes), where),
        scheduler=str(table.get("scheduler", "")),
        negative_prompt=str(table.get("negative_prompt", "")), dtype=dtype,
        variant=str(table.get("variant", "")), external=external, kwargs=dict(kwargs))


def read_generators(path: str | Path, only: list[str] | None = None) -> list[GeneratorSpec]:
    """The generators of a TOML file, in file order (``only``: these names, in this order).
    ``path`` may name a shipped preset instead (``aigiqa20k``: the 15 AIGIQA-20K generators).

    GenerateError naming the file and table for a syntax error, an unknown option or generator,
    a bad value, or two generators with one prefix.
    """
    path = Path(path)
    if not path.exists() and (PRESETS / f"{path}.toml").is_file():
        path = PRESETS / f"{path}.toml"  # a preset by name, e.g. "aigiqa20k"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        presets = ", ".join(sorted(p.stem for p in PRESETS.glob("*.toml")))
        raise GenerateError(f"{path}: generators file not found (or name a preset: "
                            f"{presets})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GenerateError(f"{path}: cannot read the generators file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise GenerateError(f"{path}: not valid TOML ({exc})") from None
    tables = data.get("generators")
    if not isinstance(tables, dict) or not tables:
        raise GenerateError(f"{path}: no [generators.NAME] table")
    specs = [_spec(n, t, f"{path} [generators.{n}]", path.parent) for n, t in tables.items()]
    seen: dict[str, str] = {}
    for spec in specs:
        other = seen.get(spec.prefix.lower())
        if other is not None:
            raise GenerateError(f"{path}: generators {other!r} and {spec.name!r} share the "
                                f"prefix {spec.prefix!r} (file names would clash); give each "
                                "its own prefix")
        seen[spec.prefix.lower()] = spec.name
    if only:
        by_name = {s.name: s for s in specs}
        unknown = [n for n in only if n not in by_name]
        if unknown:
            raise GenerateError(f"{path}: unknown generator(s) {', '.join(unknown)}; the file "
                                f"has {', '.join(by_name)}")
        specs = [by_name[n] for n in only]
    return specs


def read_prompts(path: str | Path) -> list[tuple[str, str]]:
    """(prompt, category) pairs of a prompt file, first occurrences only, in file order.

    A ``.txt`` file has one prompt a line (blank lines skipped); a csv/xlsx table (e.g. the
    AIGIQA-20K ``info_*`` files) has a ``prompt`` column and optionally ``category``.
    """
    from aigiqa.databases.tables import read_table, text_column

    path = Path(path)
    if not path.is_file():
        raise GenerateError(f"{path}: prompt file not found")
    pairs: list[tuple[str, str]] = []
    if path.suffix.lower() in (".csv", ".xlsx", ".xls", ".tsv"):
        try:
            table = read_table(path, ("prompt",), required=["prompt"], header=True)
        except Exception as exc:  # DatabaseError naming the file and its columns
            raise GenerateError(f"{path}: {exc}") from None
        problems: list[str] = []
        prompts = text_column(table, "prompt", problems, required=False)
        cats = text_column(table, "category", problems, required=False)
        pairs = [(p, c or "") for p, c in zip(prompts, cats, strict=True) if p]
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise GenerateError(f"{path}: cannot read the prompt file ({exc})") from None
        pairs = [(line.strip(), "") for line in lines if line.strip()]
    first: dict[str, str] = {}
    for prompt, category in pairs:
        first.setdefault(prompt, category)
    unique = list(first.items())
    if not unique:
        raise GenerateError(f"{path}: no prompt (one a line, or a 'prompt' column)")
    return unique

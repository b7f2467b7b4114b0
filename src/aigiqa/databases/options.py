"""Reader options given as text (``aigiqa bench --option key=value``), typed from the reader.

Each value is converted to the type the reader's signature declares for that keyword:

- ``str`` / ``Path``: the text as given; ``int``, ``float``: ``8``, ``2.5``;
  ``bool``: ``true`` / ``false`` (or ``yes`` / ``no``, ``1`` / ``0``);
- ``tuple[float, float]``: ``1,5``; ``Sequence[str]``: ``steps,cfg``;
- ``Mapping[str, str]``: ``mos=MOS,alignment=align``;
- a union such as ``str | Sequence[str] | Mapping[str, str]``: the mapping form when the text
  holds ``=``, the list form when it holds ``,``, a number when it reads as one, else the text.

Unknown keys and values that do not convert are one-line errors naming the option.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aigiqa.errors import DatabaseError

#: Keywords every reader takes that are not reader options (given by their own CLI flags).
RESERVED = ("follow_symlinks",)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def reader_options(reader: Callable[..., Any]) -> dict[str, Any]:
    """The keyword options of a reader: name → declared type (``str`` when undeclared)."""
    try:
        hints = typing.get_type_hints(reader)
    except Exception:  # an annotation that does not evaluate: treat the options as text
        hints = {}
    out = {}
    for i, (name, param) in enumerate(inspect.signature(reader).parameters.items()):
        if i == 0 or name in RESERVED or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        out[name] = hints.get(name, str)
    return out


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _convert(text: str, kind: Any) -> Any:
    """``text`` as the type ``kind``; ValueError saying what was expected."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind in (str, Path, Any):
        return text
    if kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError("expected true or false")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if origin in (typing.Union, types.UnionType):
        return _convert_union(text, [a for a in args if a is not type(None)])
    if origin is tuple:
        parts = _split(text)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(p, args[0]) for p in parts)
        if len(parts) != len(args):
            numbers = all(a in (int, float) for a in args)
            example = "1,5" if numbers and len(args) == 2 else ",".join(
                str(i + 1) if a in (int, float) else "x" for i, a in enumerate(args))
            raise ValueError(f"expected {len(args)} {'numbers' if numbers else 'values'} "
                             f"separated by ',' (e.g. {example})")
        return tuple(_convert(p, a) for p, a in zip(parts, args, strict=True))
    if origin in (list, Sequence, Iterable) or kind in (list, Sequence):
        item = args[0] if args else str
        return [_convert(p, item) for p in _split(text)]
    if origin in (dict, Mapping) or kind in (dict, Mapping):
        value_kind = args[1] if len(args) == 2 else str
        out = {}
        for pair in _split(text):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ValueError("expected key=value pairs separated by ',' (e.g. mos=MOS,q=Q)")
            out[key.strip()] = _convert(value.strip(), value_kind)
        return out
    return text


def _convert_union(text: str, kinds: list[Any]) -> Any:
    def is_(kind: Any, *targets: Any) -> bool:
        return kind in targets or typing.get_origin(kind) in targets

    textual = any(k in (str, Path, Any) for k in kinds)
    ordered = sorted(kinds, key=lambda k: (
        0 if is_(k, dict, Mapping) else 1 if is_(k, tuple, list, Sequence) else
        2 if k in (int, float, bool) else 3))
    errors = []
    for kind in ordered:
        if textual and is_(kind, dict, Mapping):
            if "=" in text:  # meant as a mapping: its error, not another reading
                return _convert(text, kind)
            continue
        if textual and is_(kind, tuple, list, Sequence) and "," not in text:
            continue
        try:
            return _convert(text, kind)
        except ValueError as exc:
            errors.append(str(exc))
    if textual:
        return text
    raise ValueError(" or ".join(dict.fromkeys(errors)) or "unexpected value")


def parse_options(database: str, pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["key=value", …]`` → keyword options of the reader ``database``, typed from its
    signature (see module docstring). DatabaseError naming the option when a key is unknown,
    given twice or its value does not convert."""
    from aigiqa.databases.registry import get_reader

    known = reader_options(get_reader(database))
    options: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DatabaseError(f"--option {pair!r}: expected key=value (e.g. file=scores.csv)")
        if key in RESERVED:
            raise DatabaseError(f"--option {key}: use --{key.replace('_', '-')} instead")
        if key not in known:
            names = ", ".join(known) or "none"
            raise DatabaseError(f"--option {key}: {database} has no such option (options: {names})")
        if key in options:
            raise DatabaseError(f"--option {key}: given twice")
        try:
            options[key] = _convert(value.strip(), known[key])
        except ValueError as exc:
            raise DatabaseError(f"--option {key}={value!r}: {exc}") from None
    return options

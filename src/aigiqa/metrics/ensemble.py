"""``ensemble``: one metric whose score combines the scores of member metrics (inference only).

The members and the rule are read from a TOML file, ``ensemble:config=final.toml``::

    combine = "product"          # mean | sum | product
    scale = 5.0                  # the combined score is divided by it (default 1)

    [[member]]
    spec = "clip-prompt-levels:checkpoint=nomodelname.pt:min_side=512"

    [[member]]
    spec = "clip-prompt-levels:checkpoint=modelname.pt:min_side=512:generator_prefix=name"
    # weight = 1.0               # mean and sum only (default 1)

The rules, with member scores ``q_k`` and weights ``w_k`` (positive): ``mean`` is ``Σ w_k q_k /
Σ w_k``, ``sum`` is ``Σ w_k q_k``, ``product`` is ``Π q_k`` (monotone only for non-negative
scores: a negative member score is an error of that image); then ``/ scale``. The file above is
IPCE's final NTIRE 2024 submission, ``q1 · q2 / 5`` of a name-blind model and one that reads the
generator from the file name.

Each member is created through the one registry from its spec; a relative path in a member's
file option (``checkpoint=``, …) is read relative to the config file's folder when something of
that name is there (else as given: e.g. ``model=ViT-B-32`` names an architecture). A member may
not be an ensemble itself. All members must agree on the direction of their scores
(``lower_better``): a mix is refused, not flipped (the rules above have no sign that makes a
product of a lower-is-better and a higher-is-better score meaningful); the ensemble has theirs.

The ensemble needs a prompt when a member does, and reads names (``reads_names``: refused by
``aigiqa bench`` and ``aigiqa serve`` without ``--allow-names``) when a member does. It then gives
each member its own text: :meth:`Ensemble.model_text` packs the members' ``model_text`` into one
string (the text the runner hashes into the cache key and hands to ``score``), which
``score`` unpacks; such an ensemble must be given those texts, not bare prompts. The cache key
holds the members' keys, their weights, the rule and the scale, never the config's path. An
ensemble is not trained (``aigiqa train`` refuses it): train each member, then list their
checkpoints here.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigiqa.errors import AigiqaError, AssetError, MetricError, describe_error
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import metric_class, parse_metric_spec, register_metric

#: The combination rules (option ``combine`` of the config).
RULES = ("mean", "sum", "product")
_TOP_KEYS = ("combine", "scale", "member")
_MEMBER_KEYS = ("spec", "weight")
#: Marks a text packed by :meth:`Ensemble.model_text` (a JSON list of the members' texts follows).
PACKED = "\x1faigiqa-ensemble\x1f"


@register_metric
class Ensemble(Metric):
    """Combines the scores of member metrics (mean, sum or product, scaled): e.g. IPCE's final
    two-model submission. Members and rule in a TOML file (``config=``)."""

    name = "ensemble"
    kind = "ensemble"
    description = ("Member metrics' scores combined (mean, sum or product, divided by a scale), "
                   "members and rule in a TOML file (config=); inference only")
    citation = ("Peng et al., AIGC Image Quality Assessment via Image-Prompt Correspondence "
                "(IPCE), CVPR Workshops (NTIRE) 2024 (its final submission: q1·q2/5)")
    defaults: ClassVar[dict[str, Any]] = {"config": ""}
    file_options: ClassVar[tuple[str, ...]] = ("config",)
    train_refusal: ClassVar[str] = ("an ensemble is scored, not trained: train each member "
                                    "(aigiqa train --metric MEMBER), then list their "
                                    "checkpoints in the ensemble's config")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not self.options["config"]:
            raise MetricError(f"metric {self.name!r} needs config=FILE (a TOML file listing its "
                              "[[member]] specs and the combine rule)")
        self.config_path = Path(str(self.options["config"])).expanduser()
        table = _read_toml(self.config_path)
        where = f"ensemble config {self.config_path}"
        unknown = sorted(set(table) - set(_TOP_KEYS))
        if unknown:
            raise MetricError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                              f"{', '.join(_TOP_KEYS)}")
        self.combine = table.get("combine", "mean")
        if self.combine not in RULES:
            raise MetricError(f"{where}: combine = {self.combine!r} is not one of "
                              f"{', '.join(RULES)}")
        self.scale = _positive(table.get("scale", 1.0), f"{where}: scale")
        entries = table.get("member", [])
        if not isinstance(entries, list) or not entries:
            raise MetricError(f"{where}: no members; list each as a [[member]] table with "
                              "spec = \"name:opt=value\"")
        self.members: list[Metric] = []
        self.weights: list[float] = []
        for k, entry in enumerate(entries, 1):
            member, weight = self._member(entry, k, where)
            self.members.append(member)
            self.weights.append(weight)
        directions = {m.lower_better for m in self.members}
        if len(directions) > 1:
            lower = [m.spec for m in self.members if m.lower_better]
            raise MetricError(f"{where}: members disagree on the direction of their scores "
                              f"(lower is better for {', '.join(lower)} only); an ensemble "
                              "combines members of one direction")
        self.lower_better = directions.pop()  # type: ignore[misc]
        self.needs_prompt = any(m.needs_prompt for m in self.members)  # type: ignore[misc]
        self.reads_names = any(m.reads_names for m in self.members)

    def _member(self, entry: Any, k: int, where: str) -> tuple[Metric, float]:
        here = f"{where}: member {k}"
        if not isinstance(entry, dict):
            raise MetricError(f"{here} is not a table ([[member]] with spec = ...)")
        unknown = sorted(set(entry) - set(_MEMBER_KEYS))
        if unknown:
            raise MetricError(f"{here}: unknown key(s) {', '.join(unknown)}; allowed: "
                              f"{', '.join(_MEMBER_KEYS)}")
        spec = entry.get("spec")
        if not isinstance(spec, str) or not spec.strip():
            raise MetricError(f"{here} has no spec (spec = \"name:opt=value\")")
        if "weight" in entry and self.combine == "product":
            raise MetricError(f"{here}: weight is for combine = mean or sum, not product")
        weight = _positive(entry.get("weight", 1.0), f"{here}: weight")
        try:
            name, options = parse_metric_spec(spec)
            cls = metric_class(name)
            if cls.kind == self.kind:
                raise MetricError("a member cannot be an ensemble itself; list its members")
            for option in cls.file_options:
                value = options.get(option)
                if value and not Path(value).expanduser().is_absolute() and \
                        (self.config_path.parent / value).exists():
                    options[option] = str(self.config_path.parent / value)
            return cls(**options), weight
        except AigiqaError as exc:
            raise MetricError(f"{here} ({spec!r}): {exc}") from exc

    # Identity ------------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        """Cache key: the members' keys and weights, the rule and the scale."""
        blob = json.dumps({"members": [m.key for m in self.members], "weights": self.weights,
                           "combine": self.combine, "scale": self.scale}, sort_keys=True)
        return f"{self.name}@{self.version}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    def provenance(self) -> dict[str, Any]:
        """``members``: each member's spec and provenance (``reads_names`` when one reads
        names), which the benchmark's protocol columns combine."""
        members = [{"spec": m.spec, **m.provenance()} for m in self.members]
        return {**super().provenance(), "members": members}

    @property
    def resources(self) -> dict[str, float]:  # type: ignore[override]
        """Per resource the most any member asks for (the members run in one process)."""
        out: dict[str, float] = {}
        for member in self.members:
            for name, amount in member.resources.items():
                out[name] = max(out.get(name, 0.0), float(amount))
        return out

    # Scoring -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        for k, member in enumerate(self.members, 1):
            try:
                member.prepare()
            except AssetError as exc:
                raise AssetError(f"{self._who(k)} cannot load its files: {exc}") from exc
            except Exception as exc:
                raise MetricError(f"{self._who(k)} cannot load its model "
                                  f"({describe_error(exc)})") from exc

    def model_text(self, prompt: str, name: str, generator: str) -> str:
        """The members' texts packed into one string (each member that reads names gets its
        ``model_text``, the others the prompt); a blank prompt stays as it is (refused)."""
        if not self.reads_names or not prompt.strip():
            return prompt
        texts = [m.model_text(prompt, name, generator) if m.reads_names else prompt
                 for m in self.members]
        return PACKED + json.dumps(texts, ensure_ascii=False)

    def member_texts(self, prompts: Sequence[str] | None) -> list[list[str] | None]:
        """Each member's texts (None for a member without prompts): :meth:`model_text`'s
        packing undone for an ensemble that reads names, else the prompts themselves."""
        n = len(self.members)
        if prompts is None:
            return [None] * n
        columns: list[list[str]] = [[] for _ in range(n)]
        for i, text in enumerate(prompts):
            parts = [text] * n
            if self.reads_names and text.strip():
                parts = _unpack(text, n, f"metric {self.name!r}: image {i}")
            for column, part in zip(columns, parts, strict=True):
                column.append(part)
        return [c if m.needs_prompt else None for m, c in zip(self.members, columns,
                                                              strict=True)]

    def score_batch(self, images: list[np.ndarray], prompts: list[str] | None) -> np.ndarray:
        scores = []
        for k, (member, texts) in enumerate(zip(self.members, self.member_texts(prompts),
                                                strict=True), 1):
            try:
                values = member.score(images, texts)
            except AssetError as exc:
                raise AssetError(f"{self._who(k)}: {exc}") from exc
            except Exception as exc:
                raise MetricError(f"{self._who(k)} failed: {describe_error(exc)}") from exc
            bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
            if bad:
                raise MetricError(f"{self._who(k)} gave no finite score for image(s) {bad[:10]}")
            if self.combine == "product" and (values < 0).any():
                raise MetricError(f"{self._who(k)} gave a negative score (image(s) "
                                  f"{np.flatnonzero(values < 0)[:10].tolist()}); combine = "
                                  "product needs non-negative scores")
            scores.append(values)
        return combine(np.stack(scores), self.combine, self.weights, self.scale)

    def _who(self, k: int) -> str:
        return f"ensemble {self.config_path}: member {k} ({self.members[k - 1].spec!r})"


def combine(scores: np.ndarray, rule: str, weights: Sequence[float], scale: float) -> np.ndarray:
    """Member scores (M, B) → (B,) by ``rule`` (see the module docstring), divided by ``scale``."""
    w = np.asarray(weights, dtype=np.float64)[:, None]
    if rule == "mean":
        out = (w * scores).sum(0) / w.sum()
    elif rule == "sum":
        out = (w * scores).sum(0)
    elif rule == "product":
        out = np.prod(scores, axis=0)
    else:
        raise MetricError(f"combine rule {rule!r} is not one of {', '.join(RULES)}")
    return out / scale


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MetricError(f"metric 'ensemble': config file {path} not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MetricError(f"ensemble config {path}: not valid TOML ({exc})") from exc


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value <= 0:
        raise MetricError(f"{what} = {value!r} must be a positive number")
    return float(value)


def _unpack(text: str, n: int, where: str) -> list[str]:
    if not text.startswith(PACKED):
        raise MetricError(f"{where}: this ensemble reads names, so each image's text must be "
                          "ensemble.model_text(prompt, name, generator) (aigiqa bench and serve "
                          "with --allow-names give it), not a bare prompt")
    try:
        parts = json.loads(text[len(PACKED):])
    except json.JSONDecodeError:
        parts = None
    if not isinstance(parts, list) or len(parts) != n or \
            not all(isinstance(p, str) for p in parts):
        raise MetricError(f"{where}: its text is not {n} members' texts packed by model_text")
    return parts

"""The Metric contract: declarative metadata, typed options and batched ``score``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError

KINDS = ("baseline", "classical", "alignment", "learned")


class Metric:
    """Base class of every quality metric.

    Subclasses declare their metadata as class attributes and their options (with defaults, whose
    types are used to parse option strings) in ``defaults``; they implement ``score``.

    ``version`` is part of the cache key: bump it whenever the numbers a metric gives change.
    """

    name: ClassVar[str]
    kind: ClassVar[str] = "baseline"
    lower_better: ClassVar[bool] = False
    needs_prompt: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float] | None] = None
    citation: ClassVar[str] = ""
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    version: ClassVar[str] = "1"
    #: What one scoring process of this metric needs on a cluster (Ray backend): ``num_cpus``,
    #: ``num_gpus``, ``memory`` (bytes) or custom resources; empty means one CPU.
    resources: ClassVar[dict[str, float]] = {}
    #: Options whose value names a file or folder on this machine (weights, parameter files,
    #: vocabularies). A server never lets a client set them (``aigiqa serve``).
    file_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "none"
            raise MetricError(
                f"metric {self.name!r}: unknown option(s) {', '.join(unknown)}; allowed: {allowed}"
            )
        self.options: dict[str, Any] = {
            k: _coerce(self.name, k, v, self.defaults[k]) for k, v in options.items()
        }
        for k, v in self.defaults.items():
            self.options.setdefault(k, v)

    # The API ------------------------------------------------------------------------------------
    def score(
        self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None
    ) -> np.ndarray:
        """Score a batch of RGB uint8 images (H, W, 3); returns a float64 array of len(images)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Read every file the metric needs now instead of on first use (a server does this at
        start-up). Raises AssetError naming the file if one is missing or unreadable."""

    # Identity -----------------------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """``name`` or ``name:opt=value:…`` (non-default options only), as the CLI accepts."""
        changed = {k: v for k, v in sorted(self.options.items()) if v != self.defaults[k]}
        return ":".join([self.name, *(f"{k}={v}" for k, v in changed.items())])

    @property
    def key(self) -> str:
        """Cache key: name, version and a hash of all options."""
        blob = json.dumps(self.options, sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return f"{self.name}@{self.version}:{digest}"

    def check_batch(self, images: Sequence[np.ndarray], prompts: Sequence[str] | None) -> None:
        """Raise MetricError if prompts are missing for a prompt-aware metric or lengths differ."""
        if self.needs_prompt:
            if prompts is None:
                raise MetricError(f"metric {self.name!r} needs a prompt for every image")
            if len(prompts) != len(images):
                raise MetricError(
                    f"metric {self.name!r}: {len(images)} images but {len(prompts)} prompts"
                )
            missing = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p]
            if missing:
                raise MetricError(f"metric {self.name!r}: no prompt for image(s) {missing[:10]}")

    def __repr__(self) -> str:
        return f"<Metric {self.spec}>"


def _coerce(metric: str, key: str, value: Any, default: Any) -> Any:
    """Parse an option value (possibly a CLI string) to the type of its default."""
    if default is None or not isinstance(value, str) or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return type(default)(value)
    except ValueError:
        raise MetricError(
            f"metric {metric!r}: option {key}={value!r} is not a valid {type(default).__name__}"
        ) from None

"""The Metric contract: declarative metadata, typed options and batched ``score``."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigiqa.digests import file_sha256
from aigiqa.errors import MetricError
from aigiqa.metrics.inputs import as_batch, as_prompts, is_single_image, prompt_problem

KINDS = ("baseline", "classical", "alignment", "learned", "ensemble")


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
    #: vocabularies). A server never lets a client set them (``aigiqa serve``); the cache key
    #: holds the file's sha256, not its path.
    file_options: ClassVar[tuple[str, ...]] = ()
    #: Old option names still accepted (with a DeprecationWarning): old name → current name.
    deprecated_options: ClassVar[dict[str, str]] = {}
    #: Whether the metric reads file names or generator ids (through :meth:`model_text`); a
    #: metric may set it per instance from its options. Such a metric is refused unless names
    #: are allowed (``aigiqa train --allow-names``, ``aigiqa bench --allow-names``).
    reads_names: bool = False
    #: What ``aigiqa train`` says when given this metric (only ``kind = "learned"`` trains).
    train_refusal: ClassVar[str] = "choose a learned metric"

    def __init__(self, **options: Any) -> None:
        options = self._renamed(options)
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
        #: What the last ``fit`` found (trainable metrics; None until then).
        self.fit_result: Any = None

    def _renamed(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with deprecated names replaced by the current ones (warning once each)."""
        out = dict(options)
        for old, new in self.deprecated_options.items():
            if old not in out:
                continue
            if new in out:
                raise MetricError(f"metric {self.name!r}: give {new}= only ({old}= is its old "
                                  "name)")
            warnings.warn(f"metric {self.name!r}: option {old}= is deprecated; use {new}=",
                          DeprecationWarning, stacklevel=4)
            out[new] = out.pop(old)
        return out

    def model_text(self, prompt: str, name: str, generator: str) -> str:
        """The text the metric reads for one image when names are allowed (default: the prompt
        alone); a metric with :attr:`reads_names` builds it from the image's file name or
        generator id, which the caller passes (the metric never parses a path itself)."""
        return prompt

    def provenance(self) -> dict[str, Any]:
        """What produced the numbers beyond the options (learned metrics: the inference protocol
        and the training protocol of a checkpoint aigiqa wrote); here ``reads_names: True`` for a
        metric that reads names (it was given them: it is refused otherwise), else ``{}``."""
        return {"reads_names": True} if self.reads_names else {}

    # The API ------------------------------------------------------------------------------------
    def score(self, images: Any, prompts: Any = None) -> np.ndarray:
        """Score a batch; returns a float64 array (len(images),).

        ``images``: a list of paths, PIL images, numpy arrays (uint8, or floats in [0, 1]) or
        torch tensors ((C, H, W) in [0, 1]), or one 4-D array/tensor (see
        :mod:`aigiqa.metrics.inputs`). ``prompts``: one string per image, required by
        prompt-aware metrics (ignored by the others). Subclasses implement :meth:`score_batch`.
        """
        batch = as_batch(images, self.name)
        texts = self.check_prompts(len(batch), prompts)
        values = np.asarray(self.score_batch(batch, texts), dtype=np.float64)
        if values.shape != (len(batch),):
            raise MetricError(f"metric {self.name!r} returned {values.size} scores "
                              f"(shape {values.shape}) for {len(batch)} images")
        return values

    def __call__(self, image: Any, prompt: Any = None) -> float | np.ndarray:
        """``metric(image[, prompt])``: the score of one image as a float; a batch (a list, or a
        4-D array/tensor) gives the float64 array that :meth:`score` gives."""
        if is_single_image(image):
            return float(self.score([image], None if prompt is None else as_prompts(
                prompt, 1, self.name))[0])
        return self.score(image, prompt)

    def score_batch(self, images: list[np.ndarray], prompts: list[str] | None) -> np.ndarray:
        """Score RGB uint8 arrays (H, W, 3); ``prompts`` (checked, one per image) is given to
        prompt-aware metrics only. Returns float64 (len(images),). Implemented by subclasses."""
        raise NotImplementedError(f"metric {self.name!r} implements neither score_batch nor "
                                  "score")

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
        """Cache key: name, version and a hash of :meth:`key_options`."""
        blob = json.dumps(self.key_options(), sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return f"{self.name}@{self.version}:{digest}"

    def key_options(self) -> dict[str, Any]:
        """The options as the cache key sees them: a file-valued option that names a file is
        replaced by that file's sha256, so new weights at the same path are new scores and the
        same weights at another path are not."""
        out = dict(self.options)
        for option in self.file_options:
            value = out.get(option)
            if isinstance(value, str) and value:
                path = Path(value).expanduser()
                if path.is_file():
                    out[option] = "sha256:" + file_sha256(path)
        return out

    def check_prompts(self, n: int, prompts: Any) -> list[str] | None:
        """The prompts a batch of ``n`` images is scored with: for a prompt-aware metric one
        usable string per image (:func:`aigiqa.metrics.inputs.prompt_problem` is the rule),
        else None. MetricError naming the images without one."""
        if not self.needs_prompt:
            return None
        if prompts is None:
            raise MetricError(f"metric {self.name!r} needs a prompt for every image")
        texts = as_prompts(prompts, n, self.name)
        assert texts is not None
        missing = [i for i, p in enumerate(texts) if prompt_problem(p) is not None]
        if missing:
            raise MetricError(f"metric {self.name!r}: no prompt for image(s) {missing[:10]}")
        return texts  # type: ignore[return-value]

    def check_batch(self, images: Sequence[Any], prompts: Sequence[str] | None) -> None:
        """Raise MetricError if prompts are missing for a prompt-aware metric or lengths differ
        (:meth:`check_prompts`, for metrics that override :meth:`score`)."""
        self.check_prompts(len(images), prompts)

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

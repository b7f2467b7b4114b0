"""TorchMetric: the one base of every torch metric (the learned and the vision-language ones).

A torch metric is a :class:`~aigiqa.metrics.base.Metric` whose score is a torch model's output.
This base does, once for all of them: the model's life cycle (built on first use or by
:meth:`prepare`, on the chosen device, eval mode), batched inference under
``torch.inference_mode()`` and ``torch.autocast``, size-sorted chunks of bounded memory,
preparation of the next chunk in a background thread while an accelerator runs the current one,
the cache key (the sha256 of the weight files, never their path), pickling without the model,
Ray resources that follow the device, and one message naming the extra to install when a package
is missing.

Hooks (subclasses implement the first three):

``build_model() -> torch.nn.Module``
    The model, on the CPU in float32, with the weights it scores with (learned metrics: the
    default weights; their base loads ``checkpoint=`` after). Called once, under seed 0.
``transform(image) -> Tensor``
    One RGB uint8 image (H, W, 3) → the model's input for it. Runs in a background thread on an
    accelerator: use only the options and what :meth:`build_model` set up, no shared state.
``forward(model, batch, prompts) -> Tensor``
    Scores (B,) of a collated batch on the model's device; ``prompts``: B strings or None.
``collate(items)``
    Stack the transformed images (default ``torch.stack``; override for variable sizes).
``weight_files() -> list[Path]``
    Every file the weights are read from; their sha256 enter :attr:`key` (default: none).
``postprocess(raw) -> ndarray``
    float64 scores from the raw model outputs (default: unchanged).
``batch_group(image) -> tuple``
    Images of different groups never share a forward pass (default: one group; a metric that
    scores at full resolution groups by size).
``required_modules() -> tuple[str, ...]``
    Importable modules the metric needs (default :attr:`requires`); checked at creation.
``load_model()`` / ``on_device(device)``
    How the model is made from :meth:`build_model` (learned metrics load ``checkpoint=`` here)
    / what else moves with it to the device (e.g. cached text features).

Options every torch metric has (merge :data:`TORCH_DEFAULTS` into ``defaults``):

- ``device``: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``;
- ``dtype``: ``float32`` (default), ``bfloat16`` or ``float16``: inference under
  ``torch.autocast`` in that dtype (weights stay float32); a metric whose model must run in
  float32 lists only that in :attr:`dtypes`;
- ``batch_size``: images per forward pass (also bounded by :attr:`max_batch_pixels`);
- ``gpus``: the share of a GPU one Ray actor of the metric asks for when it runs on CUDA;
- ``checkpoint``: the weight file ('' = the metric's default lookup).

``device``, ``batch_size`` and ``gpus`` do not change the scores and stay out of :attr:`key`;
``dtype`` does and is in it; ``checkpoint`` enters by its content's sha256, not its path.
torch is imported inside methods only: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.devices import DTYPES, check_bf16, is_device, resolve_device
from aigiqa.digests import file_sha256
from aigiqa.errors import MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.torch_util import missing_modules, plan_chunks, prepared, to_device

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Options of every torch metric (merge into a subclass's ``defaults``).
TORCH_DEFAULTS: dict[str, Any] = {"checkpoint": "", "device": "auto", "dtype": "float32",
                                  "batch_size": 16, "gpus": 1.0}
#: What ``pip install`` gives the packages of the torch metrics.
EXTRA = "pip install 'aigiqa[learned]'"


class TorchMetric(Metric):
    """Base of every torch metric; see the module docstring for its hooks and options."""

    defaults: ClassVar[dict[str, Any]] = dict(TORCH_DEFAULTS)
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint",)
    #: Modules the metric imports (``required_modules``); all come with ``aigiqa[learned]``.
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    #: Inference dtypes the model allows.
    dtypes: ClassVar[tuple[str, ...]] = DTYPES
    #: Bound on (images x pixels of the largest) per forward pass; None: ``batch_size`` only.
    max_batch_pixels: ClassVar[int | None] = None
    #: Options that do not change the scores (left out of the key).
    runtime_options: ClassVar[tuple[str, ...]] = ("device", "batch_size", "gpus")
    #: File options that enter the key by their content's sha256 (:meth:`weight_files`).
    hashed_options: ClassVar[tuple[str, ...]] = ("checkpoint",)
    #: Attributes built with the model and dropped with it when pickled.
    _unpicklable: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        missing = missing_modules(self.required_modules())
        if missing:
            raise MetricError(f"metric {self.name!r} needs {', '.join(missing)}, which "
                              f"{'is' if len(missing) == 1 else 'are'} not installed: {EXTRA}")
        device, dtype = str(self.options["device"]), str(self.options["dtype"])
        if not is_device(device):
            raise MetricError(f"metric {self.name!r}: option device={device!r} is invalid; use "
                              "auto, cpu, cuda or cuda:N")
        if dtype not in self.dtypes:
            only = "" if self.dtypes == DTYPES else " (its model runs in float32 only)"
            raise MetricError(f"metric {self.name!r}: option dtype={dtype!r} is invalid; use "
                              f"{' or '.join(self.dtypes)}{only}")
        if int(self.options["batch_size"]) < 1:
            raise MetricError(f"metric {self.name!r}: option batch_size must be >= 1")
        if not 0 < float(self.options["gpus"]) <= 1:
            raise MetricError(f"metric {self.name!r}: option gpus must be in (0, 1]")
        self._model: torch.nn.Module | None = None
        self._weights_sha: str | None = None
        self._memory_only = False  # weights set in memory (set_weights_id): not in a pickle

    # Hooks ---------------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The model on the CPU, float32, with the weights it scores with (no download)."""
        raise NotImplementedError

    def transform(self, image: np.ndarray) -> Any:
        """One RGB uint8 image (H, W, 3) → the model's input for it."""
        raise NotImplementedError

    def forward(self, model: torch.nn.Module, batch: Any,
                prompts: Sequence[str] | None) -> torch.Tensor:
        """Raw scores (B,) of a collated batch."""
        raise NotImplementedError

    def collate(self, items: Sequence[Any]) -> Any:
        """Stack per-image inputs into a batch."""
        import torch

        return torch.stack(list(items))

    def weight_files(self) -> list[Path]:
        """Every file the weights are read from (their sha256 enter :attr:`key`)."""
        return []

    def postprocess(self, raw: np.ndarray) -> np.ndarray:
        """float64 scores (B,) from the raw outputs (B,)."""
        return raw

    def batch_group(self, image: np.ndarray) -> tuple:
        """Images of different groups never share a forward pass (default: one group)."""
        return ()

    def required_modules(self) -> tuple[str, ...]:
        """Modules this metric (with its options) imports."""
        return self.requires

    # Model life cycle ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Resolve the device and dtype and build the model now (AssetError if its files do not
        load, MetricError if the device or dtype is not available)."""
        self.model  # noqa: B018 - builds on first access

    @property
    def device(self) -> torch.device:
        """The device the model runs on (``auto`` resolved); MetricError if it is not there."""
        return resolve_device(str(self.options["device"]), f"metric {self.name!r}", MetricError)

    @property
    def dtype(self) -> torch.dtype:
        """The inference dtype (autocast; float32 means none)."""
        import torch

        return getattr(torch, str(self.options["dtype"]))

    @property
    def model(self) -> torch.nn.Module:
        """The model: built on first use, on :attr:`device`, in eval mode."""
        if self._model is None:
            if self._memory_only:
                raise MetricError(f"metric {self.name!r}: its weights were set in memory in "
                                  "another process and are not in this copy; save() them and "
                                  "use checkpoint=PATH")
            device = self.device
            self._check_dtype(device)
            model = self.load_model()
            try:
                self._model = model.to(device).eval()
                self.on_device(device)
            except BaseException:
                self._model = None
                raise
        return self._model

    def load_model(self) -> torch.nn.Module:
        """The model with the weights it scores with (default :meth:`new_model`)."""
        return self.new_model()

    def on_device(self, device: torch.device) -> None:
        """Called after the model moved to ``device``: move what else :meth:`build_model` made."""

    def new_model(self) -> torch.nn.Module:
        """:meth:`build_model` under seed 0 (random parts equal in every process), the caller's
        random state untouched."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return self.build_model()

    def set_device(self, device: str) -> None:
        """Run on ``device`` from now on (``auto``, ``cpu``, ``cuda`` or ``cuda:N``): the option
        changes (it is not in :attr:`key`) and a built model moves."""
        if not is_device(str(device)):
            raise MetricError(f"metric {self.name!r}: device={device!r} is invalid; use auto, "
                              "cpu, cuda or cuda:N")
        previous, self.options["device"] = self.options["device"], str(device)
        if self._model is not None:
            try:
                target = self.device
            except MetricError:
                self.options["device"] = previous  # the model stays where it is, and says so
                raise
            self._model.to(target)
            self.on_device(target)

    def _check_dtype(self, device: torch.device) -> None:
        check_bf16(device, self.dtype, f"metric {self.name!r}", MetricError)

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """``torch.inference_mode()`` and, unless float32, ``torch.autocast`` in :attr:`dtype`."""
        import torch

        with torch.inference_mode():
            if self.dtype == torch.float32:
                yield
            else:
                with torch.autocast(self.device.type, dtype=self.dtype):
                    yield

    # Scoring -------------------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> Any:
        """Transform and collate images (inference): the batch :meth:`forward` takes."""
        return self.collate([self.transform(im) for im in images])

    def score_batch(self, images: Sequence[np.ndarray],
                    prompts: Sequence[str] | None = None) -> np.ndarray:
        """Score RGB uint8 images (H, W, 3): float64 (len(images),), in the input order.

        Images are sorted by :meth:`batch_group` and size and cut into forward passes of at most
        ``batch_size`` images (and :attr:`max_batch_pixels`); on an accelerator the next pass is
        transformed in a background thread while the model runs.
        """
        model = self.model  # built outside inference mode: its weights stay trainable
        device = self.device
        chunks = plan_chunks([int(im.shape[0]) * int(im.shape[1]) for im in images],
                             [self.batch_group(im) for im in images],
                             int(self.options["batch_size"]), self.max_batch_pixels)

        def ready(indices: list[int]) -> Any:
            return to_device(self.preprocess([images[i] for i in indices]), device)

        raw = np.zeros(len(images), dtype=np.float64)
        with self.inference():
            for indices, batch in prepared(chunks, ready, overlap=self._overlap(device)):
                texts = [prompts[i] for i in indices] if prompts is not None else None
                out = self.forward(model, batch, texts)
                raw[indices] = out.float().reshape(-1).cpu().double().numpy()
        return np.asarray(self.postprocess(raw), dtype=np.float64)

    def _overlap(self, device: torch.device) -> bool:
        """Transform in a background thread: on an accelerator (on the CPU the same cores run
        the model, and the thread would only contend with it)."""
        return device.type != "cpu"

    # Identity ------------------------------------------------------------------------------------
    def weights_sha256(self) -> str:
        """Identity of the weights: the sha256 of :meth:`weight_files` (``default`` if none)."""
        if self._weights_sha is None:
            files = self.weight_files()
            self._weights_sha = ":".join(file_sha256(p) for p in files) if files else "default"
        return self._weights_sha

    def set_weights_id(self, identity: str | None) -> None:
        """The weights now in :attr:`model` are ``identity`` (e.g. a hash of weights trained in
        memory); None: the sha256 of :meth:`weight_files` again. The key follows."""
        self._weights_sha = identity
        self._memory_only = identity is not None

    @property
    def key(self) -> str:
        """Cache key: name, version, the options that change scores, the weights' sha256."""
        skip = set(self.runtime_options) | set(self.hashed_options)
        options = {k: v for k, v in self.options.items() if k not in skip}
        blob = json.dumps({"options": options, "weights": self.weights_sha256()},
                          sort_keys=True, default=str)
        return f"{self.name}@{self.version}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    @property
    def resources(self) -> dict[str, float]:  # type: ignore[override]
        """Ray resources of one actor: ``gpus`` of a GPU when the metric runs on CUDA
        (``device=cuda…``, or ``auto`` on a machine with CUDA), else one CPU."""
        device = str(self.options["device"])
        if device == "cpu":
            return {}
        if device == "auto":
            import torch

            if not torch.cuda.is_available():
                return {}
        return {"num_gpus": float(self.options["gpus"])}

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the model and what was built with it (worker processes, Ray)."""
        state = dict(self.__dict__)
        state["_model"] = None
        state.update({k: None for k in self._unpicklable})
        return state

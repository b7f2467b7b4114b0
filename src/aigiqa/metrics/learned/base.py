"""LearnedMetric: the base class of every trainable (torch) quality model.

A learned metric is a :class:`~aigiqa.metrics.base.Metric` with ``kind = "learned"`` whose score is
a torch model's output. Subclasses implement three hooks and may override a few more:

``build_model() -> torch.nn.Module`` (required)
    The architecture with its *default* weights (e.g. an ImageNet backbone from an installed
    package, an untrained head). Called under ``torch.manual_seed(0)``, so random parts are the
    same in every process. Never downloads anything.
``transform(image, rng=None) -> torch.Tensor`` (required)
    One RGB uint8 image (H, W, 3) → float tensor (C, h, w) ready for the model. ``rng`` is a
    ``numpy.random.Generator`` when training (random crops/flips may use it; it is seeded per
    sample, so augmentation is deterministic) and None at inference. It runs in DataLoader worker
    processes during training, so it must use only ``self.options`` (the model is not there).
``forward(model, batch, prompts) -> torch.Tensor``  (required)
    ``batch``: the collated output of ``transform`` (B, C, h, w) on the model's device;
    ``prompts``: list of B strings or None. Returns raw scores, shape (B,), float.

Optional hooks:

``collate(items) -> Tensor``: stack the per-image tensors (default ``torch.stack``; override for
    variable-size inputs). ``preprocess(images) -> Tensor`` = collate of transforms.
``convert_state_dict(sd) -> dict``: map a foreign checkpoint's keys/tensors to ours (ports of the
    official releases); the default returns ``sd`` unchanged.
``parameter_groups(model, lr) -> list[dict]``: optimizer groups (default: every trainable
    parameter at ``lr``); backbone regressors give the backbone a smaller or zero learning rate.
``default_weights_id() -> str``: identity of the default weights (enters the cache key).
``feature_extractor(model) -> Module | None`` and ``forward_features(model, features, prompts)``:
    when a metric trains only a head on a frozen extractor, the training loop computes the
    extractor's output once per image (no augmentation) and trains ``forward_features`` on it,
    which is many times faster on a CPU. Default: None (train end to end).

Options shared by all learned metrics (subclasses extend ``defaults`` with ``**LEARNED_DEFAULTS``):

- ``checkpoint``: path of a weight file ("" = the default weights). Accepted formats: a bare
  state dict with the official key names, or a dict holding one under ``state_dict``, ``model``,
  ``params`` or ``net`` (as the official releases and :meth:`save` write); loaded strictly (exact
  key names and shapes) after :meth:`convert_state_dict`.
- ``device``: ``auto`` (CUDA if available, else CPU), ``cpu`` or ``cuda``.
- ``batch_size``: images per forward pass in :meth:`score`.

Scores: ``score(images, prompts)`` returns ``raw * scale + offset`` where ``(offset, scale)`` is the
target normalisation stored in a checkpoint written by :mod:`aigiqa.training` (``(0, 1)``
otherwise), so a trained model predicts in MOS units.

Identity: :attr:`key` (the score-cache key) hashes the options *and* the sha256 of the checkpoint
file (or :meth:`default_weights_id`), so a retrained checkpoint at the same path never reuses cached
scores.

Training: :meth:`fit` delegates to :func:`aigiqa.training.train`. :meth:`save` writes
``{"state_dict": ..., "aigiqa": {...meta}}`` that ``checkpoint=`` reads back.

torch is imported lazily (inside methods): importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.errors import AssetError, MetricError
from aigiqa.metrics.base import Metric

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Options every learned metric has (merge into a subclass's ``defaults``).
LEARNED_DEFAULTS: dict[str, Any] = {"checkpoint": "", "device": "auto", "batch_size": 16}

#: Keys under which released checkpoints nest their state dict.
_NESTED_KEYS = ("state_dict", "model", "params", "net", "model_state_dict")

CHECKPOINT_FORMAT = "aigiqa-learned/1"


class CheckpointError(AssetError, MetricError):
    """A checkpoint file that cannot be read or does not fit the model. An AssetError (the
    metric's own file is at fault, not an image: a run ends), and a MetricError as before."""


class LearnedMetric(Metric):
    """Base of trainable torch metrics; see the module docstring for the hooks and options."""

    kind: ClassVar[str] = "learned"
    defaults: ClassVar[dict[str, Any]] = dict(LEARNED_DEFAULTS)
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint",)
    #: ImageNet normalisation used by :func:`to_tensor` unless a subclass changes it.
    mean: ClassVar[tuple[float, float, float]] = (0.485, 0.456, 0.406)
    std: ClassVar[tuple[float, float, float]] = (0.229, 0.224, 0.225)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["device"] not in ("auto", "cpu", "cuda"):
            raise MetricError(f"metric {self.name!r}: option device={self.options['device']!r} "
                              "is invalid; use auto, cpu or cuda")
        if int(self.options["batch_size"]) < 1:
            raise MetricError(f"metric {self.name!r}: option batch_size must be >= 1")
        ckpt = self.options["checkpoint"]
        if ckpt and not Path(ckpt).expanduser().is_file():
            raise MetricError(f"metric {self.name!r}: checkpoint file {ckpt} does not exist")
        self._model: torch.nn.Module | None = None
        self._target_affine: tuple[float, float] = (0.0, 1.0)
        self._weights_sha: str | None = None

    # Hooks ---------------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The architecture with its default weights (no download)."""
        raise NotImplementedError

    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """One RGB uint8 image (H, W, 3) → model input (C, h, w); ``rng`` set when training."""
        raise NotImplementedError

    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        """Raw scores of a collated batch, shape (B,)."""
        raise NotImplementedError

    def collate(self, items: Sequence[torch.Tensor]) -> torch.Tensor:
        """Stack per-image tensors into a batch (B, C, h, w)."""
        import torch

        return torch.stack(list(items))

    def convert_state_dict(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """Map a foreign checkpoint's state dict to this model's keys (default: unchanged)."""
        return state_dict

    def parameter_groups(self, model: torch.nn.Module, lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups; default every trainable parameter at ``lr``."""
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]

    def feature_extractor(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """The frozen part of ``model`` whose output training may cache (None: end to end).

        Call after :meth:`parameter_groups` (which decides what is frozen).
        """
        return None

    def forward_features(self, model: torch.nn.Module, features: torch.Tensor,
                         prompts: Sequence[str] | None) -> torch.Tensor:
        """Scores (B,) from the output of :meth:`feature_extractor` (B, ...)."""
        raise NotImplementedError

    def default_weights_id(self) -> str:
        """Identity of the default weights (file hash, package version…); enters :attr:`key`."""
        return "default"

    # Model life cycle ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Build the model and load its checkpoint now."""
        self.model  # noqa: B018 - builds on first access

    @property
    def device(self) -> torch.device:
        import torch

        choice = self.options["device"]
        if choice == "cuda" and not torch.cuda.is_available():
            raise MetricError(f"metric {self.name!r}: device=cuda but no CUDA device is available")
        if choice == "auto":
            choice = "cuda" if torch.cuda.is_available() else "cpu"
        return torch.device(choice)

    @property
    def model(self) -> torch.nn.Module:
        """The model (built on first use, checkpoint loaded, on :attr:`device`, eval mode)."""
        if self._model is None:
            self._model = self.new_model()
            try:
                if self.options["checkpoint"]:
                    self.load_checkpoint(self.options["checkpoint"])
                self._model.to(self.device).eval()
            except BaseException:
                self._model = None  # never score with default weights after a failed load
                raise
        return self._model

    def new_model(self) -> torch.nn.Module:
        """A freshly built model with default weights, deterministic (built under seed 0)."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return self.build_model()

    def set_model(self, model: torch.nn.Module,
                  target_affine: tuple[float, float] = (0.0, 1.0)) -> None:
        """Use ``model`` (e.g. just trained) and the target normalisation (offset, scale)."""
        self._model = model
        self._target_affine = (float(target_affine[0]), float(target_affine[1]))

    def load_checkpoint(self, path: str | Path, strict: bool = True) -> dict[str, Any]:
        """Load weights from ``path`` into :attr:`model`; returns the checkpoint's aigiqa metadata.

        Strict by default: a missing or unexpected key, or a shape mismatch, is a
        CheckpointError (an AssetError: a run ends instead of storing a failure for every image)
        naming the file and the keys.
        """
        import torch

        path = Path(path).expanduser()
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds
            raise CheckpointError(f"metric {self.name!r}: cannot read checkpoint {path} "
                                  f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
                                  "fix or replace the file") from exc
        meta: dict[str, Any] = {}
        state = blob
        if isinstance(blob, dict):
            meta = blob.get("aigiqa", {}) if isinstance(blob.get("aigiqa"), dict) else {}
            for key in _NESTED_KEYS:
                if isinstance(blob.get(key), dict):
                    state = blob[key]
                    break
        if not isinstance(state, dict):
            raise CheckpointError(f"metric {self.name!r}: checkpoint {path} holds no state dict")
        try:
            state = self.convert_state_dict(dict(state))
        except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
            raise CheckpointError(f"metric {self.name!r}: checkpoint {path} is not one of this "
                                  f"model ({type(exc).__name__}: {exc})") from exc
        if self._model is None:
            self._model = self.new_model()
        model = self._model
        own = model.state_dict()
        problems = []
        if strict:
            problems += [f"missing key {k}" for k in own if k not in state]
            problems += [f"unexpected key {k}" for k in state if k not in own]
        problems += [
            f"{k}: shape {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the model"
            for k, v in state.items()
            if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)
        ]
        if problems:
            raise CheckpointError(f"metric {self.name!r}: checkpoint {path} does not fit the "
                                  "model", problems)
        try:
            model.load_state_dict(state, strict=strict)
            affine = meta.get("target_affine", (0.0, 1.0))
            affine = (float(affine[0]), float(affine[1]))
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:  # a non-tensor value…
            raise CheckpointError(f"metric {self.name!r}: checkpoint {path} does not fit the "
                                  f"model ({' '.join(str(exc).split())[:300]})") from exc
        model.to(self.device).eval()
        self._target_affine = affine
        return meta

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write the model's weights (and metadata) atomically; loadable with ``checkpoint=``."""

        path = Path(path)
        info = {"format": CHECKPOINT_FORMAT, "metric": self.name, "options": _plain(self.options),
                "target_affine": list(self._target_affine), **(meta or {})}
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        atomic_torch_save({"state_dict": state, "aigiqa": info}, path)
        return path

    def fit(self, database: Any, split: str = "official", **train_options: Any) -> Any:
        """Fine-tune on ``database`` (see :func:`aigiqa.training.train`); returns its result."""
        from aigiqa.training import TrainConfig, train

        config = TrainConfig(split=split, **train_options)
        return train(self, database, config)

    # Scoring -------------------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Transform and collate images (inference, no augmentation); (B, C, h, w)."""
        return self.collate([self.transform(self._check_image(i, im)) for i, im in
                             enumerate(images)])

    def score(self, images: Sequence[np.ndarray],
              prompts: Sequence[str] | None = None) -> np.ndarray:
        """Score RGB uint8 images (H, W, 3); float64 array (len(images),), in target units."""
        import torch

        self.check_batch(images, prompts)
        model = self.model
        bs = int(self.options["batch_size"])
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), bs):
                chunk = images[start:start + bs]
                batch = self.preprocess(chunk).to(self.device)
                p = list(prompts[start:start + bs]) if prompts is not None else None
                out.append(self.forward(model, batch, p).float().reshape(-1).cpu())
        raw = torch.cat(out).double().numpy() if out else np.zeros(0)
        offset, scale = self._target_affine
        return raw * scale + offset

    def _check_image(self, index: int, image: Any) -> np.ndarray:
        if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3
                or image.shape[2] != 3):
            shape = getattr(image, "shape", type(image).__name__)
            raise MetricError(f"metric {self.name!r}: image {index} ({shape}) is not an RGB uint8 "
                              "array (H, W, 3)")
        return image

    # Identity ------------------------------------------------------------------------------------
    def weights_sha256(self) -> str:
        """sha256 of the checkpoint file, or :meth:`default_weights_id` without one."""
        if self._weights_sha is None:
            ckpt = self.options["checkpoint"]
            if ckpt:
                from aigiqa.assets import sha256_of

                self._weights_sha = sha256_of(Path(ckpt).expanduser())
            else:
                self._weights_sha = self.default_weights_id()
        return self._weights_sha

    @property
    def key(self) -> str:
        """Cache key: name, version and a hash of the options and the weights' sha256."""
        options = {k: v for k, v in self.options.items() if k not in ("device", "batch_size")}
        blob = json.dumps({"options": options, "weights": self.weights_sha256()},
                          sort_keys=True, default=str)
        return f"{self.name}@{self.version}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the model (DataLoader workers need only the options and transform)."""
        state = dict(self.__dict__)
        state["_model"] = None
        state.update({k: None for k in getattr(self, "_unpicklable", ())})
        return state


# Helpers shared by learned metrics ---------------------------------------------------------------
def resize_shorter(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB uint8 image so its shorter side is ``size`` (bicubic, Pillow)."""
    from PIL import Image

    h, w = image.shape[:2]
    if min(h, w) == size:
        return image
    scale = size / min(h, w)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(new, Image.Resampling.BICUBIC))


def crop(image: np.ndarray, size: int, rng: np.random.Generator | None) -> np.ndarray:
    """A size×size crop: centred when ``rng`` is None, else random; image at least that big."""
    h, w = image.shape[:2]
    if rng is None:
        top, left = (h - size) // 2, (w - size) // 2
    else:
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return image[top:top + size, left:left + size]


def to_tensor(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """RGB uint8 (H, W, 3) → normalised float32 tensor (3, H, W)."""
    import torch

    if not (image.flags.writeable and image.flags.c_contiguous):
        image = np.array(image, copy=True, order="C")
    x = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def resize_crop_tensor(image: np.ndarray, size: int, rng: np.random.Generator | None,
                       mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The usual IQA input: shorter side to ``size``, a size² crop (random + flip when training)."""
    img = crop(resize_shorter(image, size), size, rng)
    if rng is not None and rng.random() < 0.5:
        img = img[:, ::-1]
    return to_tensor(img, mean, std)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename (never a half file)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, int | float | str | bool) or v is None else str(v))
            for k, v in options.items()}

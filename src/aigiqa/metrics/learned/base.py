"""LearnedMetric: the base class of every trainable (torch) quality model.

A learned metric is a :class:`~aigiqa.metrics.torch_base.TorchMetric` with ``kind = "learned"``
that can be trained (:meth:`LearnedMetric.fit`, ``aigiqa train``) and loads checkpoints strictly.
The torch base gives it the device, dtype, batching, cache key and pickling; this class adds:

``build_model() -> torch.nn.Module`` (required)
    The architecture with its *default* weights (e.g. an ImageNet backbone from an installed
    package, an untrained head). Called under ``torch.manual_seed(0)``. Never downloads anything.
``transform(image, rng=None) -> torch.Tensor`` (required)
    One RGB uint8 image (H, W, 3) → float tensor ready for the model. ``rng`` is a
    ``numpy.random.Generator`` when training (random crops/flips may use it; it is seeded per
    sample, so augmentation is deterministic) and None at inference. It runs in DataLoader worker
    processes during training and in a background thread at inference, so it must use only
    ``self.options`` (the model is not there).
``forward(model, batch, prompts) -> torch.Tensor`` (required)
    Raw scores (B,) of the collated output of ``transform`` on the model's device.

Optional hooks: ``collate`` (variable-size inputs), ``convert_state_dict(sd)`` (ports of the
official releases' key names), ``parameter_groups(model, lr)`` (optimizer groups; backbones get a
smaller or zero learning rate), ``default_weights_id()`` (identity of the default weights: it
enters the cache key), ``feature_extractor(model)`` + ``forward_features(model, features,
prompts)`` (a frozen extractor whose output training computes once per image).

Options: :data:`LEARNED_DEFAULTS` (the torch options: ``checkpoint``, ``device``, ``dtype``,
``batch_size``, ``gpus``). ``checkpoint`` is a bare state dict with the official key names, or a
dict holding one under ``state_dict``, ``model``, ``params``, ``net`` or ``model_state_dict`` (as
the official releases and :meth:`save` write), loaded strictly after :meth:`convert_state_dict`.

Scores are ``raw * scale + offset``, ``(offset, scale)`` being the target normalisation a
checkpoint written by :mod:`aigiqa.training` stores (``(0, 1)`` otherwise): a trained model
predicts in MOS units. The key hashes the checkpoint file's sha256 (or
:meth:`default_weights_id`, or a hash of weights trained in memory), never its path.

torch is imported lazily (inside methods): importing this module is cheap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.digests import file_sha256
from aigiqa.errors import AssetError, MetricError
from aigiqa.metrics.torch_base import TORCH_DEFAULTS, TorchMetric
from aigiqa.metrics.torch_util import atomic_torch_save

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Options every learned metric has (merge into a subclass's ``defaults``).
LEARNED_DEFAULTS: dict[str, Any] = dict(TORCH_DEFAULTS)

#: Keys under which released checkpoints nest their state dict.
_NESTED_KEYS = ("state_dict", "model", "params", "net", "model_state_dict")

CHECKPOINT_FORMAT = "aigiqa-learned/1"


class CheckpointError(AssetError, MetricError):
    """A checkpoint file that cannot be read or does not fit the model. An AssetError (the
    metric's own file is at fault, not an image: a run ends), and a MetricError as before."""


class LearnedMetric(TorchMetric):
    """Base of trainable torch metrics; see the module docstring for the hooks and options."""

    kind: ClassVar[str] = "learned"
    defaults: ClassVar[dict[str, Any]] = dict(LEARNED_DEFAULTS)
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint",)
    #: ImageNet normalisation used by :func:`to_tensor` unless a subclass changes it.
    mean: ClassVar[tuple[float, float, float]] = (0.485, 0.456, 0.406)
    std: ClassVar[tuple[float, float, float]] = (0.229, 0.224, 0.225)
    #: Inference protocols (option ``protocol``): name → what it does; empty: the metric has one.
    protocols: ClassVar[dict[str, str]] = {}
    #: ``protocol=auto`` for known checkpoints: their sha256 or, where the released file's
    #: sha256 is not known here, their file name → protocol.
    checkpoint_protocols: ClassVar[dict[str, str]] = {}
    #: ``protocol=auto`` for the default weights and for any other checkpoint.
    default_protocol: ClassVar[str] = ""
    #: (offset, scale) of the scores without an aigiqa checkpoint (default weights, or a
    #: released checkpoint that stores none): a model whose raw output is not its score sets it
    untrained_affine: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        ckpt = self.options["checkpoint"]
        if ckpt and not Path(ckpt).expanduser().is_file():
            raise MetricError(f"metric {self.name!r}: checkpoint file {ckpt} does not exist")
        if self.protocols:
            chosen = str(self.options["protocol"]).strip().lower()
            if chosen != "auto" and chosen not in self.protocols:
                raise MetricError(f"metric {self.name!r}: option protocol={chosen!r} is not one "
                                  f"of auto, {', '.join(self.protocols)}")
            self.options["protocol"] = chosen
        self._target_affine: tuple[float, float] = self.untrained_affine
        #: what the last :meth:`fit` gave (an ``aigiqa.training.TrainResult``)
        self.fit_result: Any = None

    # Hooks ---------------------------------------------------------------------------------------
    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """One RGB uint8 image (H, W, 3) → model input (C, h, w); ``rng`` set when training."""
        raise NotImplementedError

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

    def inference_protocol(self) -> str:
        """The inference protocol in use ("" for a metric with one): the ``protocol`` option, or
        with ``auto`` the protocol :data:`checkpoint_protocols` gives the checkpoint (by sha256,
        then by file name), else :data:`default_protocol`."""
        if not self.protocols:
            return ""
        chosen = str(self.options["protocol"])
        if chosen != "auto":
            return chosen
        ckpt = self.options["checkpoint"]
        if ckpt:
            table = self.checkpoint_protocols
            found = table.get(self.weights_sha256()) or table.get(Path(ckpt).name)
            if found:
                return found
        return self.default_protocol

    def provenance(self) -> dict[str, Any]:
        """What produced this metric's numbers: ``inference_protocol`` and, for a checkpoint
        written by ``aigiqa train``, the ``training`` protocol stored in it (split, databases,
        targets, ``name_blind``); ``{}`` for released or default weights."""
        out: dict[str, Any] = {"inference_protocol": self.inference_protocol(),
                               **super().provenance()}
        ckpt = self.options["checkpoint"]
        if ckpt:
            import torch

            try:  # mmap: the tensors are not read
                blob = torch.load(Path(ckpt).expanduser(), map_location="cpu", mmap=True,
                                  weights_only=True)
            except Exception:  # noqa: BLE001 - a released, legacy-format file: no aigiqa meta
                blob = None
            meta = blob.get("aigiqa") if isinstance(blob, dict) else None
            if isinstance(meta, dict) and isinstance(meta.get("protocol"), dict):
                out["training"] = meta["protocol"]
        return out

    def pin_protocol(self) -> None:
        """Replace ``protocol=auto`` by the protocol it resolves to now (training does this, so
        that the checkpoint it writes and its bench spec name the protocol it validated with)."""
        if self.protocols:
            self.options["protocol"] = self.inference_protocol()

    @property
    def key(self) -> str:
        """The torch key, with the inference protocol in use mixed in (``auto`` resolves by the
        checkpoint's file name too, which the weights' sha256 does not see)."""
        key = super().key
        if not self.protocols:
            return key
        head, digest = key.rsplit(":", 1)
        mixed = hashlib.sha256(f"{digest}:{self.inference_protocol()}".encode()).hexdigest()
        return f"{head}:{mixed[:16]}"

    # Weights -------------------------------------------------------------------------------------
    def load_model(self) -> torch.nn.Module:
        """The default model, with ``checkpoint=`` loaded strictly when given."""
        model = self.new_model()
        if self.options["checkpoint"]:
            self._target_affine = self._load_into(model, Path(self.options["checkpoint"]))[1]
        return model

    def weight_files(self) -> list[Path]:
        ckpt = self.options["checkpoint"]
        return [Path(ckpt).expanduser()] if ckpt else []

    def weights_sha256(self) -> str:
        """sha256 of the checkpoint file, or :meth:`default_weights_id` without one."""
        if self._weights_sha is None:
            ckpt = self.options["checkpoint"]
            self._weights_sha = file_sha256(ckpt) if ckpt else self.default_weights_id()
        return self._weights_sha

    def load_checkpoint(self, path: str | Path, strict: bool = True) -> dict[str, Any]:
        """Score with the weights of ``path`` from now on; returns the checkpoint's aigiqa
        metadata. The ``checkpoint`` option names the file and the key follows its sha256.

        Strict by default: a missing or unexpected key, or a shape mismatch, is a
        CheckpointError (an AssetError: a run ends instead of storing a failure for every image)
        naming the file and the keys.
        """
        path = Path(path).expanduser()
        model = self.model
        meta, affine = self._load_into(model, path, strict)
        model.to(self.device).eval()
        self._target_affine = affine
        self.use_checkpoint(path)
        return meta

    def _load_into(self, model: torch.nn.Module, path: Path,
                   strict: bool = True) -> tuple[dict[str, Any], tuple[float, float]]:
        import torch

        path = path.expanduser()
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
            affine = meta.get("target_affine", self.untrained_affine)
            affine = (float(affine[0]), float(affine[1]))
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:  # a non-tensor value…
            raise CheckpointError(f"metric {self.name!r}: checkpoint {path} does not fit the "
                                  f"model ({' '.join(str(exc).split())[:300]})") from exc
        return meta, affine

    def set_model(self, model: torch.nn.Module,
                  target_affine: tuple[float, float] = (0.0, 1.0)) -> None:
        """Score with ``model`` (e.g. just trained) and the target normalisation (offset, scale)
        from now on. The key follows a hash of its weights (cached scores of other weights are
        not reused); a pickled copy cannot rebuild them (save them and use ``checkpoint=``)."""
        self._model = model
        self._target_affine = (float(target_affine[0]), float(target_affine[1]))
        self.set_weights_id(_state_hash(model))

    def use_checkpoint(self, path: str | Path) -> None:
        """The weights in :attr:`model` are those saved in ``path`` (e.g. just written by
        training): the ``checkpoint`` option names it and the key follows its sha256."""
        self.options["checkpoint"] = str(path)
        self.set_weights_id(None)

    def save(self, path: str | Path, meta: dict[str, Any] | None = None, *,
             state_dict: dict[str, Any] | None = None,
             target_affine: tuple[float, float] | None = None) -> Path:
        """Write the weights (default: the model's) and metadata atomically (fsync, rename), in
        the format ``checkpoint=`` reads; ``target_affine`` defaults to the metric's own."""

        affine = self._target_affine if target_affine is None else target_affine
        options = {k: v for k, v in self.options.items() if k != "checkpoint"}
        info = {"format": CHECKPOINT_FORMAT, "metric": self.name, "options": _plain(options),
                "target_affine": [float(affine[0]), float(affine[1])], **(meta or {})}
        if state_dict is None:
            state_dict = self.model.state_dict()
        state = {k: v.detach().cpu() for k, v in state_dict.items()}
        path = Path(path)
        atomic_torch_save({"state_dict": state, "aigiqa": info}, path, "the checkpoint")
        return path

    def fit(self, database: Any, split: str = "official", test_database: Any = None,
            **train_options: Any) -> LearnedMetric:
        """Fine-tune on the ``split`` spec of ``database`` (``official``, ``fold:K/N``, ``cross:DB``
        with ``test_database``…; see :func:`aigiqa.training.train` for the options); returns
        self, which then scores with the best weights. :attr:`fit_result` holds the TrainResult."""
        from aigiqa.training import TrainConfig, train

        self.fit_result = train(self, database, TrainConfig(split=split, **train_options),
                                test_database)
        return self

    # Scoring -------------------------------------------------------------------------------------
    def postprocess(self, raw: np.ndarray) -> np.ndarray:
        """Raw outputs in target units: ``raw * scale + offset``."""
        offset, scale = self._target_affine
        return raw * scale + offset


def _state_hash(model: torch.nn.Module) -> str:
    """Identity of weights held in memory: sha256 of the state dict's names and bytes."""
    digest = hashlib.sha256()
    for k, v in model.state_dict().items():
        digest.update(k.encode())
        digest.update(v.detach().cpu().contiguous().numpy().tobytes())
    return "trained:" + digest.hexdigest()


# Helpers shared by learned metrics ---------------------------------------------------------------
def checkpoint_table(released: dict[str, str]) -> dict[str, str]:
    """``{catalog asset name: protocol}`` → ``{sha256 where the catalog knows it, file name:
    protocol}`` (the key :meth:`LearnedMetric.inference_protocol` looks up)."""
    table = {}
    from aigiqa.assets import catalog

    for name, protocol in released.items():
        asset = catalog.entry(name)
        if asset.sha256:
            table[asset.sha256] = protocol
        table[name.rsplit("/", 1)[-1]] = protocol
    return table


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


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, int | float | str | bool) or v is None else str(v))
            for k, v in options.items()}

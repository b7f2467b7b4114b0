"""NIQE: Natural Image Quality Evaluator, the LIVE release algorithm (lower is better).

Mittal, Soundararajan and Bovik, "Making a 'completely blind' image quality analyzer", IEEE
Signal Processing Letters 20(3), 2013. Pristine model: ``niqe/modelparameters.mat`` (assets).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigiqa.errors import AssetError, MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import register_metric

MODEL_ASSET = "niqe/modelparameters.mat"


def niqe_features(image: np.ndarray, block_size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Per-block NIQE features and block sharpness, as the LIVE release computes them.

    ``image``: RGB uint8 (H, W, 3) or gray (H, W) with values 0-255. Returns features
    (n_blocks, 36) (18 at full scale, 18 at half scale; blocks in MATLAB's column-major order)
    and the mean local deviation of each full-scale block (n_blocks,).
    """
    from aigiqa.metrics.classical import _matlab

    gray = _matlab.gray_image(image, "niqe")
    rows, cols = gray.shape[0] // block_size, gray.shape[1] // block_size
    if rows < 1 or cols < 1:
        raise MetricError(
            f"metric 'niqe': image of {gray.shape[0]}x{gray.shape[1]} pixels is smaller than one "
            f"block; NIQE needs at least {block_size}x{block_size} pixels"
        )
    im = gray[: rows * block_size, : cols * block_size]
    feats, sharpness = [], None
    for scale in (1, 2):
        size = block_size // scale
        structdis, sigma = _matlab.local_normalize(im, "replicate")
        feats.append(_block_features(_blocks(structdis, size)))
        if scale == 1:
            sharpness = _blocks(sigma, size).mean(axis=(1, 2))
            im = _matlab.imresize(im, 0.5)
    return np.concatenate(feats, axis=1), sharpness


def _blocks(image: np.ndarray, size: int) -> np.ndarray:
    """Split (R·size, C·size) into (R·C, size, size) blocks, column-major like blkproc."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    tiles = image[: rows * size, : cols * size].reshape(rows, size, cols, size)
    return tiles.transpose(2, 0, 1, 3).reshape(rows * cols, size, size)


#: circshift offsets of the LIVE NIQE release (rows, cols).
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _block_features(blocks: np.ndarray) -> np.ndarray:
    """LIVE ``computefeature`` on each block: (n, s, s) → (n, 18)."""
    from aigiqa.metrics.classical._nss import aggd_fit, gamma_fn

    n = blocks.shape[0]
    flat = blocks.reshape(n, -1)
    alpha, left, right = aggd_fit(flat)
    ratio = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    out = [alpha, (left * ratio + right * ratio) / 2]
    for shift in _SHIFTS:
        pair = flat * np.roll(blocks, shift, axis=(1, 2)).reshape(n, -1)
        alpha, left, right = aggd_fit(pair)
        ratio = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
        betal, betar = left * ratio, right * ratio
        mean = (betar - betal) * (gamma_fn(2 / alpha) / gamma_fn(1 / alpha))
        out += [alpha, mean, betal, betar]
    return np.stack(out, axis=1)


def nan_mean_cov(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``nanmean`` (per column) and ``nancov`` (complete rows) of (n, d) features.

    With fewer than two complete rows the covariance is zero (d, d).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column → NaN, as MATLAB
        mean = np.nanmean(feats, axis=0)
    complete = feats[~np.isnan(feats).any(axis=1)]
    if len(complete) < 2:
        return mean, np.zeros((feats.shape[1], feats.shape[1]))
    return mean, np.cov(complete, rowvar=False)


def niqe_distance(
    feats: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray
) -> float:
    """NIQE score: Mahalanobis-like distance between the pristine and the image's MVG fits."""
    mu, cov = nan_mean_cov(feats)
    if np.isnan(mu).any():
        return float("nan")
    pooled = (cov_pris + cov) / 2
    tol = max(pooled.shape) * np.finfo(np.float64).eps
    inv = np.linalg.pinv(pooled, rtol=tol)
    d = mu_pris - mu
    return float(np.sqrt(max(float(d @ inv @ d), 0.0)))


@register_metric
class Niqe(Metric):
    """NIQE (LIVE release): distance of an image's NSS fit from a pristine model; lower is better.

    Options: ``checkpoint`` (empty or "live" for the LIVE pristine model, or a path to a ``.mat``
    with ``mu_prisparam``/``cov_prisparam`` such as ``save`` writes; its old name ``model=`` is
    still accepted), ``block_size`` (even, pixels).
    Constant images have no NSS to fit and score NaN (as in MATLAB); images smaller than one
    block raise MetricError. With a single valid block the image covariance is taken as zero.
    """

    name: ClassVar[str] = "niqe"
    kind: ClassVar[str] = "classical"
    lower_better: ClassVar[bool] = True
    score_range: ClassVar[tuple[float, float] | None] = (0.0, float("inf"))
    citation: ClassVar[str] = (
        "A. Mittal, R. Soundararajan, A. C. Bovik, Making a 'completely blind' image quality "
        "analyzer, IEEE Signal Processing Letters 20(3):209-212, 2013"
    )
    description: ClassVar[str] = "NIQE, LIVE release (MATLAB-exact)"
    defaults: ClassVar[dict[str, Any]] = {"checkpoint": "", "block_size": 96}
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint",)
    deprecated_options: ClassVar[dict[str, str]] = {"model": "checkpoint"}
    version: ClassVar[str] = "1"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["checkpoint"] == "live":  # the LIVE model, named: the same metric
            self.options["checkpoint"] = ""
        size = self.options["block_size"]
        if not isinstance(size, int) or size < 2 or size % 2:
            raise MetricError(f"metric 'niqe': block_size={size!r} must be an even integer >= 2")
        self._params: tuple[np.ndarray, np.ndarray] | None = None

    # Parameters ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Read the pristine model now (AssetError if its file is missing or unreadable)."""
        self.params  # noqa: B018 - loads on first access

    @property
    def params(self) -> tuple[np.ndarray, np.ndarray]:
        """Pristine model (mu (36,), cov (36, 36)), loaded on first use."""
        if self._params is None:
            self._params = load_model(self.options["checkpoint"])
        return self._params

    def score_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None
    ) -> np.ndarray:
        """NIQE of each RGB uint8 (H, W, 3) image; float64 (n,)."""
        mu, cov = self.params
        size = self.options["block_size"]
        return np.array(
            [niqe_distance(niqe_features(im, size)[0], mu, cov) for im in images], dtype=np.float64
        )

    def fit(self, database: Any, split: str = "official", *, seed: int = 0,
            sharpness_threshold: float = 0.75) -> Niqe:
        """Build the pristine model from the images of the ``train`` part of ``split`` (a spec:
        ``official``, ``fold:K/N``, ``ratio:…``) of a Database, as LIVE ``estimatemodelparam``;
        returns self. ``fit_result`` then says what it was fitted on. (Passing a list of images
        instead of a Database still works, with a DeprecationWarning: :meth:`fit_images`.)

        Keeps the blocks whose sharpness exceeds ``sharpness_threshold`` x the image's sharpest.
        """
        if not (hasattr(database, "records") and hasattr(database, "info")):
            warnings.warn("metric 'niqe': fit(images) is deprecated; use fit(database, "
                          "split=SPEC) or fit_images(images)", DeprecationWarning, stacklevel=2)
            return self.fit_images(database, sharpness_threshold)
        from aigiqa.splits import training_records

        records = training_records(database, split, seed=seed, metric=self.name)
        self.fit_images([r.path for r in records], sharpness_threshold)
        self.fit_result = {"database": database.name, "split": split, "seed": seed,
                           "images": len(records)}
        return self

    def fit_images(self, images: Sequence[np.ndarray | str | Path],
                   sharpness_threshold: float = 0.75) -> Niqe:
        """Build the pristine model from images (arrays or paths); returns self."""
        from aigiqa.images import load_image

        kept = []
        for item in images:
            image = item if isinstance(item, np.ndarray) else load_image(item)
            feats, sharpness = niqe_features(image, self.options["block_size"])
            kept.append(feats[sharpness > sharpness_threshold * sharpness.max()])
        if not kept:
            raise MetricError("metric 'niqe': fit needs at least one image")
        mu, cov = nan_mean_cov(np.concatenate(kept))
        if len(np.concatenate(kept)) < 2 or np.isnan(mu).any():
            raise MetricError(
                "metric 'niqe': fit needs at least two textured blocks over all images"
            )
        self._params = (mu, cov)
        # the cache key must change with the model: name the fitted model by its content
        digest = hashlib.sha256(mu.tobytes() + cov.tobytes()).hexdigest()[:16]
        self.options["checkpoint"] = f"fitted:{digest}"
        self.fit_result = {"images": len(kept)}
        return self

    def save(self, path: str | Path) -> Path:
        """Write the pristine model in the ``.mat`` format (``mu_prisparam``, ``cov_prisparam``)
        at exactly ``path`` (no suffix added), atomically; returns ``path``."""
        from scipy.io import savemat

        from aigiqa.files import atomic_write

        mu, cov = self.params
        path = Path(path)
        with atomic_write(path, "the NIQE model") as handle:
            savemat(handle, {"mu_prisparam": mu[None, :], "cov_prisparam": cov})
        return path

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Niqe:
        """A NIQE metric using the model saved at ``path``."""
        return cls(checkpoint=str(path), **options)


def load_model(model: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a pristine model: "" or "live" (the registered asset) or a ``.mat`` path holding
    ``mu_prisparam``/``cov_prisparam`` (LIVE, ``save``) or ``Mean``/``Covariance`` (the fields
    of MATLAB's ``niqeModel``, e.g. ``s = struct(m); save(f, '-struct', 's')``).

    A file that is missing, unreadable or not a model is an AssetError: a run then ends instead
    of storing a failure for every image."""
    from scipy.io import loadmat

    from aigiqa.assets import asset_path

    if model.startswith("fitted:"):  # AssetError: the model is not here, whatever the image
        raise AssetError(
            f"metric 'niqe': model {model!r} was fitted in another session; save() it and pass "
            "the file as checkpoint=PATH"
        )
    path = (asset_path(MODEL_ASSET) if model in ("", "live")
            else asset_path(MODEL_ASSET, model))
    try:
        data = loadmat(path)
        if "mu_prisparam" not in data and "Mean" in data:  # MATLAB niqeModel saved as struct
            data = {"mu_prisparam": data["Mean"], "cov_prisparam": data["Covariance"]}
        mu = np.ravel(data["mu_prisparam"]).astype(np.float64)
        cov = np.asarray(data["cov_prisparam"], dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - scipy raises many kinds for a bad file
        raise AssetError(
            f"metric 'niqe': {path} is not a NIQE model (.mat with mu_prisparam, cov_prisparam): "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}; fix or replace the file"
        ) from exc
    if mu.shape != (36,) or cov.shape != (36, 36) or not (np.isfinite(mu).all()
                                                          and np.isfinite(cov).all()):
        raise AssetError(f"metric 'niqe': {path}: expected finite mu 1x36 and cov 36x36, found "
                         f"{mu.shape} and {cov.shape}; fix or replace the file")
    return mu, cov

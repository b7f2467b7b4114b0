"""BRISQUE: Blind/Referenceless Image Spatial Quality Evaluator, the LIVE release (lower is better).

Mittal, Moorthy and Bovik, "No-reference image quality assessment in the spatial domain", IEEE
Transactions on Image Processing 21(12), 2012. Model: ``brisque/allmodel`` and ``brisque/allrange``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigiqa.errors import AssetError, MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import register_metric

MODEL_ASSET = "brisque/allmodel"
RANGE_ASSET = "brisque/allrange"
#: Smallest image side: the half-scale image must hold the 7x7 Gaussian window.
MIN_SIZE = 14

#: circshift offsets of the LIVE BRISQUE release (rows, cols).
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


def brisque_features(image: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of an RGB uint8 (H, W, 3) or gray (H, W) 0-255 image: (36,)."""
    from aigiqa.metrics.classical import _matlab
    from aigiqa.metrics.classical._nss import aggd_fit, gamma_fn, ggd_fit

    im = _matlab.gray_image(image, "brisque")
    if min(im.shape) < MIN_SIZE:
        raise MetricError(
            f"metric 'brisque': image of {im.shape[0]}x{im.shape[1]} pixels is too small; "
            f"BRISQUE needs at least {MIN_SIZE}x{MIN_SIZE} pixels"
        )
    feats: list[float] = []
    for scale in (1, 2):
        structdis, _ = _matlab.local_normalize(im, "zeros")
        flat = structdis.reshape(1, -1)
        alpha, sigma = ggd_fit(flat)
        feats += [alpha[0], sigma[0] ** 2]
        for shift in _SHIFTS:
            pair = flat * np.roll(structdis, shift, axis=(0, 1)).reshape(1, -1)
            a, left, right = aggd_fit(pair)
            const = np.sqrt(gamma_fn(1 / a)) / np.sqrt(gamma_fn(3 / a))
            mean = (right - left) * (gamma_fn(2 / a) / gamma_fn(1 / a)) * const
            feats += [a[0], mean[0], left[0] ** 2, right[0] ** 2]
        if scale == 1:
            im = _matlab.imresize(im, 0.5)
    return np.array(feats, dtype=np.float64)


@dataclass
class SvrModel:
    """An epsilon-SVR with RBF kernel plus its svm-scale feature ranges.

    ``support`` (n_sv, d), ``coef`` (n_sv,), ``rho``, ``gamma``; ``feature_min``/``feature_max``
    (d,) map features linearly to [``lower``, ``upper``]. ``higher_better`` says which way the
    target the model predicts goes (False for LIVE's DMOS).
    """

    support: np.ndarray
    coef: np.ndarray
    rho: float
    gamma: float
    feature_min: np.ndarray
    feature_max: np.ndarray
    lower: float = -1.0
    upper: float = 1.0
    higher_better: bool = False
    #: True for the release's libsvm files: scores then go through the release's text rounding.
    from_text: bool = False

    def scale(self, feats: np.ndarray, text_rounding: bool = False) -> np.ndarray:
        """svm-scale of (n, d) features; with ``text_rounding`` the release's text files are
        emulated (features printed with ``%f``, scaled values with ``%g``)."""
        feats = np.asarray(feats, dtype=np.float64)
        if text_rounding:
            feats = _printf(feats, "f")
        span = self.feature_max - self.feature_min
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.lower + (self.upper - self.lower) * (feats - self.feature_min) / span
        out = np.where(feats == self.feature_min, self.lower, out)
        out = np.where(feats == self.feature_max, self.upper, out)
        out = np.where(span == 0, 0.0, out)  # svm-scale drops single-valued features
        return _printf(out, "g") if text_rounding else out

    def predict(self, scaled: np.ndarray) -> np.ndarray:
        """RBF epsilon-SVR decision values of scaled (n, d) features: (n,).

        Row by row, so that an image's score does not depend on its place in the batch.
        """
        out = np.empty(len(scaled))
        for i, x in enumerate(scaled):
            d2 = ((self.support - x) ** 2).sum(axis=1)
            out[i] = float(np.exp(-self.gamma * d2) @ self.coef) - self.rho
        return out

    def save(self, path: str | Path) -> Path:
        """Write the model in the ``.npz`` format at exactly ``path`` (no suffix added),
        atomically; returns ``path``."""
        from aigiqa.files import atomic_write

        path = Path(path)
        with atomic_write(path, "the BRISQUE model") as handle:
            np.savez(
                handle,
                support=self.support, coef=self.coef, rho=self.rho, gamma=self.gamma,
                feature_min=self.feature_min, feature_max=self.feature_max,
                lower=self.lower, upper=self.upper, higher_better=self.higher_better,
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> SvrModel:
        """Read a model written by ``save``."""
        try:
            with np.load(path) as data:
                return cls(
                    support=data["support"], coef=data["coef"], rho=float(data["rho"]),
                    gamma=float(data["gamma"]), feature_min=data["feature_min"],
                    feature_max=data["feature_max"], lower=float(data["lower"]),
                    upper=float(data["upper"]), higher_better=bool(data["higher_better"]),
                )
        except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise many kinds
            raise AssetError(
                f"metric 'brisque': {path} is not a saved BRISQUE model ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}); fix or replace the file"
            ) from exc


def _printf(values: np.ndarray, fmt: str) -> np.ndarray:
    """Round-trip values through C printf ``%f`` or ``%g`` (6 decimals / 6 significant digits)."""
    spec = "{:f}" if fmt == "f" else "{:g}"
    flat = [float(spec.format(v)) for v in np.ravel(values)]
    return np.array(flat, dtype=np.float64).reshape(np.shape(values))


def read_libsvm_model(model_path: Path, range_path: Path) -> SvrModel:
    """Parse a libsvm epsilon-SVR RBF model file and an svm-scale range file (LIVE's format)."""
    try:
        lines = model_path.read_text().splitlines()
        header: dict[str, str] = {}
        start = lines.index("SV") + 1
        for line in lines[: start - 1]:
            key, _, value = line.partition(" ")
            header[key] = value.strip()
        if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
            raise ValueError("not an epsilon_svr model with an rbf kernel")
        rows = [ln.split() for ln in lines[start:] if ln.strip()]
        low_up, ranges = _read_ranges(range_path)
        dim = len(ranges)
        support = np.zeros((len(rows), dim))
        coef = np.empty(len(rows))
        for i, parts in enumerate(rows):
            coef[i] = float(parts[0])
            for item in parts[1:]:
                idx, _, val = item.partition(":")
                support[i, int(idx) - 1] = float(val)
        fmin = np.array([ranges[k][0] for k in sorted(ranges)])
        fmax = np.array([ranges[k][1] for k in sorted(ranges)])
        return SvrModel(
            support, coef, float(header["rho"]), float(header["gamma"]), fmin, fmax, *low_up,
            from_text=True,
        )
    except Exception as exc:  # noqa: BLE001 - any fault of the files
        raise AssetError(
            f"metric 'brisque': cannot read libsvm model {model_path} / ranges {range_path} "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); fix or replace the files"
        ) from exc


def _read_ranges(path: Path) -> tuple[tuple[float, float], dict[int, tuple[float, float]]]:
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines or lines[0] != ["x"]:
        raise ValueError(f"{path} is not an svm-scale range file (first line must be 'x')")
    lower, upper = float(lines[1][0]), float(lines[1][1])
    ranges = {int(p[0]): (float(p[1]), float(p[2])) for p in lines[2:]}
    return (lower, upper), ranges


def load_model(model: str) -> SvrModel:
    """"" or "live" (the registered libsvm assets) or the path of a model saved by ``save``;
    AssetError if the files are missing or unreadable (a run then ends instead of storing a
    failure for every image)."""
    from aigiqa.assets import asset_path

    if model in ("", "live"):
        return read_libsvm_model(asset_path(MODEL_ASSET), asset_path(RANGE_ASSET))
    if model.startswith("fitted:"):  # AssetError: the model is not here, whatever the image
        raise AssetError(
            f"metric 'brisque': model {model!r} was fitted in another session; save() it and "
            "pass the file as checkpoint=PATH"
        )
    path = asset_path(MODEL_ASSET, model)
    loaded = SvrModel.load(path)
    shapes = (loaded.support.shape, loaded.coef.shape, loaded.feature_min.shape,
              loaded.feature_max.shape)
    n = loaded.support.shape[0] if loaded.support.ndim == 2 else -1
    if shapes != ((n, 36), (n,), (36,), (36,)):
        raise AssetError(f"metric 'brisque': {path}: expected support (n, 36), coef (n,) and "
                         f"feature ranges (36,), found {shapes}; fix or replace the file")
    return loaded


@register_metric
class Brisque(Metric):
    """BRISQUE (LIVE release): SVR on 36 NSS features; lower is better for the LIVE model.

    Options: ``checkpoint`` (empty or "live" for the LIVE model, or a path written by ``save``;
    its old name ``model=`` is still accepted), ``text_rounding`` (emulate the
    release's text files between MATLAB, svm-scale and svm-predict for libsvm models; on by
    default to give the release's numbers). Constant images have no NSS to fit and score NaN
    (as in MATLAB).
    After ``fit`` the model predicts the database's target, so ``lower_better`` follows it.
    """

    name: ClassVar[str] = "brisque"
    kind: ClassVar[str] = "classical"
    lower_better: ClassVar[bool] = True
    score_range: ClassVar[tuple[float, float] | None] = None
    citation: ClassVar[str] = (
        "A. Mittal, A. K. Moorthy, A. C. Bovik, No-reference image quality assessment in the "
        "spatial domain, IEEE Transactions on Image Processing 21(12):4695-4708, 2012"
    )
    description: ClassVar[str] = "BRISQUE, LIVE release (MATLAB + libsvm exact)"
    defaults: ClassVar[dict[str, Any]] = {"checkpoint": "", "text_rounding": True}
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint",)
    deprecated_options: ClassVar[dict[str, str]] = {"model": "checkpoint"}
    version: ClassVar[str] = "1"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["checkpoint"] == "live":  # the LIVE model, named: the same metric
            self.options["checkpoint"] = ""
        self._model: SvrModel | None = None

    def prepare(self) -> None:
        """Read the SVR model now (AssetError if its file is missing or unreadable)."""
        self.model  # noqa: B018 - loads on first access

    @property
    def model(self) -> SvrModel:
        """The SVR and its feature ranges, loaded on first use."""
        if self._model is None:
            self._set_model(load_model(self.options["checkpoint"]))
        assert self._model is not None
        return self._model

    def _set_model(self, model: SvrModel) -> None:
        self._model = model
        self.lower_better = not model.higher_better  # type: ignore[misc]

    def score_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None
    ) -> np.ndarray:
        """BRISQUE of each RGB uint8 (H, W, 3) image; float64 (n,)."""
        if len(images) == 0:
            return np.zeros(0)
        feats = np.stack([brisque_features(im) for im in images])
        model = self.model
        rounding = self.options["text_rounding"] and model.from_text
        out = model.predict(model.scale(feats, rounding))
        out[np.isnan(feats).any(axis=1)] = np.nan
        return out

    def fit(
        self, database: Any, split: str = "official", *, seed: int = 0, target: str | None = None,
        c: float = 1024.0, epsilon: float = 0.1, gamma: float = 0.05,
    ) -> Brisque:
        """Refit the SVR (scikit-learn) on the labelled records of the ``train`` part of
        ``split`` (a spec: ``official``, ``fold:K/N``, ``ratio:…``) of a Database; returns self,
        with ``fit_result`` saying what it was fitted on.

        Features are scaled to [-1, 1] over the training images, as svm-scale does; the SVR
        hyper-parameters default to the LIVE release's (C 1024, gamma 0.05, epsilon 0.1).
        """
        from sklearn.svm import SVR

        from aigiqa.images import load_image
        from aigiqa.splits import training_records

        target = target or database.info.main_target
        records = [r for r in training_records(database, split, seed=seed, metric=self.name)
                   if target in r.targets]
        if len(records) < 2:
            raise MetricError(
                f"metric 'brisque': fit needs at least 2 labelled records in the train part of "
                f"split {split!r} of {database.name} (found {len(records)})"
            )
        feats = np.stack([brisque_features(load_image(r.path)) for r in records])
        y = np.array([r.targets[target] for r in records], dtype=np.float64)
        ok = ~np.isnan(feats).any(axis=1)
        if ok.sum() < 2:
            raise MetricError("metric 'brisque': fewer than 2 textured training images")
        feats, y = feats[ok], y[ok]
        fmin, fmax = feats.min(axis=0), feats.max(axis=0)
        model = SvrModel(np.zeros((0, 36)), np.zeros(0), 0.0, gamma, fmin, fmax)
        # libsvm's stopping tolerance and shrinking as svm-train's defaults (-e 0.001 -h 1),
        # spelled out so that a change of scikit-learn's defaults cannot move the model
        svr = SVR(kernel="rbf", gamma=gamma, C=c, epsilon=epsilon, tol=1e-3, shrinking=True)
        svr.fit(model.scale(feats), y)
        model.support = np.asarray(svr.support_vectors_, dtype=np.float64)
        model.coef = np.ravel(svr.dual_coef_).astype(np.float64)
        model.rho = float(-svr.intercept_[0])
        model.higher_better = not database_lower_better(database)
        self._set_model(model)
        digest = hashlib.sha256(model.support.tobytes() + model.coef.tobytes()).hexdigest()
        self.options["checkpoint"] = f"fitted:{digest[:16]}"  # the cache key follows the model
        self.fit_result = {"database": database.name, "split": split, "seed": seed,
                           "target": target, "images": int(ok.sum()),
                           "support_vectors": int(len(model.support))}
        return self

    def save(self, path: str | Path) -> Path:
        """Write the current model (``.npz``); load it with ``Brisque(checkpoint=path)``."""
        return self.model.save(path)

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Brisque:
        """A BRISQUE metric using the model saved at ``path``."""
        return cls(checkpoint=str(path), **options)


def database_lower_better(database: Any) -> bool:
    """Whether lower targets mean better images (DMOS); MOS databases say no."""
    return bool(getattr(database.info, "lower_better", False))

"""The pair criteria of :class:`~aigiqa.subjective.adaptive.AdaptivePairSampler` (its module doc
gives the derivations): for a pair with difference d ~ N(m, v), the mutual information
(``pair_information``), the expected fall of a weighted posterior variance
(``variance_reduction``), and the weights that make that variance the ranking's
(``ranking_metric``). Vectorised, float32 in → float32 out.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["pair_information", "ranking_metric", "variance_reduction"]

_K = np.pi * np.log(2.0) / 2
_K2 = 2 / np.pi


def pair_information(m, v, sigma: float):
    """The mutual information in bits (module doc of the sampler) for difference means ``m``
    and variances ``v`` (numbers or arrays, broadcast; float32 stays float32)."""
    dtype = np.result_type(np.asarray(m), np.asarray(v), np.float32)
    scalar = np.ndim(m) == 0 and np.ndim(v) == 0
    m, v = np.broadcast_arrays(np.atleast_1d(np.asarray(m, dtype)),
                               np.atleast_1d(np.asarray(v, dtype)))
    c2 = dtype.type(_K * sigma * sigma)
    half_m2 = np.multiply(m, m, dtype=dtype)
    half_m2 *= dtype.type(-0.5)
    a = np.add(v, c2, dtype=dtype)
    second = np.divide(half_m2, a)
    np.exp(second, out=second)
    np.divide(c2, a, out=a)
    np.sqrt(a, out=a)
    second *= a
    first = np.multiply(v, dtype.type(_K), dtype=dtype)
    first += c2
    np.divide(half_m2, first, out=first)
    np.exp(first, out=first)
    first -= second
    return first[0] if scalar else first


def inverse_fisher(m, v, sigma: float, lapse: float = 0.0):
    """1/J: J the Fisher information of one judgement about d, at x = m/√t, t = σ² + v, with
    the lapse rate ε: J = (1 − ε)² φ(x)² / (t p(1 − p)), p(1 − p) = (ε/2)(1 − ε/2)
    + (1 − ε)² Φ(x)Φ(−x) and Φ(x)Φ(−x) ≈ ¼ exp(−2x²/π)."""
    dtype = np.result_type(np.asarray(m), np.asarray(v), np.float32)
    t = np.add(v, dtype.type(sigma * sigma), dtype=dtype)
    x2 = np.multiply(m, m, dtype=dtype)
    x2 /= t
    keep = dtype.type((1 - lapse) ** 2)
    floor = dtype.type(lapse / 2 * (1 - lapse / 2) / keep * 2 * np.pi)
    out = np.multiply(x2, dtype.type(1 - _K2))
    np.exp(out, out=out)
    out *= dtype.type(np.pi / 2)
    if lapse > 0:
        np.exp(x2, out=x2)
        x2 *= floor
        out += x2
    out *= t
    return out


def variance_reduction(m, v, u2, sigma: float, lapse: float = 0.0):
    """The expected fall of the (weighted) total posterior variance after one judgement of
    the pair, linearised: ``u2 / (v + 1/J)`` (1/J: :func:`inverse_fisher`)."""
    dtype = np.result_type(np.asarray(m), np.asarray(v), np.asarray(u2), np.float32)
    scalar = all(np.ndim(x) == 0 for x in (m, v, u2))
    m, v, u2 = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, dtype)) for x in (m, v, u2)))
    out = inverse_fisher(m, v, sigma, lapse)
    out += v
    np.divide(u2, out, out=out)
    return out[0] if scalar else out


def ranking_metric(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """The Laplacian L of the ranking weights w_kl: Σ_kl w_kl Var(s_k − s_l) = tr(C L C)
    weighs each pair's variance by what it does to the expected number of pairs ranked in the
    wrong order (module doc of the sampler): w = exp(−μ²)(exp(−μ²)/√π + μ erf μ)/v,
    μ = |m|/(2√v)."""
    d = np.diagonal(cov)
    v = d[:, None] + d[None, :]  # the pairs' variances, then the weights, in place
    v -= cov
    v -= cov
    np.maximum(v, 1e-12, out=v)
    mu = np.subtract(mean[:, None], mean[None, :])
    np.abs(mu, out=mu)
    mu /= 2 * np.sqrt(v)
    w = special.erf(mu)
    w *= mu
    np.multiply(mu, mu, out=mu)
    np.negative(mu, out=mu)
    np.exp(mu, out=mu)  # exp(−μ²)
    w += mu / np.sqrt(np.pi)
    w *= mu
    w /= v
    del mu, v
    np.fill_diagonal(w, 0.0)
    total = w.sum(axis=1)
    np.negative(w, out=w)
    w[np.diag_indices_from(w)] = total
    return w

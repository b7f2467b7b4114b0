"""Scaling paired comparisons: Bradley–Terry and Thurstone Case V by maximum likelihood.

Models, for items i, j with scale values s (x = s_i - s_j):

- ``bt`` (Bradley & Terry 1952): P(i > j) = σ(x), σ the logistic; s are log-strengths (the
  parameters of ``choix``).
- ``thurstone`` (Thurstone 1927, Case V, unit discriminal dispersion): P(i > j) = Φ(x / √2).

Ties (``ties=``):

- ``"rao-kupper"`` (Rao & Kupper 1967): P(i > j) = F(x - η), P(tie) = F(x + η) - F(x - η),
  η ≥ 0 (η = log θ of Rao–Kupper for ``bt``; with ``thurstone`` the same threshold on Φ, the
  model of Glenn & David 1960). Reported as ``tie_parameter`` = θ = e^η (``bt``) or η.
- ``"davidson"`` (Davidson 1970, ``bt`` only): P(i > j) = π_i / (π_i + π_j + ν√(π_i π_j)),
  P(tie) = ν√(π_i π_j) / (same), π = e^s; ``tie_parameter`` = ν.
- ``"drop"``: tie rows are left out (their number is in ``attrs["dropped_ties"]``).

Without tie rows the tie parameter is not estimated (the models reduce to the plain ones).
``alpha`` > 0 adds the ridge penalty ``alpha · Σ s²`` to the negative log-likelihood (choix's
convention: a Gaussian prior), which keeps the estimate finite when an item always wins.

Existence: the comparison graph must be connected (else items of different components have no
common scale: a ComparisonError naming the components), and without a ridge every item must
both win (or tie) against and lose (or tie) to items that link it back to all others (Ford's
condition: the graph of "j beat or tied i" is strongly connected), else the MLE is infinite: a
ComparisonError naming the items, suggesting ``alpha``.

Solution: L-BFGS on the analytic gradient, then Newton steps (the Hessian assembled per row
from central differences of the analytic first derivatives) until the largest gradient component
is below 1e-9. Scores are centred to mean 0 (the likelihood is shift invariant; with a ridge the
optimum is centred already). ``se`` is from the inverse Hessian (observed information) of the
centred estimates; ``ci_low``/``ci_high`` are Wald intervals at ``level``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from aigiqa.comparisons import check_comparisons
from aigiqa.errors import ComparisonError

MODELS = ("bt", "thurstone")
TIES = ("rao-kupper", "davidson", "drop")
GRAD_TOL = 1e-9


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _mills(z):
    """φ(z) / Φ(z), stable for very negative z."""
    return np.exp(stats.norm.logpdf(z) - special.log_ndtr(z))


def _terms(x, tie, eta, model, ties):
    """Per row: log-likelihood, d/dx and d/dη (η: the threshold, or ν for Davidson).
    ``x`` = scaled s_winner - s_loser (any order for ties); ``tie``: bool per row."""
    win = ~tie
    ll, dx, de = np.empty_like(x), np.empty_like(x), np.zeros_like(x)
    if ties == "davidson":
        m = np.abs(x) / 2
        q = np.exp(-m)
        rest = 1 + q * q + eta * q  # D = e^m · rest, D = e^{x/2} + e^{-x/2} + ν
        log_d = m + np.log(rest)
        ratio = np.sign(x) * (1 - q * q) / rest  # (e^{x/2} - e^{-x/2}) / D
        inv_d = q / rest
        ll[win] = x[win] / 2 - log_d[win]
        dx[win] = 0.5 - ratio[win] / 2
        de[win] = -inv_d[win]
        if tie.any():
            ll[tie] = np.log(eta) - log_d[tie]
            dx[tie] = -ratio[tie] / 2
            de[tie] = 1 / eta - inv_d[tie]
        return ll, dx, de
    if model == "bt":
        z = x[win] - eta
        ll[win], dx[win] = _log_sigmoid(z), special.expit(-z)
        de[win] = -dx[win]
        if tie.any():
            xt = x[tie]
            ll[tie] = (_log_sigmoid(xt + eta) + _log_sigmoid(eta - xt)
                       + np.log(-np.expm1(-2 * eta)))
            dx[tie] = special.expit(-xt - eta) - special.expit(xt - eta)
            de[tie] = special.expit(-xt - eta) + special.expit(xt - eta) + 2 / np.expm1(2 * eta)
        return ll, dx, de
    z = x[win] - eta
    ll[win], dx[win] = special.log_ndtr(z), _mills(z)
    de[win] = -dx[win]
    if tie.any():
        u = np.abs(x[tie])  # P = Φ(η - u) - Φ(-η - u): symmetric in x
        hi, lo = special.log_ndtr(eta - u), special.log_ndtr(-eta - u)
        log_p = hi + np.log(-np.expm1(lo - hi))
        ph, pl = np.exp(stats.norm.logpdf(eta - u) - log_p), np.exp(stats.norm.logpdf(-eta - u)
                                                                    - log_p)
        ll[tie] = log_p
        dx[tie] = np.sign(x[tie]) * (pl - ph)
        de[tie] = ph + pl
    return ll, dx, de


class _Problem:
    """Negative penalized log-likelihood over θ = (free scores, [log tie parameter])."""

    def __init__(self, n, winner, loser, tie, model, ties, alpha):
        self.n, self.winner, self.loser, self.tie = n, winner, loser, tie
        self.model, self.ties, self.alpha = model, ties, alpha
        self.scale = 1.0 if model == "bt" else 1 / np.sqrt(2)
        self.fit_tie = bool(tie.any())
        self.first = 0 if alpha > 0 else 1  # without a ridge, item 0 is fixed at 0

    def unpack(self, theta):
        s = np.zeros(self.n)
        k = self.n - self.first
        s[self.first:] = theta[:k]
        eta = np.exp(theta[k]) if self.fit_tie else 0.0
        return s, eta

    def __call__(self, theta):
        s, eta = self.unpack(theta)
        x = self.scale * (s[self.winner] - s[self.loser])
        ll, dx, de = _terms(x, self.tie, eta, self.model, self.ties)
        grad_s = (np.bincount(self.winner, dx, self.n) - np.bincount(self.loser, dx, self.n))
        grad_s *= -self.scale
        value = -ll.sum() + self.alpha * np.sum(s * s)
        grad_s += 2 * self.alpha * s
        grad = grad_s[self.first:]
        if self.fit_tie:
            grad = np.append(grad, -eta * de.sum())
        return value, grad

    def hessian(self, theta):
        """Hessian of the objective, O(rows): each row's second derivatives by central
        differences of its analytic first derivatives (all rows at once)."""
        s, eta = self.unpack(theta)
        c, w, ell, tie = self.scale, self.winner, self.loser, self.tie
        x = c * (s[w] - s[ell])
        h = 1e-6 * np.maximum(1.0, np.abs(x))
        _, dx_up, de_up = _terms(x + h, tie, eta, self.model, self.ties)
        _, dx_dn, de_dn = _terms(x - h, tie, eta, self.model, self.ties)
        rows = -c * c * (dx_up - dx_dn) / (2 * h)  # d²(-ℓ)/ds_w² per row
        n = self.n
        full = np.zeros((n + 1, n + 1))
        np.add.at(full, (w, w), rows)
        np.add.at(full, (ell, ell), rows)
        np.add.at(full, (w, ell), -rows)
        np.add.at(full, (ell, w), -rows)
        full[np.arange(n), np.arange(n)] += 2 * self.alpha
        keep = list(range(self.first, n))
        if self.fit_tie:
            cross = -c * eta * (de_up - de_dn) / (2 * h)  # d²(-ℓ)/ds_w dτ, τ = log η
            col = np.bincount(w, cross, n) - np.bincount(ell, cross, n)
            he = 1e-6 * max(1.0, eta)
            _, _, e_up = _terms(x, tie, eta + he, self.model, self.ties)
            _, _, e_dn = _terms(x, tie, eta - he, self.model, self.ties)
            _, _, de = _terms(x, tie, eta, self.model, self.ties)
            full[:n, n] = full[n, :n] = col
            full[n, n] = -eta * de.sum() - eta * eta * ((e_up - e_dn) / (2 * he)).sum()
            keep.append(n)
        return full[np.ix_(keep, keep)]


def _check_graph(items, a, b, outcome, alpha):
    n = len(items)
    ones = np.ones(len(a))
    und = coo_matrix((ones, (a, b)), shape=(n, n))
    k, label = connected_components(und, directed=False)
    if k > 1:
        parts = [items[label == c][:3].tolist() for c in range(min(k, 5))]
        raise ComparisonError(
            f"the comparison graph is disconnected: {k} components (e.g. {parts}); items of "
            "different components share no scale. Scale each component (or group) separately")
    if alpha > 0:
        return
    # edge loser -> winner ("the winner beat the loser"); a tie links both ways
    src = np.concatenate([np.where(outcome == "a", b, a), a[outcome == "tie"]])
    dst = np.concatenate([np.where(outcome == "a", a, b), b[outcome == "tie"]])
    k, label = connected_components(coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n)),
                                    directed=True, connection="strong")
    if k > 1:
        sizes = np.bincount(label)
        small = items[label == np.argmin(sizes)][:5].tolist()
        raise ComparisonError(
            f"the maximum-likelihood scale is infinite: the items split into {k} sets, one of "
            f"which always wins (or always loses) against the rest (e.g. {small}); pass a ridge "
            "prior alpha > 0 (e.g. alpha=0.01), or collect comparisons linking them back")


def scale_pairs(comparisons, model: str = "bt", ties: str = "rao-kupper", *, alpha: float = 0.0,
                level: float = 0.95, by_group: bool = False) -> pd.DataFrame:
    """Scale values of the items of a comparisons table (or a PreferenceDatabase).

    Returns one row per item (order of first appearance): item, score, se, ci_low, ci_high,
    wins, losses, ties. ``attrs``: model, ties, alpha, tie_parameter, log_likelihood,
    max_gradient, n_comparisons, dropped_ties. See the module doc for the models and rules.
    ``by_group``: one fit per ``group`` (e.g. per prompt), rows prefixed by a ``group`` column
    and ``tie_parameter``, ``log_likelihood``, ``max_gradient`` columns; an error names the group.
    """
    if by_group:
        frame = comparisons.comparisons() if hasattr(comparisons, "comparisons") else comparisons
        parts = []
        for group, rows in check_comparisons(frame).groupby("group", sort=False):
            try:
                part = scale_pairs(rows, model, ties, alpha=alpha, level=level)
            except ComparisonError as exc:
                raise ComparisonError(f"group {group!r}: {exc.message}", exc.problems) from None
            part.insert(0, "group", group)
            for key in ("tie_parameter", "log_likelihood", "max_gradient"):
                part[key] = part.attrs[key]
            parts.append(part)
        out = pd.concat(parts, ignore_index=True)
        out.attrs.update(model=model, ties=ties, alpha=alpha, n_groups=len(parts))
        return out
    if model not in MODELS:
        raise ComparisonError(f"unknown model {model!r}; choose one of {list(MODELS)}")
    if ties not in TIES:
        raise ComparisonError(f"unknown ties={ties!r}; choose one of {list(TIES)}")
    if ties == "davidson" and model != "bt":
        raise ComparisonError("ties='davidson' is a Bradley-Terry model; with "
                              "model='thurstone' use ties='rao-kupper' (the threshold model)")
    if not np.isfinite(alpha) or alpha < 0:
        raise ComparisonError(f"alpha must be a finite number >= 0, got {alpha}")
    if not 0 < level < 1:
        raise ComparisonError(f"level must be in (0, 1), got {level}")
    frame = comparisons.comparisons() if hasattr(comparisons, "comparisons") else comparisons
    comp = check_comparisons(frame)
    dropped = 0
    if ties == "drop":
        dropped = int((comp["outcome"] == "tie").sum())
        comp = comp[comp["outcome"] != "tie"]
        if comp.empty:
            raise ComparisonError("only ties: nothing is left to scale with ties='drop'")
    if (comp["outcome"] == "tie").all():
        raise ComparisonError("every comparison is a tie: the items cannot be told apart")
    items, codes = np.unique(np.concatenate([comp["a"].to_numpy(str), comp["b"].to_numpy(str)]),
                             return_inverse=True)
    first = pd.unique(codes)  # keep the order of first appearance
    remap = np.empty(len(items), np.int64)
    remap[first] = np.arange(len(first))
    items = items[first]
    m = len(comp)
    a, b = remap[codes[:m]], remap[codes[m:]]
    outcome = comp["outcome"].to_numpy(str)
    _check_graph(items, a, b, outcome, alpha)
    tie = outcome == "tie"
    winner = np.where(outcome == "b", b, a)
    loser = np.where(outcome == "b", a, b)
    prob = _Problem(len(items), winner, loser, tie, model, ties, alpha)
    theta = np.zeros(len(items) - prob.first + int(prob.fit_tie))
    if prob.fit_tie:
        theta[-1] = np.log(0.5)
    res = optimize.minimize(prob, theta, jac=True, method="L-BFGS-B",
                            options={"maxiter": 10_000, "gtol": 1e-10, "ftol": 1e-15})
    theta = res.x
    for _ in range(50):  # Newton polish: quadratic convergence from L-BFGS's point
        grad = prob(theta)[1]
        if np.max(np.abs(grad)) < GRAD_TOL:
            break
        theta = theta - np.linalg.solve(prob.hessian(theta), grad)
    value, grad = prob(theta)
    max_grad = float(np.max(np.abs(grad)))
    if not np.isfinite(max_grad) or max_grad > 1e-6:
        raise ComparisonError(f"the {model} fit did not converge (largest gradient component "
                              f"{max_grad:.2g}); check the comparisons for near-separation or "
                              "pass alpha > 0")
    cov = np.linalg.inv(prob.hessian(theta))
    k = len(items) - prob.first
    full = np.zeros((len(items), len(items)))  # covariance of s (item 0 fixed without ridge)
    full[prob.first:, prob.first:] = cov[:k, :k]
    if alpha == 0:  # of the centred s = (I - 11'/n) s: diag = C_ii - 2 mean_j C_ij + mean C
        var = np.diag(full) - 2 * full.mean(axis=1) + full.mean()
    else:
        var = np.diag(full).copy()
    s, eta = prob.unpack(theta)
    s = s - s.mean()
    se = np.sqrt(np.clip(var, 0, None))
    z = stats.norm.ppf((1 + level) / 2)
    out = pd.DataFrame({
        "item": items, "score": s, "se": se, "ci_low": s - z * se, "ci_high": s + z * se,
        "wins": np.bincount(winner[~tie], minlength=len(items)),
        "losses": np.bincount(loser[~tie], minlength=len(items)),
        "ties": np.bincount(np.concatenate([a[tie], b[tie]]), minlength=len(items)),
    })
    tie_parameter = (np.nan if not prob.fit_tie else float(eta) if ties == "davidson" or
                     model == "thurstone" else float(np.exp(eta)))
    out.attrs.update(model=model, ties=ties, alpha=alpha, tie_parameter=tie_parameter,
                     log_likelihood=float(-(value - alpha * np.sum(s * s))),
                     max_gradient=max_grad, n_comparisons=m, dropped_ties=dropped)
    return out

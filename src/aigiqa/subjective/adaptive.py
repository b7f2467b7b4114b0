"""Adaptive paired comparisons: choose the next pair by its expected value for the scores.

The method follows the active-sampling literature for pairwise comparisons (ASAP, Mikhailiuk
et al., ICPR 2020; Hybrid-MST, Li et al., 2018): keep a Gaussian posterior over the items'
scores, update it after every judgement, and ask next for the pair whose outcome is expected to
tell the most about the scores. Differences from ASAP, for speed and accuracy at 1,000 items:

- **Posterior**: a full multivariate Gaussian N(μ, C) (ASAP's TrueSkill graph keeps only
  per-item variances), prior N(0, ``prior_sd``² I). Observation model (Thurstone Case V with a
  lapse rate ε): P(a preferred) = ε/2 + (1 − ε) Φ((s_a − s_b)/σ), σ = √2 for
  ``model="thurstone"`` (the unit of :func:`~aigiqa.subjective.scale_pairs`) or √(8/π) for
  ``model="bt"`` (the probit closest to the logistic, so scores are on the BT scale). A tie
  is Φ((τ − d)/σ) − Φ((−τ − d)/σ), d = s_a − s_b, τ = ``tie_margin`` (TrueSkill's draw).
- **Update** (assumed-density filtering, the online step of expectation propagation): with
  u = C(e_a − e_b), the exact posterior of one judgement is moment-matched in closed form,
  μ ← μ + α u, C ← C − β u uᵀ (α, β the first two derivatives of log Z, Z the judgement's
  marginal likelihood), O(n²) per judgement. The lapse term keeps an upset from dragging the
  posterior far (β may then be negative: the posterior widens, as it should).
- **Full update**: online moment matching drifts (each judgement was folded in with the means
  of its time); as ASAP's full update, the posterior is refitted from all judgements (a
  Laplace approximation, :mod:`aigiqa.subjective.adaptive_fit`, with the prior sd estimated
  by empirical Bayes when ``prior_sd=None``) whenever the judgements since the last refit reach
  ``refit`` (2 %) of all, or n/4; ``refit=0``: only on :meth:`refit_posterior` calls. Without
  it (a first version; one seed of benchmarks/adaptive.py at 0.5 JND spread) the online
  posterior was over-confident and over-spread, and the sampler worse than random pairs. A
  refit costs O(n³), ~0.5 s at 1,000 items, ``"ranking"``'s C L C included (``update``
  returns after it; an app that cannot wait passes ``refit=0`` and calls ``refit_posterior``
  off the request path).
- **Criterion** (``criterion=``), for a pair with difference d ~ N(m, v), m = μ_a − μ_b,
  v = C_aa + C_bb − 2 C_ab (the correlations the comparisons so far created count: two items
  linked only by a long chain of comparisons have a large v), t = σ² + v, J the Fisher
  information of one judgement about d with the lapse rate ε, 1/J = t p(1 − p)/((1 − ε)² φ(x)²),
  x = m/√t, p(1 − p) = (ε/2)(1 − ε/2) + (1 − ε)² Φ(x)Φ(−x), Φ(x)Φ(−x) ≈ ¼ exp(−2x²/π)
  (:mod:`aigiqa.subjective.adaptive_criteria`). A judgement of the pair takes J/(1 + J v) · u uᵀ,
  u = C(e_a − e_b), from C (linearised), so a weighted total variance tr(L C) falls by
  uᵀ L u / (v + 1/J) = (e_a − e_b)ᵀ C L C (e_a − e_b) / (v + 1/J); C L C is kept, by a rank-2
  update per judgement (O(n²)), and rebuilt at each refit:

  - ``"ranking"`` (default): L weighs each pair k, l by what its variance does to the
    expected number of pairs ranked in the wrong order, Σ Φ(−|s_k − s_l|/√V_kl): the
    derivative in V at V = v_kl, averaged over s_k − s_l ~ N(m_kl, v_kl), is
    w_kl ∝ exp(−μ²)(exp(−μ²)/√π + μ erf μ)/v_kl, μ = |m_kl|/(2√v_kl), and L is the
    Laplacian of w (Σ w_kl Var(s_k − s_l) = tr(L C)), recomputed from the posterior at each
    refit (O(n³)). Pairs already told apart stop counting, so the comparisons go to items
    whose order is still open, and more of them where qualities are dense; a judgement
    still counts for every pair it informs through the correlations. On
    benchmarks/adaptive.py it needs fewer comparisons than ``"variance"`` at every spread,
    and its designs come close to an oracle that knows the true qualities (module doc there).
  - ``"variance"``: L = I, the expected fall of the *total* posterior variance tr C
    (A-optimal). It keeps the design balanced but spends comparisons on telling apart items
    whose order is already clear (the default before ``"ranking"``: worse than random pairs
    at 0.5 JND spread on 3 seeds, 1.2× fewer at 1 JND).
  - ``"information"``: the mutual information between the outcome and the scores (ASAP's
    expected information gain; for a probit likelihood it depends on (m, v) only). In bits,
    with Houlsby et al.'s (2011, "BALD") closed form h(Φ(x)) ≈ exp(−x²/(π ln 2)),
    c² = π ln 2 σ²/2, k = π ln 2/2:

        I(a, b) = exp(−m²/(2(c² + k v))) − √(c²/(c² + v)) · exp(−m²/(2(c² + v)))

    (within 0.002 bits of the exact mutual information; lapses left out). It concentrates on
    pairs of close estimated means, for the pair alone: in benchmarks/adaptive.py it needed
    fewer comparisons than random pairs at a 2 JND spread of qualities but more at 0.5–1 JND.

  Evaluated for all n(n − 1)/2 pairs (float32, upper triangle in row blocks), argmax; see
  benchmarks/adaptive.py for the latency at 1,000 items.
- **Batch** (``batch=``): ``"greedy"`` (default) asks for the criterion's argmax each time;
  ``"mst"`` asks for the n − 1 pairs of a maximum spanning tree of the criterion (ASAP's batch
  mode, Hybrid-MST: :mod:`aigiqa.subjective.adaptive_batch`), best first, and builds the next
  tree when these are used up or after a refit: every item is compared once per batch.

Ties between equal criteria are broken by a seeded shuffle of the items, so a fresh sampler
does not walk the item list in order. A subject is never offered a pair they already judged
(while another pair is left); ``exclude`` takes more pairs to skip (e.g. those on screen for
other raters and not yet answered, so concurrent raters get different pairs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import special

from aigiqa.errors import ComparisonError
from aigiqa.subjective.adaptive_batch import BATCHES, take_from_batch
from aigiqa.subjective.adaptive_criteria import pair_information, ranking_metric, variance_reduction
from aigiqa.subjective.adaptive_fit import laplace_posterior

__all__ = ["CRITERIA", "AdaptivePairSampler", "pair_information", "ranking_metric",
           "variance_reduction"]

MODELS = {"thurstone": np.sqrt(2.0), "bt": np.sqrt(8.0 / np.pi)}
OUTCOMES = ("a", "b", "tie")
MAX_ITEMS = 5_000  # a 5,000² float64 covariance is 200 MB
CRITERIA = ("variance", "information", "ranking")


class AdaptivePairSampler:
    """Online Gaussian posterior over item scores and the most informative next pair.

    ``items``: the item names (unique, non-empty strings). ``comparisons``: an optional table
    (``a, b, outcome[, annotator]``, checked as :func:`~aigiqa.comparisons.check_comparisons`
    does) of judgements so far: counted, then one refit (e.g. to restart an app's sampler).
    ``seed`` fixes the tie-breaking shuffle and the left/right order of proposed pairs.
    ``prior_sd``: the prior sd of the scores (σ units); None: estimated (module doc).
    ``batch``: ``"greedy"`` or ``"mst"`` (spanning-tree batches; module doc).
    """

    def __init__(self, items: Sequence[str], *, model: str = "thurstone",
                 prior_sd: float | None = None, lapse: float = 0.05, tie_margin: float = 0.25,
                 refit: float = 0.02, criterion: str = "ranking", batch: str = "greedy",
                 seed: int = 0, comparisons: pd.DataFrame | None = None) -> None:
        names = list(items)
        bad = [repr(x) for x in names if not (isinstance(x, str) and x)]
        if bad:
            raise ComparisonError(f"item names must be non-empty strings: {bad[:5]}")
        if len(set(names)) != len(names):
            dup = sorted(x for x, k in Counter(names).items() if k > 1)
            raise ComparisonError(f"item names must be unique; repeated: {dup[:5]}")
        if not 2 <= len(names) <= MAX_ITEMS:
            raise ComparisonError(
                f"adaptive sampling takes 2 to {MAX_ITEMS:,} items, got {len(names):,} (the "
                "posterior is an n x n matrix: use one sampler per prompt or group)")
        if model not in MODELS:
            raise ComparisonError(f"unknown model {model!r}; choose one of {list(MODELS)}")
        if criterion not in CRITERIA:
            raise ComparisonError(f"unknown criterion {criterion!r}; choose one of "
                                  f"{list(CRITERIA)}")
        if batch not in BATCHES:
            raise ComparisonError(f"unknown batch {batch!r}; choose one of {list(BATCHES)}")
        self.criterion, self.batch = criterion, batch
        self._batch_pairs: list[tuple[int, int]] = []  # batch="mst": the tree's pairs left
        self._batch_refits = -1
        checks = (("prior_sd", 1.0 if prior_sd is None else prior_sd, "> 0", lambda x: x > 0),
                  ("lapse", lapse, "in [0, 1)", lambda x: 0 <= x < 1),
                  ("tie_margin", tie_margin, "> 0", lambda x: x > 0),
                  ("refit", refit, ">= 0", lambda x: x >= 0))
        for key, value, rule, ok in checks:
            if not (isinstance(value, (int, float)) and np.isfinite(value) and ok(value)):
                raise ComparisonError(f"bad {key}={value!r}: must be a number {rule}")
        self.model, self.sigma = model, float(MODELS[model])
        self.fixed_prior_sd = None if prior_sd is None else float(prior_sd)
        self.prior_sd = 1.0 if prior_sd is None else float(prior_sd)
        self.lapse, self.tie_margin, self.refit = float(lapse), float(tie_margin), float(refit)
        self._rng = np.random.default_rng(seed)
        order = self._rng.permutation(len(names))  # internal index k holds items[order[k]]
        self._names = names
        self.items = [names[k] for k in order]
        self._index = {name: k for k, name in enumerate(self.items)}
        n = len(names)
        self.mean = np.zeros(n)
        self.cov = np.eye(n) * self.prior_sd ** 2
        self._metric = None  # "ranking": the weights' Laplacian L (None: the identity)
        self._gram = None  # C L C (C² for "variance"), kept up to date; None: "information"
        self._new_gram()
        self.n_updates = 0
        self.n_refits = 0
        self._since_refit = 0
        self._wins = np.zeros((n, n))  # _wins[w, l]: w preferred to l (a tie: ½ each way)
        self._seen: dict[object, set[tuple[int, int]]] = {}
        if comparisons is not None and len(comparisons):
            self._load(comparisons)

    def _load(self, comparisons: pd.DataFrame) -> None:
        from aigiqa.comparisons import check_comparisons

        comp = check_comparisons(comparisons, known=set(self.items))
        subjects = comp["annotator"].to_numpy(object)
        for a, b, outcome, subject in zip(comp["a"], comp["b"], comp["outcome"], subjects,
                                          strict=True):
            self._count(a, b, outcome, None if pd.isna(subject) else subject)
        self.n_updates = len(comp)
        self.refit_posterior()

    # ------------------------------------------------------------------ posterior
    def _code(self, name, what: str = "item") -> int:
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise ComparisonError(f"unknown {what} {name!r}: not one of the sampler's "
                                  f"{len(self.items)} items") from None

    def _pair(self, a, b) -> tuple[int, int]:
        i, j = self._code(a), self._code(b)
        if i == j:
            raise ComparisonError(f"item {a!r} is compared with itself")
        return (i, j) if i < j else (j, i)

    def update(self, a: str, b: str, outcome: str, subject=None) -> None:
        """Fold one judgement into the posterior: ``outcome`` "a" (a preferred), "b" or
        "tie". ``subject`` (any hashable) records that they have seen this pair."""
        w, ell = self._count(a, b, outcome, subject)
        u = self.cov[:, w] - self.cov[:, ell]
        m = self.mean[w] - self.mean[ell]
        v = max(float(u[w] - u[ell]), 0.0)
        t = self.sigma ** 2 + v
        rt = np.sqrt(t)
        if outcome == "tie":
            hi, lo = (self.tie_margin - m) / rt, (-self.tie_margin - m) / rt
            z = max(float(special.ndtr(hi) - special.ndtr(lo)), 1e-300)
            phi_hi, phi_lo = np.exp(-0.5 * hi * hi), np.exp(-0.5 * lo * lo)
            phi_hi, phi_lo = phi_hi / np.sqrt(2 * np.pi), phi_lo / np.sqrt(2 * np.pi)
            alpha = (phi_lo - phi_hi) / (rt * z)
            beta = alpha * alpha + (hi * phi_hi - lo * phi_lo) / (t * z)
        else:
            x = m / rt
            pdf = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
            z = self.lapse / 2 + (1 - self.lapse) * float(special.ndtr(x))
            alpha = (1 - self.lapse) * pdf / (rt * z)
            beta = alpha * alpha + (1 - self.lapse) * x * pdf / (t * z)
        if v > 0:
            beta = min(beta, (1 - 1e-9) / v)  # keep C positive definite against round-off
        self.mean += alpha * u
        if self._gram is not None:  # (C − βuuᵀ) L (C − βuuᵀ) = G − (w uᵀ + u wᵀ),
            lu = u if self._metric is None else self._metric @ u  # w = β C L u − β² (uᵀLu) u/2
            w = beta * (self.cov @ lu) - (beta * beta * float(u @ lu) / 2) * u
            self._gram -= np.outer(w, u)
            self._gram -= np.outer(u, w)
        self.cov -= beta * np.outer(u, u)
        self.n_updates += 1
        self._since_refit += 1
        due = max(self._refit_min, self.refit * self.n_updates)
        if self.refit > 0 and self._since_refit >= due:
            self.refit_posterior()

    @property
    def _refit_min(self) -> int:
        return max(10, len(self.items) // 4)

    def _count(self, a, b, outcome, subject) -> tuple[int, int]:
        """Check one judgement, add it to the counts; (winner, loser) codes ("a" first for a
        tie)."""
        if outcome not in OUTCOMES:
            raise ComparisonError(f"outcome {outcome!r} is not one of {list(OUTCOMES)} "
                                  f"(comparison {a!r} vs {b!r})")
        key = self._pair(a, b)
        w, ell = (self._code(b), self._code(a)) if outcome == "b" else \
            (self._code(a), self._code(b))
        if outcome == "tie":
            self._wins[w, ell] += 0.5
            self._wins[ell, w] += 0.5
        else:
            self._wins[w, ell] += 1
        if subject is not None:
            self._seen.setdefault(subject, set()).add(key)
        return w, ell

    def refit_posterior(self) -> None:
        """Replace the online posterior by the Laplace posterior of all judgements so far
        (:mod:`aigiqa.subjective.adaptive_fit`); ``update`` calls it on the ``refit``
        schedule."""
        self.mean, self.cov, self.prior_sd = laplace_posterior(
            self._wins, self.sigma, self.lapse, self.prior_sd, self.fixed_prior_sd is None,
            start=self.mean)
        self._new_gram()
        self._since_refit = 0
        self.n_refits += 1

    def _new_gram(self) -> None:
        if self.criterion == "ranking":
            self._metric = ranking_metric(self.mean, self.cov)
            self._gram = self.cov @ (self._metric @ self.cov)
        elif self.criterion == "variance":
            self._gram = self.cov @ self.cov

    def scores(self) -> pd.DataFrame:
        """The posterior: one row per item (in the order given) with ``mean`` and ``sd``."""
        k = np.array([self._index[name] for name in self._names])
        sd = np.sqrt(np.clip(np.diag(self.cov)[k], 0, None))
        return pd.DataFrame({"item": self._names, "mean": self.mean[k], "sd": sd})

    def information(self, block: int = 64) -> np.ndarray:
        """The criterion for every pair i < j, an (n, n) float32 matrix in internal item order
        (``self.items``); −inf on and below the diagonal. Computed in blocks of rows, upper
        triangle only (half the work of the full matrix)."""
        n = len(self.items)
        gain = np.full((n, n), -np.inf, np.float32)
        d = np.diagonal(self.cov).astype(np.float32)
        g = None if self._gram is None else np.diagonal(self._gram).astype(np.float32)
        mu = self.mean.astype(np.float32)
        below = np.tril(np.ones((block, block), bool))
        for lo in range(0, n, block):
            hi = min(lo + block, n)
            v = self._spread(d, self.cov, lo, hi)
            m = np.subtract(mu[lo:hi, None], mu[None, lo:])
            if g is None:
                out = pair_information(m, v, self.sigma)
            else:
                out = variance_reduction(m, v, self._spread(g, self._gram, lo, hi), self.sigma,
                                         self.lapse)
            out[:, :hi - lo][below[:hi - lo, :hi - lo]] = -np.inf
            gain[lo:hi, lo:] = out
        return gain

    @staticmethod
    def _spread(diag, full, lo, hi):
        """diag_i + diag_j − 2 full_ij (≥ 0) for rows lo:hi, columns lo:, float32."""
        out = np.add(diag[lo:hi, None], diag[None, lo:])
        c = full[lo:hi, lo:].astype(np.float32)
        out -= c
        out -= c
        return np.maximum(out, 0, out=out)

    def expected_information(self, a: str, b: str) -> float:
        """The criterion for one pair (float64): bits for ``"information"``, variance units
        for ``"variance"``."""
        i, j = self._pair(a, b)
        v = max(self.cov[i, i] + self.cov[j, j] - 2 * self.cov[i, j], 0.0)
        m = self.mean[i] - self.mean[j]
        if self._gram is None:
            return float(pair_information(m, v, self.sigma))
        u2 = max(self._gram[i, i] + self._gram[j, j] - 2 * self._gram[i, j], 0.0)
        return float(variance_reduction(m, v, u2, self.sigma, self.lapse))

    def next_pair(self, subject=None, exclude: Iterable[tuple[str, str]] = ()) -> tuple[str, str]:
        """The pair with the largest expected information gain (``batch="mst"``: the next pair
        of the current spanning tree), in a seeded random left/right order; never a self-pair,
        a pair in ``exclude``, or (while another is left) a pair ``subject`` already judged.
        ComparisonError when every pair is excluded."""
        skip = [self._pair(a, b) for a, b in self._pairs_of(exclude)]
        seen = self._seen.get(subject, set()) if subject is not None else set()
        picked = take_from_batch(self, set(skip), seen) if self.batch == "mst" else None
        i, j = picked if picked is not None else self._best_pair(skip, seen)
        if self._rng.random() < 0.5:
            i, j = j, i
        return self.items[i], self.items[j]

    def _best_pair(self, skip, seen) -> tuple[int, int]:
        gain = self.information()
        if skip:
            rows, cols = np.array(skip).T
            gain[rows, cols] = -np.inf
        seen = np.array(sorted(seen))
        if len(seen):
            kept = gain[seen[:, 0], seen[:, 1]]
            gain[seen[:, 0], seen[:, 1]] = -np.inf
        i, j = divmod(int(np.argmax(gain)), len(self.items))
        if not np.isfinite(gain[i, j]) and len(seen):  # all seen: repeats are allowed again
            gain[seen[:, 0], seen[:, 1]] = kept
            i, j = divmod(int(np.argmax(gain)), len(self.items))
        if not np.isfinite(gain[i, j]):
            raise ComparisonError(f"no pair left to propose: all {len(self.items)} items' "
                                  "pairs are excluded")
        return i, j

    @staticmethod
    def _pairs_of(exclude) -> list[tuple]:
        out = []
        for pair in exclude:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ComparisonError(f"exclude must hold (a, b) pairs, got {pair!r}")
            out.append(tuple(pair))
        return out

"""Joint drift: shifts that no single feature shows on its own.

Per-feature tests (``detectors.numeric.ks_test``) compare marginals, so they
cannot see a change in how features move *together*: if the correlation of two
N(0, 1) features flips from +0.8 to -0.8, both marginals are unchanged.  Two
tests here look at the joint distribution.

``mmd_test``
    Kernel two-sample test: the (unbiased) squared Maximum Mean Discrepancy
    under a Gaussian kernel.  It is consistent against *every* difference of
    distributions, at the price of an O((n + m)^2) kernel matrix, which is why
    both samples are subsampled to at most ``max_n`` rows.

    Two p-values are computed from one label-permutation scheme:

    - ``permutation``: the share of ``permutations`` random relabellings whose
      statistic reaches the observed one, with the +1 correction
      ``(1 + #{T_perm >= T_obs}) / (permutations + 1)``.  Exact under the null,
      but it can never go below ``1 / (permutations + 1)`` (0.005 for the
      default 200), so it cannot pass a family-wise budget such as the
      daemon's alpha = 1e-5 unless ``permutations`` is raised to ~1e5+.
    - ``gamma`` (the default ``p_value``): the permutation null of the *biased*
      statistic MMD_b^2 (a V-statistic, always >= 0) approximated by a gamma
      law whose mean and variance are the **exact** moments of MMD_b^2 over all
      relabellings (closed form, O((n + m)^2), no Monte-Carlo noise), after
      Gretton et al. (2009), "A fast, consistent kernel two-sample test".  It
      can go as small as the data warrant.  It is an approximation: a gamma
      matched on two moments has a lighter tail than the true null (a weighted
      sum of chi-squares has skewness >= the matched gamma's, by Cauchy-Schwarz),
      so small p-values are optimistic.  Measured against 200,000 relabellings
      (n = m = 200; Gaussian d = 2 and 10, lognormal d = 3, t(2) d = 5): at the
      true 5e-2 / 1e-2 / 1e-3 / 1e-4 / 2e-5 null quantiles the gamma p-value reads
      4.7-5.0e-2 / 6.7-8.2e-3 / 2.8-6.2e-4 / 1.1-3.5e-5 / 1.2-5.5e-6, i.e. about
      right at 0.05, 1.5-3.5x too small at 1e-3 and 3-17x too small below 1e-4.
      Budget for that (e.g. give MMD a tenth of its Holm share) when alpha is tiny.

    The effect is the unbiased MMD^2 itself (clipped at 0), in [0, 2).  It is a
    population quantity (does not grow with n) but shrinks as d grows, because the
    median-heuristic bandwidth widens: measured with n = m = 1000, a 0.8 -> -0.8
    correlation flip gives ~0.08 with d = 2 and ~0.004 when the pair sits among
    10 features; a 0.3 sd mean shift of all 5 features ~0.02.  Null noise at
    n = m = 1000 is a few 1e-4.  The default floor is 0.002.

``pca_reconstruction_test``
    Fit PCA on one half of the (standardised) reference, keep the components
    explaining ``variance``; a joint shift moves mass off that subspace, so the
    current window's reconstruction errors grow.  They are compared with the
    errors of the *other*, held-out half of the reference (never used for the
    fit, so the comparison is exactly calibrated) by a one-sided Mann-Whitney U.
    Effect: mean(current error) / mean(held-out error) - 1.  Cheap (O(n d^2)),
    but blind to changes *inside* the retained subspace, e.g. a mean shift along
    the first principal axis; ``mmd_test`` covers those.

Preprocessing shared by both:

- Rows with any non-finite value (NaN, +-inf) are **dropped**, not imputed.
  Imputing the reference median would put a point mass on that coordinate, and
  a change in the missing rate would then register as joint drift; missingness
  is the data-quality checks' business (as in ``detectors.numeric``).  The
  counts dropped are reported in ``details``.
- Features are centred on the reference median and divided by the reference's
  robust scale (IQR / 1.349, falling back to the standard deviation, then to 1
  for a constant feature), so one feature in large units cannot own the kernel.

Caveats: the standardisation is fitted on the reference alone, so the MMD
permutation test is exact only up to that (negligible at these sizes) data
dependence; the gamma p-value's tail below ~1e-3 is anti-conservative (figures
above).  Null rejection at alpha 0.05 (300 trials, d = 3, n = m = 150 / 200):
gamma 0.033 / 0.037, permutation 0.040 / 0.037, PCA 0.053 / 0.050.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from detectors.ranks import mann_whitney_greater, tie_term
from detectors.result import TestResult, insufficient

MIN_N = 30
IQR_TO_SIGMA = 1.349  # IQR of N(0, 1)


# -- shared preprocessing ---------------------------------------------------------------


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows x features) array, got shape {a.shape}")
    return a


def _prepare(reference: np.ndarray, current: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    ref, cur = _as_2d(reference, "reference"), _as_2d(current, "current")
    if ref.shape[1] != cur.shape[1]:
        raise ValueError(f"reference has {ref.shape[1]} features, current {cur.shape[1]}")
    if ref.shape[1] == 0:
        raise ValueError("need at least one feature")
    ref_ok, cur_ok = np.isfinite(ref).all(axis=1), np.isfinite(cur).all(axis=1)
    dropped = {"reference_rows_dropped": int((~ref_ok).sum()),
               "current_rows_dropped": int((~cur_ok).sum())}
    return ref[ref_ok], cur[cur_ok], dropped


def _robust_scale(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature centre (median) and scale (IQR / 1.349 -> std -> 1)."""
    centre = np.median(ref, axis=0)
    q75, q25 = np.percentile(ref, [75, 25], axis=0)
    scale = (q75 - q25) / IQR_TO_SIGMA
    bad = ~(scale > 0)
    if bad.any():
        scale[bad] = ref[:, bad].std(axis=0)
        scale[~(scale > 0)] = 1.0
    return centre, scale


def _check_min_effect(min_effect: float) -> None:
    if not (np.isfinite(min_effect) and min_effect >= 0):
        raise ValueError(f"min_effect must be a finite number >= 0, got {min_effect!r}")


# -- MMD --------------------------------------------------------------------------------


def _gaussian_kernel(z: np.ndarray) -> tuple[np.ndarray, float]:
    """Gaussian Gram matrix (float32) of the pooled rows, bandwidth = median pairwise distance.

    The median is taken over all distinct pairs of the pooled sample (so it is
    invariant to relabelling, which keeps the permutation test exact).  The
    matrix is float32 to halve memory traffic; every sum over it is accumulated
    in float64.
    """
    n = z.shape[0]
    z32 = z.astype(np.float32)
    sq = np.einsum("ij,ij->i", z32, z32)
    d2 = z32 @ z32.T
    d2 *= -2.0
    d2 += sq[:, None]
    d2 += sq[None, :]
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    # Sorted, the full matrix holds the n diagonal zeros then every distinct pair
    # twice, so the median over pairs is at index n + n(n-1)/2 (upper middle).
    k = n + n * (n - 1) // 2
    med = float(np.partition(d2.ravel(), k)[k])
    if not med > 0:  # more than half the pairs coincide: fall back to the mean
        med = float(d2.sum(dtype=np.float64) / max(n * (n - 1), 1))
    if not med > 0:  # every row identical
        med = 1.0
    d2 *= np.float32(-1.0 / (2.0 * med))
    np.exp(d2, out=d2)
    np.fill_diagonal(d2, 1.0)
    return d2, float(np.sqrt(med))


def _coefficients(n: int, m: int, s1: float, biased: bool) -> tuple[float, float, float]:
    """MMD^2 = a*Q + b*L + c for the label vector s (1 = reference) where
    Q = s' A s, L = s' r, A = K with a zero diagonal, r = A's row sums, s1 = sum(A)."""
    if biased:
        a = 1 / n**2 + 1 / m**2 + 2 / (n * m)
        b = -2 / m**2 - 2 / (n * m)
        c = 1 / n + (s1 + m) / m**2
    else:
        a = 1 / (n * (n - 1)) + 1 / (m * (m - 1)) + 2 / (n * m)
        b = -2 / (m * (m - 1)) - 2 / (n * m)
        c = s1 / (m * (m - 1))
    return a, b, c


def _permutation_moments(n: int, total: int, s1: float, s2: float, r2: float,
                         a: float, b: float, c: float) -> tuple[float, float]:
    """Exact mean and variance of a*Q + b*L + c over all relabellings.

    s holds n ones among ``total`` places uniformly at random; E[s_i s_j ...] over
    k distinct indices is p_k = n(n-1)..(n-k+1) / (N(N-1)..(N-k+1)).
    s1 = sum A_ij, s2 = sum A_ij^2, r2 = sum_i r_i^2 (A symmetric, zero diagonal).
    """
    nn, big = float(n), float(total)
    p1 = nn / big
    p2 = p1 * (nn - 1) / (big - 1)
    p3 = p2 * (nn - 2) / (big - 2)
    p4 = p3 * (nn - 3) / (big - 3)
    e_q = p2 * s1
    e_q2 = 2 * s2 * p2 + 4 * (r2 - s2) * p3 + (s1 * s1 + 2 * s2 - 4 * r2) * p4
    e_l = p1 * s1
    e_l2 = p1 * r2 + p2 * (s1 * s1 - r2)
    e_lq = 2 * r2 * p2 + (s1 * s1 - 2 * r2) * p3
    var = (a * a * (e_q2 - e_q**2) + b * b * (e_l2 - e_l**2)
           + 2 * a * b * (e_lq - e_q * e_l))
    return a * e_q + b * e_l + c, max(var, 0.0)


def _subsample(x: np.ndarray, max_n: int, rng: np.random.Generator) -> np.ndarray:
    if x.shape[0] <= max_n:
        return x
    return x[np.sort(rng.choice(x.shape[0], size=max_n, replace=False))]


def mmd_test(reference: np.ndarray, current: np.ndarray, *, max_n: int = 1000,
             permutations: int = 200, seed: int = 0, min_effect: float = 0.002,
             p_value: Literal["gamma", "permutation"] = "gamma",
             min_n: int = MIN_N) -> TestResult:
    """Gaussian-kernel MMD two-sample test on rows of ``reference`` (n x d) and
    ``current`` (m x d).  See the module docstring for the two p-values; the one
    named by ``p_value`` is the result's, both are in ``details``.

    Deterministic for a fixed ``seed`` (subsampling and relabellings).  Cost is
    O((min(n, max_n) + min(m, max_n))^2 * (d + permutations)).
    """
    _check_min_effect(min_effect)
    if not (isinstance(max_n, int | np.integer) and max_n >= 2):
        raise ValueError(f"max_n must be an integer >= 2, got {max_n!r}")
    if not (isinstance(permutations, int | np.integer) and permutations >= 1):
        raise ValueError(f"permutations must be an integer >= 1, got {permutations!r}")
    if p_value not in ("gamma", "permutation"):
        raise ValueError(f"p_value must be 'gamma' or 'permutation', got {p_value!r}")
    if not (isinstance(min_n, int | np.integer) and min_n >= 4):
        raise ValueError(f"min_n must be an integer >= 4, got {min_n!r}")
    ref, cur, dropped = _prepare(reference, current)
    ref_n, cur_n = int(ref.shape[0]), int(cur.shape[0])
    if min(ref_n, cur_n, max_n) < min_n:
        return insufficient("mmd", min_effect, ref_n, cur_n, **dropped)

    rng = np.random.default_rng(seed)
    centre, scale = _robust_scale(ref)
    x = (_subsample(ref, max_n, rng) - centre) / scale
    y = (_subsample(cur, max_n, rng) - centre) / scale
    n, m = x.shape[0], y.shape[0]
    total = n + m
    kernel, bandwidth = _gaussian_kernel(np.vstack([x, y]))

    # Off-diagonal sums (the Gaussian kernel's diagonal is exactly 1).
    row = kernel.sum(axis=1, dtype=np.float64) - 1.0
    s1 = float(row.sum())
    s2 = float(np.square(kernel).sum(dtype=np.float64)) - total
    r2 = float(row @ row)

    # Column 0 is the observed labelling, the rest random relabellings.
    labels = np.zeros((total, permutations + 1), dtype=np.float32)
    labels[:n, 0] = 1.0
    order = rng.permuted(np.tile(np.arange(total), (permutations, 1)), axis=1)[:, :n]
    labels[order.T, np.arange(1, permutations + 1)] = 1.0
    # s'As for each labelling: the float32 GEMM is fine for the relabellings (error
    # ~1e-7 relative); the observed one, which the p-values hinge on, is exact-ish.
    q = np.einsum("ij,ij->j", kernel @ labels, labels, dtype=np.float64) - n
    q[0] = float(kernel[:n, :n].sum(dtype=np.float64)) - n
    lin = row @ labels.astype(np.float64)  # s'r

    au, bu, cu = _coefficients(n, m, s1, biased=False)
    ab, bb, cb = _coefficients(n, m, s1, biased=True)
    unbiased = au * q + bu * lin + cu
    stat = float(unbiased[0])
    # Relabellings are summed in float32 (absolute error ~1e-7 here): count near-ties
    # as ties, which can only make the p-value larger.
    tol = 1e-6 * (1.0 + abs(stat))
    p_perm = float((1 + np.count_nonzero(unbiased[1:] >= stat - tol)) / (permutations + 1))

    biased_obs = float(ab * q[0] + bb * lin[0] + cb)
    mean_b, var_b = _permutation_moments(n, total, s1, s2, r2, ab, bb, cb)
    if var_b > 0 and mean_b > 0:
        shape_k, theta = mean_b**2 / var_b, var_b / mean_b
        p_gamma = float(stats.gamma.sf(biased_obs, shape_k, scale=theta))
    else:  # every relabelling gives the same statistic
        shape_k = theta = float("nan")
        p_gamma = 1.0
    p = p_gamma if p_value == "gamma" else p_perm
    return TestResult(
        "mmd", stat, p, max(stat, 0.0), min_effect, ref_n, cur_n,
        details={"p_gamma": p_gamma, "p_permutation": p_perm, "p_value_method": p_value,
                 "permutations": int(permutations),
                 "min_attainable_p_permutation": 1.0 / (permutations + 1),
                 "mmd2_biased": biased_obs, "null_mean_biased": mean_b,
                 "null_std_biased": float(np.sqrt(var_b)),
                 "gamma_shape": float(shape_k), "gamma_scale": float(theta),
                 "bandwidth": bandwidth, "reference_used": int(n), "current_used": int(m),
                 "features": int(x.shape[1]), **dropped},
    )


# -- PCA reconstruction ----------------------------------------------------------------


def _ratio(cur: float, ref: float) -> float:
    if ref > 0:
        return cur / ref
    return 1.0 if cur <= 0 else float("inf")


@dataclass(frozen=True, eq=False)
class PcaReference:
    """The reference side of :func:`pca_reconstruction_test`, fitted once: the robust
    standardisation and principal basis of one half of the reference and the
    reconstruction errors of the held-out half (``basis`` is None below 2 rows)."""

    n: int  # finite rows kept
    d: int
    dropped: int  # rows with a non-finite value
    variance: float
    seed: int
    centre: np.ndarray | None = None
    scale: np.ndarray | None = None
    mean: np.ndarray | None = None
    basis: np.ndarray | None = None
    explained: float = 0.0  # variance share of the kept components
    fit_n: int = 0
    held_errors: np.ndarray | None = None  # sorted
    held_ties: int = 0  # their tie term (detectors.ranks)
    held_mean: float = 0.0

    @classmethod
    def fit(cls, reference: np.ndarray, *, variance: float = 0.9, seed: int = 0
            ) -> PcaReference:
        if not (np.isfinite(variance) and 0.0 < variance < 1.0):
            raise ValueError(f"variance must be in (0, 1), got {variance!r}")
        raw = _as_2d(reference, "reference")
        ok = np.isfinite(raw).all(axis=1)
        ref = raw[ok]
        n, d = int(ref.shape[0]), int(ref.shape[1])
        dropped = int((~ok).sum())
        if n < 2 or d < 2:
            return cls(n, d, dropped, variance, seed)
        perm = np.random.default_rng(seed).permutation(n)
        fit, held = ref[perm[: n // 2]], ref[perm[n // 2:]]
        centre, scale = _robust_scale(fit)
        zf = (fit - centre) / scale
        mean = zf.mean(axis=0)
        _, sv, vt = np.linalg.svd(zf - mean, full_matrices=False)
        explained = sv**2 / max(float((sv**2).sum()), np.finfo(float).tiny)
        k = int(np.searchsorted(np.cumsum(explained), variance - 1e-12) + 1)
        k = min(k, d - 1)
        out = cls(n, d, dropped, variance, seed, centre, scale, mean, vt[:k],
                  float(np.cumsum(explained)[k - 1]), int(fit.shape[0]))
        e_held = out.errors(held)
        object.__setattr__(out, "held_mean", float(e_held.mean()))
        e_held.sort()
        object.__setattr__(out, "held_errors", e_held)
        object.__setattr__(out, "held_ties", tie_term(e_held))
        return out

    def errors(self, a: np.ndarray) -> np.ndarray:
        """Squared reconstruction error of each row of ``a`` off the basis."""
        assert self.centre is not None and self.scale is not None
        assert self.mean is not None and self.basis is not None
        z = (a - self.centre) / self.scale - self.mean
        resid = z - (z @ self.basis.T) @ self.basis
        return np.einsum("ij,ij->i", resid, resid)


def pca_reconstruction_test(reference: np.ndarray | PcaReference, current: np.ndarray, *,
                            variance: float = 0.9, min_effect: float = 0.2, seed: int = 0,
                            min_n: int = MIN_N) -> TestResult:
    """Has the current window moved off the reference's principal subspace?

    The reference is split at random (``seed``) into a fit half and a held-out
    half.  At most d - 1 components are kept (all d would reconstruct exactly).
    One-sided Mann-Whitney U: current errors stochastically larger than held-out
    ones.  Needs >= 2 features, ``2 * min_n`` reference rows and ``min_n`` current.
    A reference tested against many windows is fitted once (:class:`PcaReference`,
    with the same ``variance`` and ``seed``).
    """
    _check_min_effect(min_effect)
    if not (np.isfinite(variance) and 0.0 < variance < 1.0):
        raise ValueError(f"variance must be in (0, 1), got {variance!r}")
    if not (isinstance(min_n, int | np.integer) and min_n >= 2):
        raise ValueError(f"min_n must be an integer >= 2, got {min_n!r}")
    cur = _as_2d(current, "current")
    if isinstance(reference, PcaReference):
        fitted = reference
        if (fitted.variance, fitted.seed) != (variance, seed):
            raise ValueError(f"the reference was fitted with variance={fitted.variance!r}, "
                             f"seed={fitted.seed!r}, not {variance!r}, {seed!r}")
    else:
        ref = _as_2d(reference, "reference")
        if ref.shape[1] != cur.shape[1]:
            raise ValueError(f"reference has {ref.shape[1]} features, current {cur.shape[1]}")
        fitted = PcaReference.fit(ref, variance=variance, seed=seed)
    d = fitted.d
    if d != cur.shape[1]:
        raise ValueError(f"reference has {d} features, current {cur.shape[1]}")
    if d == 0:
        raise ValueError("need at least one feature")
    cur_ok = np.isfinite(cur).all(axis=1)
    cur = cur[cur_ok]
    dropped = {"reference_rows_dropped": fitted.dropped,
               "current_rows_dropped": int((~cur_ok).sum())}
    ref_n, cur_n = fitted.n, int(cur.shape[0])
    if d < 2:
        raise ValueError("pca_reconstruction_test needs at least 2 features")
    if ref_n < 2 * min_n or cur_n < min_n:
        return insufficient("pca_reconstruction", min_effect, ref_n, cur_n, **dropped)
    assert fitted.held_errors is not None and fitted.basis is not None
    e_held, e_cur = fitted.held_errors, fitted.errors(cur)
    held_mean, cur_mean = fitted.held_mean, float(e_cur.mean())
    effect = _ratio(cur_mean, held_mean) - 1.0
    if np.ptp(np.concatenate([e_held, e_cur])) > 0:
        stat, p = mann_whitney_greater(e_cur, e_held, fitted.held_ties)
    else:  # all errors equal: nothing to compare
        stat, p = float(e_cur.size * e_held.size) / 2, 1.0
    return TestResult(
        "pca_reconstruction", stat, p, effect, min_effect, ref_n, cur_n,
        details={"components": int(fitted.basis.shape[0]), "features": d,
                 "explained_variance": fitted.explained,
                 "held_out_mean_error": held_mean, "current_mean_error": cur_mean,
                 "fit_n": fitted.fit_n, "held_out_n": int(e_held.shape[0]), **dropped},
    )

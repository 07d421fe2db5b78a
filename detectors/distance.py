"""Distribution distances beyond KS and chi-square, each with a p-value and an effect.

Numeric (NaN/None/inf dropped):

* ``cvm_test`` -- Cramér-von Mises two-sample test (scipy, asymptotic p-value).
  Effect: the root-mean-square gap between the two empirical CDFs over the pooled
  sample, sqrt(mean_z (F_ref(z) - F_cur(z))^2).  It lives in [0, 1] like the KS
  distance and is at most it; a 0.25 sigma normal mean shift gives ~0.075
  (KS ~0.10), hence the default floor 0.03 (~0.1 sigma).
* ``ad_test`` -- Anderson-Darling k-sample test (scipy, ``variant="right"``: on tied
  Poisson(3) data the midrank variant rejected 8 % of stationary 200/60 windows,
  "right" 6-7 %; without ties the two agree to 1e-3).  scipy
  floors/caps its interpolated p-value to [0.001, 0.25]; a floored 0.001 could never
  beat a budgeted alpha such as 1e-5.  We therefore ignore scipy's p-value and take
  the tail of the asymptotic null law of the two-sample A^2 (Pettitt 1976), which is
  the classical A^2_inf = sum_j Z_j^2 / (j (j + 1)), evaluated with Smirnov's exact
  integral formula (``ad_asymptotic_sf``); scipy's standardised statistic T is mapped
  onto it by matching the first two moments (x = 1 + T sigma_inf), as Scholz and
  Stephens (1987) do.  Effect: sqrt(A^2 (n + m) / (n m)), the RMS of the
  variance-standardised ECDF gap (F_ref - F_cur) / sqrt(H (1 - H)) -- tail-weighted.
* ``wasserstein_test`` -- W1 distance divided by the reference's robust scale
  (IQR / 1.349, else std, else the pooled std).  P-value: a conservative bound.
  Under H0, sqrt(n m / (n + m)) W1 -> ||B o F||_1 (B a Brownian bridge), the L1 norm
  of a Gaussian process whose weak variance sup_{|g|<=1} Var(int g B(F)) equals
  Var(X); Borell-TIS gives P(S - E S > u) <= exp(-u^2 / (2 Var X)) with
  E S = sqrt(2 / pi) int sqrt(F (1 - F)) dx.  Both are estimated on the pooled
  sample.  The bound is valid but conservative (rejects far less than alpha under
  H0, and has less power than KS for small shifts at small n); no permutation, no
  KS p-value, deterministic, O(N log N).
* ``psi_test``, ``js_test``, ``hellinger_test`` -- on ``bins`` quantile bins of the
  reference (capped so that every bin expects >= 20 observations of the smaller
  sample, so all ``bins`` are used once it has 20 * bins values; a value holding a
  bin's worth of the reference gets a bin of its own; bins empty in both samples are
  dropped).  Large-sample laws under H0,
  with k bins and n_eff = n m / (n + m):

  - PSI (the Jeffreys divergence, with ``pseudocount`` added to every bin so empty
    bins stay finite): n_eff * PSI ~ chi2(k - 1).
  - JS (Jensen-Shannon, base 2, equal weights, in [0, 1]) is the effect; the p-value
    is the G-test of the 2 x k table, G = 2 (n + m) ln 2 * JS_w where JS_w is the
    JS divergence with weights n/(n+m), m/(n+m) (exact identity); G ~ chi2(k - 1).
  - Hellinger distance H (in [0, 1]): 8 n_eff H^2 ~ chi2(k - 1)
    (8 H^2 = 4 sum (sqrt p - sqrt q)^2 ~ sum (p - q)^2 / p, Pearson's form).

Categorical (None/NaN dropped, values compared as strings): ``categorical_psi_test``,
``categorical_js_test``, ``tv_test``.  Effects use every category; the p-values use the
table with categories too rare for the chi-square approximation (expected < 5) pooled
into one cell, as in ``detectors.categorical``.  New and vanished categories are
reported by name.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import special, stats

from detectors.numeric import finite_values
from detectors.result import TestResult, check_min_n, insufficient

MIN_N = 30
MIN_EXPECTED = 5.0  # categorical cells, as in detectors.categorical
# Numeric bins: every bin expects >= 20 of the smaller sample.  At 5 the Hellinger
# statistic rejected 10 % (1 % level: 5 %) of stationary 200/60 windows and the G-test
# 7.6 %; at 20 all three stay within 0.065 (measured, see tests).
MIN_EXPECTED_BIN = 20.0
VANISHED_MIN_SHARE = 0.01
MAX_LISTED = 5
PSEUDOCOUNT = 0.5
# Variance of A^2_inf = sum_j Z_j^2 / (j (j + 1)): 2 sum 1 / (j (j + 1))^2 = 2 (pi^2 - 9) / 3.
_AD_SIGMA_INF = math.sqrt(2.0 * (math.pi**2 - 9.0) / 3.0)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)
_GL_THETA = (_GL_X + 1.0) * math.pi / 4.0
_GL_WEIGHT = _GL_W * math.pi / 4.0


# -- validation and cleaning ------------------------------------------------------------


def _check_effect(min_effect: float, upper: float | None = 1.0) -> None:
    if not (min_effect >= 0.0 and (upper is None or min_effect <= upper)):
        bound = "[0, 1]" if upper is not None else ">= 0"
        raise ValueError(f"min_effect must be {bound}, got {min_effect!r}")


def _check_bins(bins: int, pseudocount: float | None = None) -> None:
    if not (isinstance(bins, int | np.integer) and bins >= 2):
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    if pseudocount is not None and not pseudocount > 0.0:
        raise ValueError(f"pseudocount must be > 0, got {pseudocount!r}")


def _ecdfs(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both ECDFs and the pooled ECDF at every pooled point (right-continuous)."""
    r, c = np.sort(ref), np.sort(cur)
    z = np.concatenate([r, c])
    z.sort()
    f = np.searchsorted(r, z, side="right") / r.size
    g = np.searchsorted(c, z, side="right") / c.size
    h = (f * r.size + g * c.size) / z.size
    return f, g, h


def _n_eff(n: int, m: int) -> float:
    return n * m / (n + m)


# -- CvM and AD ---------------------------------------------------------------------------


def cvm_test(reference: Any, current: Any, *, min_effect: float = 0.03,
             min_n: int = MIN_N) -> TestResult:
    """Cramér-von Mises two-sample test; effect = RMS ECDF gap (see module docstring)."""
    _check_effect(min_effect)
    check_min_n(min_n, 2)
    ref, cur = finite_values(reference), finite_values(current)
    n, m = int(ref.size), int(cur.size)
    if n < min_n or m < min_n:
        return insufficient("cvm", min_effect, n, m)
    if np.unique(np.concatenate([ref, cur])).size < 2:  # scipy says p ~ 0.08 for this
        return TestResult("cvm", 0.0, 1.0, 0.0, min_effect, n, m, details={"constant": True})
    f, g, _ = _ecdfs(ref, cur)
    ms = float(np.mean((f - g) ** 2))
    effect = math.sqrt(ms)
    pooled = np.concatenate([ref, cur])
    ties = np.unique(pooled).size < pooled.size
    if ties:
        # scipy's midrank U is wrong under heavy ties (it rejected 100 % of stationary
        # Poisson(3) windows); T = n m / N^2 sum_z (F - G)^2 over the pooled points is
        # Anderson's definition, equals scipy's T without ties, and is conservative with.
        t, scipy_p = _n_eff(n, m) * ms, None
    else:
        res = stats.cramervonmises_2samp(ref, cur, method="asymptotic")
        t, scipy_p = float(res.statistic), float(res.pvalue)
    # Anderson (1962): standardise T by its exact mean and variance, then read the
    # tail of the one-sample limit (what scipy does, minus its 1e-7 truncation).
    big_n, k = n + m, n * m
    et = (1.0 + 1.0 / big_n) / 6.0
    vt = (big_n + 1) * (4 * k * big_n - 3 * (n * n + m * m) - 2 * k) / (45 * big_n**2 * 4 * k)
    p = cvm_asymptotic_sf(1.0 / 6.0 + (t - et) / math.sqrt(45.0 * vt))
    return TestResult("cvm", t, p, effect, min_effect, n, m,
                      details={"ref_mean": float(ref.mean()), "cur_mean": float(cur.mean()),
                               "ties": bool(ties), "scipy_p_value": scipy_p})


def _smirnov_sf(x: float, interval: Any, neg_d: Any) -> float:
    """P(X > x) for X = sum_j lambda_j Z_j^2, lambda_1 > lambda_2 > ... (Smirnov 1937).

    P(X > x) = 1/pi sum_k (-1)^(k+1) int_{a_k}^{b_k} exp(-x u / 2) / (u sqrt(-D(u))) du,
    a_k = 1/lambda_{2k-1}, b_k = 1/lambda_{2k}, D(u) = prod_j (1 - lambda_j u).  Each
    integral is taken with u = a + (b - a) sin^2(theta), which removes both endpoint
    singularities, and 64-point Gauss-Legendre; the series stops when its terms fall
    below 1e-17 of the sum, so tiny tail probabilities keep their relative accuracy.
    """
    if not x > 0.0:
        return 1.0
    total = 0.0
    for k in range(1, 5000):
        a, b = interval(k)
        u = a + (b - a) * np.sin(_GL_THETA) ** 2
        g = neg_d(u) / ((u - a) * (b - u))
        term = float(np.sum(_GL_WEIGHT * 2.0 * np.exp(-0.5 * x * u) / (u * np.sqrt(g)))) / math.pi
        total += term if k % 2 else -term
        if math.exp(-0.5 * x * a) < 1e-17 * max(total, 1e-300):
            break
    return min(max(total, 0.0), 1.0)


def ad_asymptotic_sf(x: float) -> float:
    """P(A^2_inf > x), A^2_inf = sum_{j>=1} Z_j^2 / (j (j + 1)), the limit of the
    (two-sample) Anderson-Darling statistic; D(u) = -cos(pi/2 sqrt(1 + 4u)) / (pi u).

    Agrees with the published asymptotic critical values (1.933 -> 0.10,
    2.492 -> 0.05) and with the large-x asymptote sqrt(3) erfc(sqrt(x)).
    """
    return _smirnov_sf(
        x, lambda k: (float((2 * k - 1) * 2 * k), float(2 * k * (2 * k + 1))),
        lambda u: np.cos(0.5 * math.pi * np.sqrt(1.0 + 4.0 * u)) / (math.pi * u))


def cvm_asymptotic_sf(x: float) -> float:
    """P(W^2_inf > x), W^2_inf = sum_{j>=1} Z_j^2 / (j pi)^2, the limit of the
    Cramér-von Mises statistic; D(u) = sin(sqrt u) / sqrt u.

    scipy's own asymptotic p-value is 1 - cdf with the cdf series cut at 1e-7, so it
    is meaningless (not even monotone) below ~1e-7; this one is not.
    """
    return _smirnov_sf(
        x, lambda k: (((2 * k - 1) * math.pi) ** 2, (2 * k * math.pi) ** 2),
        lambda u: -np.sin(np.sqrt(u)) / np.sqrt(u))


def ad_test(reference: Any, current: Any, *, min_effect: float = 0.1,
            min_n: int = MIN_N) -> TestResult:
    """Anderson-Darling two-sample test with an unfloored asymptotic p-value.

    Default floor 0.1: a 0.25 sigma normal mean shift has effect ~0.25, a 0.1 sigma
    shift ~0.1; under H0 the effect is about sqrt((n + m) / (n m)) (0.06 at 1000/400).
    """
    _check_effect(min_effect, upper=None)
    check_min_n(min_n, 2)
    ref, cur = finite_values(reference), finite_values(current)
    n, m = int(ref.size), int(cur.size)
    if n < min_n or m < min_n:
        return insufficient("ad", min_effect, n, m)
    if np.unique(np.concatenate([ref, cur])).size < 2:  # scipy raises on this
        return TestResult("ad", 0.0, 1.0, 0.0, min_effect, n, m, details={"constant": True})
    f, g, h = _ecdfs(ref, cur)
    inner = h < 1.0
    a2 = float(np.sum((f[inner] - g[inner]) ** 2 / (h[inner] * (1.0 - h[inner])))) / (n + m)
    effect = math.sqrt(a2)
    with warnings.catch_warnings():
        # scipy warns that its own interpolated p-value is capped/floored; we don't use it.
        warnings.simplefilter("ignore", UserWarning)
        res = stats.anderson_ksamp([ref, cur], variant="right")
    t = float(res.statistic)
    p = ad_asymptotic_sf(1.0 + t * _AD_SIGMA_INF)
    return TestResult("ad", t, p, effect, min_effect, n, m,
                      details={"a2": a2 * _n_eff(n, m), "scipy_p_value": float(res.pvalue)})


# -- Wasserstein ----------------------------------------------------------------------------


def _robust_scale(ref: np.ndarray, pooled: np.ndarray) -> float:
    q1, q3 = np.quantile(ref, [0.25, 0.75])
    for s in ((q3 - q1) / 1.349, ref.std(), pooled.std()):
        if s > 0.0 and math.isfinite(s):
            return float(s)
    return 0.0


def wasserstein_test(reference: Any, current: Any, *, min_effect: float = 0.1,
                     min_n: int = MIN_N) -> TestResult:
    """W1 / robust reference scale; p-value a Borell-TIS bound (module docstring).

    The effect reads in reference standard deviations: a pure mean shift of
    d sigma gives d.  Default floor 0.1 sigma.
    """
    _check_effect(min_effect, upper=None)
    check_min_n(min_n, 2)
    ref, cur = finite_values(reference), finite_values(current)
    n, m = int(ref.size), int(cur.size)
    if n < min_n or m < min_n:
        return insufficient("wasserstein", min_effect, n, m)
    z = np.sort(np.concatenate([ref, cur]))
    scale = _robust_scale(ref, z)
    if scale == 0.0:  # everything is one value
        return TestResult("wasserstein", 0.0, 1.0, 0.0, min_effect, n, m,
                          details={"w1": 0.0, "scale": 0.0, "constant": True})
    w1 = float(stats.wasserstein_distance(ref, cur))
    s = math.sqrt(_n_eff(n, m)) * w1
    hk = np.arange(1, z.size) / z.size
    mean_s = math.sqrt(2.0 / math.pi) * float(np.sum(np.sqrt(hk * (1.0 - hk)) * np.diff(z)))
    var = float(z.var())
    excess = s - mean_s
    p = 1.0 if excess <= 0.0 or var <= 0.0 else math.exp(-excess * excess / (2.0 * var))
    return TestResult("wasserstein", s, p, w1 / scale, min_effect, n, m,
                      details={"w1": w1, "scale": scale, "ref_mean": float(ref.mean()),
                               "cur_mean": float(cur.mean())})


# -- binned divergences (numeric) ---------------------------------------------------------


def _quantile_bins(ref: np.ndarray, cur: np.ndarray, bins: int
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Counts on ``bins`` quantile bins of the reference (fewer for small samples).

    A value holding at least a bin's worth of the reference (an atom: a default, a
    clipped bound, a constant feature) gets a bin of its own, with the open intervals
    either side of it separate -- otherwise a constant reference puts everything in
    one bin and a current window that moves off the constant is invisible.
    """
    k = max(2, min(bins, int(min(ref.size, cur.size) // MIN_EXPECTED_BIN)))
    values, counts = np.unique(ref, return_counts=True)
    atoms = values[counts >= ref.size / k]
    edges = np.union1d(np.quantile(ref, np.arange(1, k) / k), atoms)
    nb = 2 * edges.size + 1

    def index(x: np.ndarray) -> np.ndarray:
        right = np.searchsorted(edges, x, side="right")
        return 2 * right - np.isin(x, atoms).astype(int)

    rc = np.bincount(index(ref), minlength=nb).astype(float)
    cc = np.bincount(index(cur), minlength=nb).astype(float)
    keep = (rc + cc) > 0
    return rc[keep], cc[keep], k


def _psi(rc: np.ndarray, cc: np.ndarray, pseudocount: float) -> float:
    p = (rc + pseudocount) / (rc.sum() + pseudocount * rc.size)
    q = (cc + pseudocount) / (cc.sum() + pseudocount * cc.size)
    return max(float(np.sum((q - p) * np.log(q / p))), 0.0)


def _js_bits(rc: np.ndarray, cc: np.ndarray) -> float:
    p, q = rc / rc.sum(), cc / cc.sum()
    mix = 0.5 * (p + q)
    js = 0.5 * float(np.sum(special.rel_entr(p, mix) + special.rel_entr(q, mix))) / math.log(2)
    return min(max(js, 0.0), 1.0)


def _g_stat(rc: np.ndarray, cc: np.ndarray) -> float:
    table = np.vstack([rc, cc])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    return max(2.0 * float(np.sum(special.rel_entr(table, expected))), 0.0)


def _hellinger(rc: np.ndarray, cc: np.ndarray) -> float:
    p, q = rc / rc.sum(), cc / cc.sum()
    return math.sqrt(min(max(1.0 - float(np.sum(np.sqrt(p * q))), 0.0), 1.0))


def _pearson(rc: np.ndarray, cc: np.ndarray) -> float:
    table = np.vstack([rc, cc])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    return float(np.sum((table - expected) ** 2 / expected))


def _binned(name: str, reference: Any, current: Any, min_effect: float, min_n: int,
            bins: int, upper: float | None, pseudocount: float | None = None
            ) -> tuple[np.ndarray, np.ndarray, int, int, int] | TestResult:
    _check_effect(min_effect, upper)
    check_min_n(min_n, 2)
    _check_bins(bins, pseudocount)
    ref, cur = finite_values(reference), finite_values(current)
    n, m = int(ref.size), int(cur.size)
    if n < min_n or m < min_n:
        return insufficient(name, min_effect, n, m)
    rc, cc, k = _quantile_bins(ref, cur, bins)
    if rc.size < 2:
        return TestResult(name, 0.0, 1.0, 0.0, min_effect, n, m,
                          details={"bins": int(rc.size), "constant": True})
    return rc, cc, n, m, k


def psi_test(reference: Any, current: Any, *, min_effect: float = 0.1, min_n: int = MIN_N,
             bins: int = 10, pseudocount: float = PSEUDOCOUNT) -> TestResult:
    """Population Stability Index on quantile bins of the reference.

    Conventional reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.  PSI is
    roughly 0.9 d^2 for a d sigma normal mean shift on 10 bins, so the default
    floor 0.1 ignores a 0.25 sigma shift (PSI ~0.06) and fires on 0.5 sigma (~0.22).
    ``pseudocount`` (in observations) is added to every bin of both samples.
    """
    got = _binned("psi", reference, current, min_effect, min_n, bins, None, pseudocount)
    if isinstance(got, TestResult):
        return got
    rc, cc, n, m, _ = got
    psi = _psi(rc, cc, pseudocount)
    stat = _n_eff(n, m) * psi
    p = float(stats.chi2.sf(stat, rc.size - 1))
    return TestResult("psi", stat, p, psi, min_effect, n, m, details={"bins": int(rc.size)})


def js_test(reference: Any, current: Any, *, min_effect: float = 0.02, min_n: int = MIN_N,
            bins: int = 10) -> TestResult:
    """Jensen-Shannon divergence (bits) on the PSI bins; p-value from the G-test.

    JS ~ PSI / (8 ln 2) for small changes, so the default 0.02 ~ PSI 0.11.
    """
    got = _binned("js", reference, current, min_effect, min_n, bins, 1.0)
    if isinstance(got, TestResult):
        return got
    rc, cc, n, m, _ = got
    g = _g_stat(rc, cc)
    p = float(stats.chi2.sf(g, rc.size - 1))
    return TestResult("js", g, p, _js_bits(rc, cc), min_effect, n, m,
                      details={"bins": int(rc.size)})


def hellinger_test(reference: Any, current: Any, *, min_effect: float = 0.1, min_n: int = MIN_N,
                   bins: int = 10) -> TestResult:
    """Hellinger distance on the PSI bins; 8 n_eff H^2 ~ chi2(k - 1).

    H^2 ~ PSI / 8 for small changes, so the default 0.1 ~ PSI 0.08.
    """
    got = _binned("hellinger", reference, current, min_effect, min_n, bins, 1.0)
    if isinstance(got, TestResult):
        return got
    rc, cc, n, m, _ = got
    h = _hellinger(rc, cc)
    stat = 8.0 * _n_eff(n, m) * h * h
    p = float(stats.chi2.sf(stat, rc.size - 1))
    return TestResult("hellinger", stat, p, h, min_effect, n, m, details={"bins": int(rc.size)})


# -- categorical -----------------------------------------------------------------------------


def _category_values(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=object).ravel()
    # None and NaN (NaN != NaN) are missing
    keep = np.not_equal(arr, np.asarray(None, dtype=object)) & (arr == arr)
    return arr[keep.astype(bool)].astype(str)


def category_table(reference: Any, current: Any
                   ) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, Any]]:
    """Categories (sorted), their reference and current counts, and the
    new/vanished-category details shared by the categorical distance tests."""
    rcats, rcounts = np.unique(_category_values(reference), return_counts=True)
    ccats, ccounts = np.unique(_category_values(current), return_counts=True)
    rmap = dict(zip(rcats.tolist(), rcounts.tolist(), strict=True))
    cmap = dict(zip(ccats.tolist(), ccounts.tolist(), strict=True))
    cats = sorted(set(rmap) | set(cmap))
    rc = np.array([rmap.get(c, 0) for c in cats], dtype=float)
    cc = np.array([cmap.get(c, 0) for c in cats], dtype=float)
    rn = sum(rmap.values())
    new = sorted((c for c in cmap if c not in rmap), key=lambda c: -cmap[c])[:MAX_LISTED]
    vanished = sorted((c for c in rmap if c not in cmap and rmap[c] / rn >= VANISHED_MIN_SHARE),
                      key=lambda c: -rmap[c])[:MAX_LISTED]
    details = {"categories": len(cats), "new_categories": new, "vanished_categories": vanished}
    return cats, rc, cc, details


def _pool_rare(rc: np.ndarray, cc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool categories whose expected count in the smaller sample is < 5 into one cell."""
    n, m = rc.sum(), cc.sum()
    expected = (rc + cc) * min(n, m) / (n + m)
    rare = expected < MIN_EXPECTED
    if rare.any():
        rc = np.append(rc[~rare], rc[rare].sum())
        cc = np.append(cc[~rare], cc[rare].sum())
    keep = (rc + cc) > 0
    return rc[keep], cc[keep]


def _categorical(name: str, reference: Any, current: Any, min_effect: float, min_n: int,
                 upper: float | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any],
                            int, int] | TestResult:
    _check_effect(min_effect, upper)
    check_min_n(min_n, 2)
    _, rc, cc, details = category_table(reference, current)
    n, m = int(rc.sum()), int(cc.sum())
    if n < min_n or m < min_n:
        return insufficient(name, min_effect, n, m)
    prc, pcc = _pool_rare(rc, cc)
    return rc, cc, prc, pcc, details, n, m


def categorical_psi_test(reference: Any, current: Any, *, min_effect: float = 0.1,
                         min_n: int = MIN_N, pseudocount: float = PSEUDOCOUNT) -> TestResult:
    """PSI over categories (every category, smoothed); n_eff PSI of the pooled table ~ chi2."""
    _check_bins(2, pseudocount)
    got = _categorical("psi_cat", reference, current, min_effect, min_n, None)
    if isinstance(got, TestResult):
        return got
    rc, cc, prc, pcc, details, n, m = got
    psi = _psi(rc, cc, pseudocount)
    if prc.size < 2:
        return TestResult("psi_cat", 0.0, 1.0, psi, min_effect, n, m, details=details)
    stat = _n_eff(n, m) * _psi(prc, pcc, pseudocount)
    p = float(stats.chi2.sf(stat, prc.size - 1))
    return TestResult("psi_cat", stat, p, psi, min_effect, n, m, details=details)


def categorical_js_test(reference: Any, current: Any, *, min_effect: float = 0.02,
                        min_n: int = MIN_N) -> TestResult:
    """Jensen-Shannon divergence (bits) over categories; G-test p-value (pooled table)."""
    got = _categorical("js_cat", reference, current, min_effect, min_n, 1.0)
    if isinstance(got, TestResult):
        return got
    rc, cc, prc, pcc, details, n, m = got
    js = _js_bits(rc, cc)
    if prc.size < 2:
        return TestResult("js_cat", 0.0, 1.0, js, min_effect, n, m, details=details)
    g = _g_stat(prc, pcc)
    p = float(stats.chi2.sf(g, prc.size - 1))
    return TestResult("js_cat", g, p, js, min_effect, n, m, details=details)


def tv_test(reference: Any, current: Any, *, min_effect: float = 0.05,
            min_n: int = MIN_N) -> TestResult:
    """Total variation distance over categories; Pearson chi-square p-value (pooled table).

    The same test as ``detectors.categorical.chi2_test`` under the name "tv", with the
    statistic being the chi-square value of the pooled table.
    """
    got = _categorical("tv", reference, current, min_effect, min_n, 1.0)
    if isinstance(got, TestResult):
        return got
    rc, cc, prc, pcc, details, n, m = got
    tv = min(0.5 * float(np.abs(rc / n - cc / m).sum()), 1.0)
    if prc.size < 2:
        return TestResult("tv", 0.0, 1.0, tv, min_effect, n, m, details=details)
    x2 = _pearson(prc, pcc)
    p = float(stats.chi2.sf(x2, prc.size - 1))
    return TestResult("tv", x2, p, tv, min_effect, n, m, details=details)

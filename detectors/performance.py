"""Model quality once labels arrive, and before they do.

Metrics of one window, each with a confidence interval:

- :func:`binary_metrics` -- probabilities of the positive class vs 0/1 labels:
  accuracy (Wilson interval), precision/recall/F1 at ``threshold``, ROC AUC
  (Mann-Whitney, with DeLong's standard error), log loss (clipped);
- :func:`multiclass_metrics` -- class predictions vs class labels: accuracy
  (Wilson), macro F1 over the classes seen in either column;
- :func:`regression_metrics` -- MAE (t interval on absolute errors), RMSE
  (percentile bootstrap with a fixed seed for small windows, else a t interval on
  squared errors mapped through the square root).

Tests (:class:`~detectors.result.TestResult`, one-sided: only *worse* alarms):

- :func:`performance_test` -- current window vs reference window on accuracy
  (two-proportion z, or Fisher's exact test when counts are small), AUC (z on
  DeLong standard errors, windows independent) or MAE (Welch on absolute errors).
  The null is not "no worse" but "worse by at most half the effect floor"
  (:data:`MARGIN_SHARE`): every window is compared with the same reference, so
  a reference that happened to score high makes each window look a little
  worse, and a test of "no worse" at a small alpha then pages window after
  window (exactly, over the window's binomial: a 2,500-pair reference two
  standard errors luckier than a 90 % model makes the z test at 2.5e-4 alarm on
  3.9x its share of stationary 1,000-pair windows; against the margin 0.06x;
  ``tests/detectors/test_performance.py``).  The large samples' flip side holds
  too: a drop below the floor never pages, however many pairs show it;
- :func:`contract_test` -- accuracy below a contracted minimum (exact binomial);
- :func:`cbpe_test` -- label-free: *estimated* accuracy dropping (see :func:`cbpe`);
- :func:`label_delay_test` -- labels stopping: fewer predictions labelled than
  the reference's label rate leads one to expect.

Metric functions return plain-python dicts (JSON-able; undefined values are
``nan``) that carry the sufficient statistics the tests need, so a reference
window's metrics can be stored and compared with later windows.  Rows where the
prediction or the label is missing (NaN / None) are dropped and counted in
``missing``; out-of-range values raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from detectors.result import TestResult, insufficient

MIN_N = 30
MIN_CLASS_N = 10  # positives and negatives needed per window for an AUC test
NAN = float("nan")
DEFAULT_MIN_EFFECT = {"accuracy": 0.02, "auc": 0.02, "mae": 0.10}
# a reference comparison's null: worse than the reference by up to this share of the floor
MARGIN_SHARE = 0.5


# -- helpers ------------------------------------------------------------------------------


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _check_min_effect(min_effect: float) -> None:
    if not min_effect >= 0.0 or not math.isfinite(min_effect):
        raise ValueError(f"min_effect must be a finite number >= 0, got {min_effect!r}")


def _check_min_n(min_n: int) -> None:
    if not min_n >= 1:
        raise ValueError(f"min_n must be >= 1, got {min_n!r}")


def wilson_ci(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    z = _check_confidence(confidence)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes!r} n={n!r}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _pairs(pred: Any, label: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray, int]:
    a = np.asarray(pred, dtype=dtype).ravel()
    b = np.asarray(label, dtype=dtype).ravel()
    if a.shape != b.shape:
        raise ValueError(f"predictions and labels differ in length: {a.size} vs {b.size}")
    if dtype is object:
        ok = np.array([x is not None and y is not None for x, y in zip(a, b, strict=True)],
                      dtype=bool).reshape(a.shape)
    else:
        ok = ~(np.isnan(a) | np.isnan(b))
    missing = int(a.size - ok.sum())
    return a[ok], b[ok], missing


def _binary_labels(label: np.ndarray) -> np.ndarray:
    if not np.isin(label, (0.0, 1.0)).all():
        raise ValueError("binary labels must be 0/1 or bool")
    return label == 1.0


def _t_ci(values: np.ndarray, z_conf: float) -> tuple[float, float, float, float]:
    """Mean, sample sd and t interval of ``values``."""
    n = values.size
    mean = float(values.mean())
    if n < 2:
        return mean, NAN, NAN, NAN
    sd = float(values.std(ddof=1))
    conf = 2 * stats.norm.cdf(z_conf) - 1
    t = float(stats.t.ppf(0.5 + conf / 2, n - 1))
    half = t * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def _welch_greater(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float,
                   n_b: int) -> tuple[float, float]:
    """One-sided Welch test of mean_a > mean_b from summary statistics: (t, p)."""
    va, vb = sd_a * sd_a / n_a, sd_b * sd_b / n_b
    se = math.sqrt(va + vb)
    diff = mean_a - mean_b
    if se == 0.0:
        return (math.inf if diff > 0 else 0.0), (0.0 if diff > 0 else 1.0)
    t = diff / se
    df = (va + vb) ** 2 / ((va * va / (n_a - 1) if va else 0.0)
                          + (vb * vb / (n_b - 1) if vb else 0.0))
    return t, float(stats.t.sf(t, df))


# -- metrics ------------------------------------------------------------------------------


def binary_metrics(prob: Any, label: Any, *, threshold: float = 0.5,
                   confidence: float = 0.95, eps: float = 1e-15) -> dict[str, Any]:
    """Binary classification metrics; ``prob`` is P(positive), labels 0/1 or bool."""
    z = _check_confidence(confidence)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")
    p, y_raw, missing = _pairs(prob, label, np.float64)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must be in [0, 1]")
    y = _binary_labels(y_raw)
    n, n1 = int(y.size), int(y.sum())
    n0 = n - n1
    out: dict[str, Any] = {"n": n, "positives": n1, "missing": missing,
                           "threshold": threshold, "confidence": confidence}
    if n == 0:
        return {**out, "correct": 0, "accuracy": NAN, "accuracy_ci": [0.0, 1.0],
                "precision": NAN, "recall": NAN, "f1": NAN, "auc": NAN, "auc_se": NAN,
                "auc_ci": [NAN, NAN], "log_loss": NAN}
    hat = p >= threshold
    tp = int((hat & y).sum())
    fp = int((hat & ~y).sum())
    fn = n1 - tp
    correct = int((hat == y).sum())
    lo, hi = wilson_ci(correct, n, confidence)
    precision = tp / (tp + fp) if tp + fp else NAN
    recall = tp / n1 if n1 else NAN
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else NAN
    pc = np.clip(p, eps, 1 - eps)
    log_loss = float(-np.mean(np.where(y, np.log(pc), np.log1p(-pc))))
    auc = se = NAN
    if n1 and n0:
        # Mann-Whitney: AUC = P(score_pos > score_neg) + P(tie) / 2, via mid-ranks.
        ranks = stats.rankdata(p)
        v10 = (ranks[y] - stats.rankdata(p[y])) / n0  # per positive: negatives below
        v01 = 1.0 - (ranks[~y] - stats.rankdata(p[~y])) / n1  # per negative: positives above
        auc = float(v10.mean())
        if n1 >= 2 and n0 >= 2:  # DeLong's variance from the structural components
            se = math.sqrt(float(v10.var(ddof=1)) / n1 + float(v01.var(ddof=1)) / n0)
    auc_ci = ([max(0.0, auc - z * se), min(1.0, auc + z * se)] if math.isfinite(se)
              else [NAN, NAN])
    return {**out, "correct": correct, "accuracy": correct / n, "accuracy_ci": [lo, hi],
            "precision": precision, "recall": recall, "f1": f1, "auc": auc, "auc_se": se,
            "auc_ci": auc_ci, "log_loss": log_loss}


def multiclass_metrics(pred: Any, label: Any, *, confidence: float = 0.95) -> dict[str, Any]:
    """Class predictions vs class labels (strings): accuracy and macro F1."""
    _check_confidence(confidence)
    a, b, missing = _pairs(pred, label, object)
    n = int(a.size)
    if n == 0:
        return {"n": 0, "missing": missing, "correct": 0, "accuracy": NAN,
                "accuracy_ci": [0.0, 1.0], "macro_f1": NAN, "classes": 0,
                "confidence": confidence}
    a, b = a.astype(str), b.astype(str)
    classes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    pi, li = inv[:n], inv[n:]
    k = classes.size
    hit = pi == li
    correct = int(hit.sum())
    tp = np.bincount(li[hit], minlength=k)
    n_pred = np.bincount(pi, minlength=k)
    n_true = np.bincount(li, minlength=k)
    f1 = 2 * tp / (n_pred + n_true)  # every class occurs at least once: never 0/0
    lo, hi = wilson_ci(correct, n, confidence)
    return {"n": n, "missing": missing, "correct": correct, "accuracy": correct / n,
            "accuracy_ci": [lo, hi], "macro_f1": float(f1.mean()), "classes": int(k),
            "confidence": confidence}


def regression_metrics(pred: Any, label: Any, *, confidence: float = 0.95,
                       n_boot: int = 500, bootstrap_max_n: int = 2000,
                       seed: int = 0) -> dict[str, Any]:
    """MAE and RMSE with intervals.

    The RMSE interval is a percentile bootstrap (``n_boot`` resamples, fixed
    ``seed``: deterministic) when the window has at most ``bootstrap_max_n`` rows;
    larger windows use a t interval on the squared errors, square-rooted -- the
    cost stays O(n + n_boot * bootstrap_max_n)."""
    z = _check_confidence(confidence)
    if not 100 <= n_boot <= 10_000:
        raise ValueError(f"n_boot must be in [100, 10000], got {n_boot!r}")
    if not 0 <= bootstrap_max_n <= 100_000:
        raise ValueError(f"bootstrap_max_n must be in [0, 100000], got {bootstrap_max_n!r}")
    a, b, missing = _pairs(pred, label, np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("predictions and labels must be finite (or NaN for missing)")
    err = a - b
    n = int(err.size)
    out: dict[str, Any] = {"n": n, "missing": missing, "confidence": confidence}
    if n < 2:
        mae = float(np.abs(err).mean()) if n else NAN
        rmse = float(math.sqrt(np.mean(err * err))) if n else NAN
        return {**out, "mae": mae, "abs_err_sd": NAN, "mae_ci": [NAN, NAN], "rmse": rmse,
                "rmse_ci": [NAN, NAN], "rmse_method": "none"}
    abs_err = np.abs(err)
    mae, sd, mlo, mhi = _t_ci(abs_err, z)
    sq = err * err
    rmse = math.sqrt(float(sq.mean()))
    if n <= bootstrap_max_n:
        rng = np.random.default_rng(seed)
        boot = np.sqrt(sq[rng.integers(0, n, size=(n_boot, n))].mean(axis=1))
        tail = (1 - confidence) / 2
        rlo, rhi = (float(v) for v in np.quantile(boot, [tail, 1 - tail]))
        method = "bootstrap"
    else:
        _, _, slo, shi = _t_ci(sq, z)
        rlo, rhi = math.sqrt(max(0.0, slo)), math.sqrt(shi)
        method = "t"
    return {**out, "mae": mae, "abs_err_sd": sd, "mae_ci": [max(0.0, mlo), mhi],
            "rmse": rmse, "rmse_ci": [rlo, rhi], "rmse_method": method}


# -- tests against the reference ----------------------------------------------------------


def _accuracy_test(ref: Mapping[str, Any], cur: Mapping[str, Any], min_effect: float,
                   min_n: int, method: str) -> TestResult:
    rk, rn, ck, cn = int(ref["correct"]), int(ref["n"]), int(cur["correct"]), int(cur["n"])
    if rn < min_n or cn < min_n:
        return insufficient("accuracy", min_effect, rn, cn)
    ra, ca = rk / rn, ck / cn
    margin = MARGIN_SHARE * min_effect
    pooled = (rk + ck) / (rn + cn)
    if method == "auto":
        expected = min(pooled, 1 - pooled) * min(rn, cn)
        method = "fisher" if expected < 10 else "z"
    if method == "z":  # H0: ra - ca <= margin; unpooled (under H0 the rates differ),
        # each rate shrunk by one success and one failure so a perfect window has a spread
        sa, sc = (rk + 1) / (rn + 2), (ck + 1) / (cn + 2)
        se = math.sqrt(sa * (1 - sa) / rn + sc * (1 - sc) / cn)
        z = (ra - ca - margin) / se
        p = float(stats.norm.sf(z))
    else:  # small counts: exact, against "no worse" (the effect floor still applies)
        table = [[cn - ck, ck], [rn - rk, rk]]
        p = float(stats.fisher_exact(table, alternative="greater").pvalue)
        se = math.sqrt(pooled * (1 - pooled) * (1 / rn + 1 / cn))
        z, margin = ((ra - ca) / se if se > 0 else 0.0), 0.0
    details = {"metric": "accuracy", "method": method, "margin": margin,
               "ref_value": ra, "cur_value": ca,
               "ref_ci": list(wilson_ci(rk, rn)), "cur_ci": list(wilson_ci(ck, cn))}
    return TestResult("accuracy", z, p, ra - ca, min_effect, rn, cn, details=details)


def _auc_test(ref: Mapping[str, Any], cur: Mapping[str, Any], min_effect: float,
              min_n: int) -> TestResult:
    rn, cn = int(ref["n"]), int(cur["n"])
    classes = [int(m["positives"]) for m in (ref, cur)] + [
        int(m["n"]) - int(m["positives"]) for m in (ref, cur)]
    if (rn < min_n or cn < min_n or min(classes) < MIN_CLASS_N
            or not (math.isfinite(ref["auc_se"]) and math.isfinite(cur["auc_se"]))):
        return insufficient("auc", min_effect, rn, cn)
    ra, ca = float(ref["auc"]), float(cur["auc"])
    margin = MARGIN_SHARE * min_effect
    se = math.hypot(float(ref["auc_se"]), float(cur["auc_se"]))
    if se > 0:  # H0: ra - ca <= margin
        z = (ra - ca - margin) / se
        p = float(stats.norm.sf(z))
    else:
        z, p = (math.inf, 0.0) if ra - ca > margin else (0.0, 1.0)
    details = {"metric": "auc", "method": "delong_z", "margin": margin,
               "ref_value": ra, "cur_value": ca,
               "ref_ci": list(ref["auc_ci"]), "cur_ci": list(cur["auc_ci"]),
               "ref_se": float(ref["auc_se"]), "cur_se": float(cur["auc_se"])}
    return TestResult("auc", z, p, ra - ca, min_effect, rn, cn, details=details)


def _mae_test(ref: Mapping[str, Any], cur: Mapping[str, Any], min_effect: float,
              min_n: int) -> TestResult:
    rn, cn = int(ref["n"]), int(cur["n"])
    if rn < max(min_n, 2) or cn < max(min_n, 2):
        return insufficient("mae", min_effect, rn, cn)
    rm, cm = float(ref["mae"]), float(cur["mae"])
    margin = MARGIN_SHARE * min_effect  # H0: cm <= (1 + margin) rm
    t, p = _welch_greater(cm, float(cur["abs_err_sd"]), cn, (1 + margin) * rm,
                          (1 + margin) * float(ref["abs_err_sd"]), rn)
    effect = (cm - rm) / rm if rm > 0 else (math.inf if cm > 0 else 0.0)
    details = {"metric": "mae", "method": "welch", "margin": margin,
               "ref_value": rm, "cur_value": cm,
               "ref_ci": list(ref["mae_ci"]), "cur_ci": list(cur["mae_ci"]),
               "relative_increase": effect}
    return TestResult("mae", t, p, effect, min_effect, rn, cn, details=details)


def performance_test(ref: Mapping[str, Any], cur: Mapping[str, Any], *,
                     metric: str = "accuracy", min_effect: float | None = None,
                     min_n: int = MIN_N, method: str = "auto") -> TestResult:
    """Is the current window's ``metric`` worse than the reference's?  One-sided.

    ``ref`` / ``cur`` are dicts from the metric functions above (accuracy works
    with binary or multiclass metrics; ``auc`` needs :func:`binary_metrics`;
    ``mae`` needs :func:`regression_metrics`).  The effect is the degradation:
    absolute for accuracy and AUC (default floor 0.02), relative for MAE
    (``(cur - ref) / ref``, default floor 0.10).  The null is a degradation of at
    most ``MARGIN_SHARE`` of the floor (``details["margin"]``), except for Fisher's
    test, which is against none.  For accuracy ``method`` is ``"z"`` (two
    proportions, unpooled), ``"fisher"`` (exact) or ``"auto"`` (Fisher when an
    expected cell count is below 10)."""
    if metric not in DEFAULT_MIN_EFFECT:
        raise ValueError(f"metric must be one of {sorted(DEFAULT_MIN_EFFECT)}, got {metric!r}")
    if method not in ("auto", "z", "fisher"):
        raise ValueError(f"method must be 'auto', 'z' or 'fisher', got {method!r}")
    floor = DEFAULT_MIN_EFFECT[metric] if min_effect is None else min_effect
    _check_min_effect(floor)
    _check_min_n(min_n)
    if metric == "accuracy":
        return _accuracy_test(ref, cur, floor, min_n, method)
    if metric == "auc":
        return _auc_test(ref, cur, floor, min_n)
    return _mae_test(ref, cur, floor, min_n)


def contract_test(cur_correct: int, cur_n: int, accuracy_min: float, *,
                  min_effect: float = 0.0, min_n: int = MIN_N) -> TestResult:
    """Exact one-sided binomial test: is the true accuracy below ``accuracy_min``?
    The effect is the shortfall ``accuracy_min - accuracy``."""
    if cur_n < 0 or not 0 <= cur_correct <= cur_n:
        raise ValueError(f"need 0 <= cur_correct <= cur_n, got {cur_correct!r}, {cur_n!r}")
    if not 0.0 < accuracy_min < 1.0:
        raise ValueError(f"accuracy_min must be in (0, 1), got {accuracy_min!r}")
    _check_min_effect(min_effect)
    _check_min_n(min_n)
    if cur_n < min_n:
        return insufficient("accuracy_contract", min_effect, 0, cur_n,
                            accuracy_min=accuracy_min)
    acc = cur_correct / cur_n
    p = float(stats.binomtest(cur_correct, cur_n, accuracy_min, alternative="less").pvalue)
    return TestResult("accuracy_contract", acc, p, accuracy_min - acc, min_effect, 0, cur_n,
                      details={"cur_value": acc, "accuracy_min": accuracy_min,
                               "cur_ci": list(wilson_ci(cur_correct, cur_n))})


# -- confidence-based performance estimation (no labels) ----------------------------------


def _probs(prob: Any) -> np.ndarray:
    p = np.asarray(prob, dtype=np.float64).ravel()
    p = p[~np.isnan(p)]
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must be in [0, 1]")
    return p


def _expected_correct(p: np.ndarray, threshold: float) -> np.ndarray:
    """P(the thresholded prediction is right), if ``p`` is calibrated."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    return np.where(p >= threshold, p, 1.0 - p)


def _soft_auc(p: np.ndarray) -> float:
    """ROC AUC expected when row i is positive with probability p_i.

    Every ordered pair (i, j), i != j, counts as (positive i, negative j) with
    weight p_i (1 - p_j); pairs with equal scores count half.  The ratio of the
    expected concordant weight to the expected pair weight estimates the AUC."""
    uniq, inv = np.unique(p, return_inverse=True)
    gpos = np.bincount(inv, weights=p, minlength=uniq.size)
    gneg = np.bincount(inv, weights=1.0 - p, minlength=uniq.size)
    self_pairs = float(np.sum(p * (1.0 - p)))
    neg_below = np.cumsum(gneg) - gneg
    concordant = float(np.sum(gpos * neg_below)) + 0.5 * (float(np.sum(gpos * gneg))
                                                          - self_pairs)
    pairs = float(gpos.sum()) * float(gneg.sum()) - self_pairs
    return concordant / pairs if pairs > 0 else NAN


def cbpe(prob: Any, threshold: float = 0.5, *, confidence: float = 0.95) -> dict[str, Any]:
    """Confidence-based performance estimation for binary probabilities, without labels.

    The idea of NannyML's CBPE, implemented from its published description: if
    the probabilities are *calibrated*, row i's thresholded prediction is right
    with probability ``max(p, 1 - p)`` (threshold 0.5), so the expected accuracy
    is its mean.  Given calibration the realised accuracy is a sum of independent
    Bernoulli variables, and ``accuracy_ci`` is the normal interval of that
    Poisson-binomial sum -- where the accuracy measured once labels arrive should
    fall.  ``expected_auc`` treats each p as a soft label (see ``_soft_auc``).

    Caveat: everything here is only as good as the calibration.  Concept drift
    (P(y | x) changing) leaves the probabilities -- and so the estimate --
    unchanged; CBPE sees drift that moves the scores, e.g. towards 0.5."""
    z = _check_confidence(confidence)
    p = _probs(prob)
    n = int(p.size)
    if n == 0:
        return {"n": 0, "expected_accuracy": NAN, "accuracy_ci": [NAN, NAN],
                "expected_auc": NAN, "expected_positive_rate": NAN, "threshold": threshold}
    c = _expected_correct(p, threshold)
    acc = float(c.mean())
    half = z * math.sqrt(float(np.sum(c * (1.0 - c)))) / n
    return {"n": n, "expected_accuracy": acc,
            "accuracy_ci": [max(0.0, acc - half), min(1.0, acc + half)],
            "expected_auc": _soft_auc(p), "expected_positive_rate": float(p.mean()),
            "threshold": threshold}


def cbpe_test(ref_prob: Any, cur_prob: Any, *, min_effect: float = 0.02,
              threshold: float = 0.5, min_n: int = MIN_N) -> TestResult:
    """Has the CBPE-estimated accuracy dropped?  One-sided Welch test on the
    per-row expected correctness ``max(p, 1 - p)`` of the two windows; effect =
    estimated drop (absolute).  Assumes calibrated probabilities (see :func:`cbpe`):
    it detects the model growing less confident, not it growing wrong."""
    _check_min_effect(min_effect)
    _check_min_n(min_n)
    r = _expected_correct(_probs(ref_prob), threshold)
    c = _expected_correct(_probs(cur_prob), threshold)
    if r.size < max(min_n, 2) or c.size < max(min_n, 2):
        return insufficient("cbpe_accuracy", min_effect, int(r.size), int(c.size))
    rm, cm = float(r.mean()), float(c.mean())
    t, p = _welch_greater(rm, float(r.std(ddof=1)), int(r.size), cm, float(c.std(ddof=1)),
                          int(c.size))
    details = {"ref_value": rm, "cur_value": cm, "threshold": threshold,
               "assumes": "calibrated probabilities"}
    return TestResult("cbpe_accuracy", t, p, rm - cm, min_effect, int(r.size), int(c.size),
                      details=details)


# -- labels stopping ----------------------------------------------------------------------


def label_delay_test(expected_rate: float, cur_labelled: int, cur_n: int, *,
                     min_effect: float = 0.5, min_n: int = MIN_N, ref_n: int = 0,
                     delay_p95: float | None = None) -> TestResult:
    """Have labels stopped (or thinned)?  Exact one-sided binomial test.

    ``expected_rate``: labels joined per prediction in the reference.  The
    current window must hold only predictions old enough to have been labelled
    (older than the reference's p95 label delay, ``delay_p95``, recorded in the
    details), ``cur_labelled`` of ``cur_n`` of them labelled.  The effect is the
    relative drop ``1 - observed / expected`` (default floor 0.5: half the labels
    missing)."""
    if not 0.0 < expected_rate <= 1.0:
        raise ValueError(f"expected_rate must be in (0, 1], got {expected_rate!r}")
    if cur_n < 0 or not 0 <= cur_labelled <= cur_n:
        raise ValueError(f"need 0 <= cur_labelled <= cur_n, got {cur_labelled!r}, {cur_n!r}")
    if ref_n < 0:
        raise ValueError(f"ref_n must be >= 0, got {ref_n!r}")
    if delay_p95 is not None and not delay_p95 >= 0:
        raise ValueError(f"delay_p95 must be >= 0, got {delay_p95!r}")
    _check_min_effect(min_effect)
    _check_min_n(min_n)
    if cur_n < min_n:
        return insufficient("label_delay", min_effect, ref_n, cur_n,
                            expected_rate=expected_rate)
    rate = cur_labelled / cur_n
    p = float(stats.binomtest(cur_labelled, cur_n, expected_rate, alternative="less").pvalue)
    effect = 1.0 - rate / expected_rate
    return TestResult("label_delay", rate, p, effect, min_effect, ref_n, cur_n,
                      details={"expected_rate": expected_rate, "cur_rate": rate,
                               "expected_labelled": expected_rate * cur_n,
                               "cur_labelled": cur_labelled, "delay_p95": delay_p95})

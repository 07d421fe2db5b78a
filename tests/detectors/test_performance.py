"""Performance detectors: exact on small hand-checked cases, intervals that cover,
tests calibrated under the null and powerful under the drops they exist for."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from detectors.performance import (
    binary_metrics,
    cbpe,
    cbpe_test,
    contract_test,
    label_delay_test,
    multiclass_metrics,
    performance_test,
    regression_metrics,
    wilson_ci,
)


def obj(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def rate(flags) -> float:
    flags = list(flags)
    return sum(flags) / len(flags)


# -- metrics on hand-checked cases --------------------------------------------------------


def test_binary_metrics_match_hand_computation():
    prob = [0.9, 0.8, 0.4, 0.3, 0.6, 0.2]
    label = [1, 1, 1, 0, 0, 0]
    m = binary_metrics(prob, label)
    # predicted 1 1 0 0 1 0: tp 2, fp 1, fn 1, tn 2
    assert (m["n"], m["positives"], m["correct"]) == (6, 3, 4)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # positive/negative pairs: 0.9 and 0.8 beat all three negatives, 0.4 beats 0.3 and 0.2
    assert m["auc"] == pytest.approx(8 / 9)
    ll = -np.mean(np.log([0.9, 0.8, 0.4, 0.7, 0.4, 0.8]))
    assert m["log_loss"] == pytest.approx(ll)
    assert m["accuracy_ci"] == pytest.approx(list(wilson_ci(4, 6)))
    json.dumps(m)  # plain python types


def test_auc_ties_count_half_and_bool_labels_and_missing_rows():
    m = binary_metrics(np.array([0.5, 0.5, 0.7, np.nan]), np.array([True, False, True, False]))
    assert m["missing"] == 1 and m["n"] == 3
    assert m["auc"] == pytest.approx(0.75)  # (0.5 tie + 1 win) / 2 pairs
    # log loss is clipped, not infinite, for confident mistakes
    assert math.isfinite(binary_metrics([0.0, 1.0], [1, 0])["log_loss"])


def test_auc_standard_error_is_delong():
    rng = np.random.default_rng(3)
    y = rng.uniform(size=60) < 0.4
    s = np.round(rng.normal(y * 1.0, 1.0), 1)  # rounded: ties
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = math.sqrt(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)
    m = binary_metrics(stats.norm.cdf(s), y)  # a monotone map keeps the ranks
    assert m["auc"] == pytest.approx(psi.mean())
    assert m["auc_se"] == pytest.approx(se)


def test_wilson_interval_matches_known_values():
    assert wilson_ci(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)


def test_multiclass_metrics_match_hand_computation():
    m = multiclass_metrics(obj(["a", "b", "a", "c", None]), obj(["a", "a", "b", "c", "c"]))
    assert (m["n"], m["missing"], m["correct"], m["classes"]) == (4, 1, 2, 3)
    assert m["accuracy"] == 0.5
    # F1: a = 2*1/(2+2) = 0.5, b = 0, c = 1
    assert m["macro_f1"] == pytest.approx(0.5)


def test_regression_metrics_match_hand_computation():
    m = regression_metrics([1.0, 2.0, 3.0, np.nan], [1.0, 1.0, 5.0, 2.0])
    assert (m["n"], m["missing"]) == (3, 1)
    assert m["mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["abs_err_sd"] == pytest.approx(1.0)
    t = stats.t.ppf(0.975, 2)
    assert m["mae_ci"] == pytest.approx([max(0.0, 1 - t / math.sqrt(3)), 1 + t / math.sqrt(3)])
    # the bootstrap is seeded: deterministic
    again = regression_metrics([1.0, 2.0, 3.0, np.nan], [1.0, 1.0, 5.0, 2.0])
    assert again["rmse_ci"] == m["rmse_ci"]


# -- intervals cover the truth at about the nominal rate ----------------------------------


def test_wilson_interval_covers_the_true_accuracy():
    def covers(i):
        k = int(np.random.default_rng(i).binomial(200, 0.8))
        lo, hi = wilson_ci(k, 200)
        return lo <= 0.8 <= hi

    assert 0.92 <= rate(covers(i) for i in range(400)) <= 0.98


def test_auc_interval_covers_the_true_auc():
    true_auc = stats.norm.cdf(1.0 / math.sqrt(2))  # binormal, unit separation

    def covers(i):
        rng = np.random.default_rng(i)
        y = rng.uniform(size=400) < 0.3
        m = binary_metrics(stats.norm.cdf(rng.normal(y * 1.0, 1.0)), y)
        return m["auc_ci"][0] <= true_auc <= m["auc_ci"][1]

    assert 0.91 <= rate(covers(i) for i in range(300)) <= 0.985


@pytest.mark.parametrize("n, bootstrap_max_n", [(100, 2000), (3000, 0)])
def test_mae_and_rmse_intervals_cover_the_truth(n, bootstrap_max_n):
    sigma = 2.0
    true_mae, true_rmse = sigma * math.sqrt(2 / math.pi), sigma

    def covers(i):
        rng = np.random.default_rng(i)
        y = rng.normal(size=n)
        m = regression_metrics(y + rng.normal(0, sigma, n), y, bootstrap_max_n=bootstrap_max_n)
        return (m["mae_ci"][0] <= true_mae <= m["mae_ci"][1],
                m["rmse_ci"][0] <= true_rmse <= m["rmse_ci"][1])

    results = [covers(i) for i in range(300)]
    assert 0.91 <= rate(r[0] for r in results) <= 0.985
    assert 0.90 <= rate(r[1] for r in results) <= 0.985


# -- tests: calibrated under the null -----------------------------------------------------


def rejection_rate(trial, n_trials: int, alpha: float = 0.05) -> float:
    return rate(trial(i).p_value <= alpha for i in range(n_trials))


def acc_metrics(correct: int, n: int) -> dict:
    return {"correct": correct, "n": n}


@pytest.mark.parametrize("method", ["z", "fisher"])
def test_accuracy_test_is_calibrated(method):
    def trial(i):
        rng = np.random.default_rng(i)
        ref = acc_metrics(int(rng.binomial(2000, 0.85)), 2000)
        cur = acc_metrics(int(rng.binomial(1000, 0.85)), 1000)
        return performance_test(ref, cur, metric="accuracy", min_effect=0.0, method=method)

    assert rejection_rate(trial, 600) <= 0.07


def test_auc_test_is_calibrated():
    def trial(i):
        rng = np.random.default_rng(i)
        ms = []
        for n in (1000, 600):
            y = rng.uniform(size=n) < 0.3
            ms.append(binary_metrics(stats.norm.cdf(rng.normal(y * 1.2, 1.0)), y))
        return performance_test(*ms, metric="auc", min_effect=0.0)

    assert rejection_rate(trial, 500) <= 0.07


def test_mae_test_is_calibrated():
    def trial(i):
        rng = np.random.default_rng(i)
        ref = regression_metrics(rng.standard_t(4, 1500), np.zeros(1500), bootstrap_max_n=0)
        cur = regression_metrics(rng.standard_t(4, 500), np.zeros(500), bootstrap_max_n=0)
        return performance_test(ref, cur, metric="mae", min_effect=0.0)

    assert rejection_rate(trial, 600) <= 0.07


def test_contract_and_label_delay_tests_are_calibrated():
    def contract(i):
        k = int(np.random.default_rng(i).binomial(1000, 0.9))
        return contract_test(k, 1000, 0.9)

    def labels(i):
        k = int(np.random.default_rng(i).binomial(800, 0.6))
        return label_delay_test(0.6, k, 800, min_effect=0.0)

    assert rejection_rate(contract, 1000) <= 0.07
    assert rejection_rate(labels, 600) <= 0.07


def test_cbpe_test_is_calibrated():
    def trial(i):
        rng = np.random.default_rng(i)
        return cbpe_test(rng.beta(0.7, 0.7, 2000), rng.beta(0.7, 0.7, 800), min_effect=0.0)

    assert rejection_rate(trial, 600) <= 0.07


# -- ... and powerful on the drops they exist for -----------------------------------------


def test_accuracy_test_sees_a_five_point_drop_at_n_2000():
    def trial(i):
        rng = np.random.default_rng(i)
        ref = acc_metrics(int(rng.binomial(2000, 0.85)), 2000)
        cur = acc_metrics(int(rng.binomial(2000, 0.80)), 2000)
        return performance_test(ref, cur, metric="accuracy")

    results = [trial(i) for i in range(200)]
    assert rate(r.significant(0.05) for r in results) >= 0.95
    assert results[0].detector == "accuracy"
    assert results[0].details["cur_value"] == pytest.approx(results[0].details["ref_value"]
                                                            - results[0].effect)


def test_accuracy_test_on_real_predictions_and_direction():
    rng = np.random.default_rng(7)
    y = rng.uniform(size=2000) < 0.5
    good = np.where(rng.uniform(size=2000) < 0.85, y, ~y).astype(float)
    bad = np.where(rng.uniform(size=2000) < 0.78, y, ~y).astype(float)
    ref, cur = binary_metrics(good, y), binary_metrics(bad, y)
    assert performance_test(ref, cur).significant(0.01)
    assert not performance_test(cur, ref).significant(0.05)  # better is never an alarm
    mc_ref = multiclass_metrics(obj(np.where(good == y, "a", "b")), obj(["a"] * 2000))
    mc_cur = multiclass_metrics(obj(np.where(bad == y, "a", "b")), obj(["a"] * 2000))
    assert performance_test(mc_ref, mc_cur).significant(0.01)


def test_auc_and_mae_tests_see_degradation():
    rng = np.random.default_rng(11)

    def scored(sep, n=2000):
        y = rng.uniform(size=n) < 0.4
        return binary_metrics(stats.norm.cdf(rng.normal(y * sep, 1.0)), y)

    r = performance_test(scored(1.5), scored(1.0), metric="auc")
    assert r.detector == "auc" and r.significant(0.01) and r.effect > 0.05
    ref = regression_metrics(rng.normal(0, 1.0, 2000), np.zeros(2000))
    cur = regression_metrics(rng.normal(0, 1.3, 2000), np.zeros(2000))
    r = performance_test(ref, cur, metric="mae")
    assert r.detector == "mae" and r.significant(0.01)
    assert r.effect == pytest.approx(cur["mae"] / ref["mae"] - 1)
    # relative floor: a significant 5 % rise on a huge sample is not an alarm
    ref = regression_metrics(rng.normal(0, 1.0, 200_000), np.zeros(200_000))
    cur = regression_metrics(rng.normal(0, 1.05, 200_000), np.zeros(200_000))
    r = performance_test(ref, cur, metric="mae")  # the null allows half the floor
    assert r.p_value > 0.05 and not r.significant(0.05)
    r = performance_test(ref, cur, metric="mae", min_effect=0.06)  # beyond 3 %: yes ...
    assert r.p_value < 1e-6 and not r.significant(0.05)  # ... but under the floor


def test_effect_floor_keeps_tiny_accuracy_drops_quiet():
    r = performance_test(acc_metrics(900_000, 1_000_000), acc_metrics(895_000, 1_000_000))
    assert r.effect == pytest.approx(0.005) and r.details["margin"] == pytest.approx(0.01)
    assert r.p_value > 0.5 and not r.significant(0.05)
    # beyond 0.3 points (floor 0.006) the drop is clear, yet under the floor
    r = performance_test(acc_metrics(900_000, 1_000_000), acc_metrics(895_000, 1_000_000),
                         min_effect=0.006)
    assert r.p_value < 1e-4 and not r.significant(0.05)


def _stationary_window_alarm_rate(ref_correct: int, ref_n: int, accuracy: float, n: int,
                                  alpha: float, min_effect: float | None = None) -> float:
    """Exact: the chance that a window of ``n`` pairs at the true ``accuracy`` alarms."""
    ref = acc_metrics(ref_correct, ref_n)
    pmf = stats.binom.pmf(np.arange(n + 1), n, accuracy)
    return float(sum(pmf[k] for k in range(n + 1) if pmf[k] > 1e-12 and performance_test(
        ref, acc_metrics(k, n), min_effect=min_effect).significant(alpha)))


def test_a_lucky_reference_does_not_page_window_after_window():
    # a 2,500-pair reference two standard errors luckier than the model's true 90 %: every
    # window of 1,000 pairs looks worse; against "no worse" (no floor, no margin) the z test
    # at 2.5e-4 alarms on several times its share of stationary windows
    lucky = 2250 + 2 * int(math.sqrt(2500 * 0.09))
    assert _stationary_window_alarm_rate(lucky, 2500, 0.9, 1000, 2.5e-4, 0.0) > 3 * 2.5e-4
    assert _stationary_window_alarm_rate(lucky, 2500, 0.9, 1000, 2.5e-4) < 2.5e-4 / 10


def test_contract_and_label_delay_tests_see_breaches():
    r = contract_test(850, 1000, 0.9)
    assert r.detector == "accuracy_contract" and r.significant(0.01)
    assert r.effect == pytest.approx(0.05)
    assert not contract_test(950, 1000, 0.9).significant(0.05)
    assert contract_test(950, 1000, 0.9).p_value > 0.5  # one-sided: better is no evidence
    r = label_delay_test(0.6, 60, 800, delay_p95=3600.0)  # labels stopped: 7.5 % vs 60 %
    assert r.detector == "label_delay" and r.significant(0.01)
    assert r.effect == pytest.approx(1 - 0.075 / 0.6)
    assert r.details["delay_p95"] == 3600.0
    assert not label_delay_test(0.6, 470, 800).significant(0.05)
    assert label_delay_test(0.6, 700, 800, min_effect=0.0).p_value > 0.5


# -- CBPE -----------------------------------------------------------------------------------


def test_cbpe_interval_covers_the_realised_accuracy_of_calibrated_probabilities():
    def trial(i):
        rng = np.random.default_rng(i)
        p = rng.beta(0.8, 0.8, 1000)
        y = rng.uniform(size=1000) < p  # calibrated by construction
        est = cbpe(p)
        real = binary_metrics(p, y)
        return (est["accuracy_ci"][0] <= real["accuracy"] <= est["accuracy_ci"][1],
                est["expected_auc"] - real["auc"])

    results = [trial(i) for i in range(300)]
    assert 0.92 <= rate(r[0] for r in results) <= 0.98
    assert abs(np.mean([r[1] for r in results])) < 0.005  # expected AUC is unbiased enough


def test_cbpe_matches_hand_computation():
    p = np.array([0.9, 0.2, 0.5, 0.7, 0.7, 0.2])  # with ties
    est = cbpe(p)
    assert est["expected_accuracy"] == pytest.approx((0.9 + 0.8 + 0.5 + 0.7 + 0.7 + 0.8) / 6)
    # soft labels: pairs (i positive, j negative, i != j) weighted p_i (1 - p_j)
    num = den = 0.0
    for i in range(6):
        for j in range(6):
            if i != j:
                w = p[i] * (1 - p[j])
                den += w
                num += w * ((p[i] > p[j]) + 0.5 * (p[i] == p[j]))
    assert est["expected_auc"] == pytest.approx(num / den)


def test_cbpe_sees_probabilities_drifting_towards_one_half():
    rng = np.random.default_rng(5)
    ref = rng.beta(0.6, 0.6, 3000)
    cur = 0.5 + 0.5 * (rng.beta(0.6, 0.6, 3000) - 0.5)  # less confident
    before, after = cbpe(ref), cbpe(cur)
    assert after["expected_accuracy"] < before["expected_accuracy"] - 0.05
    assert after["expected_auc"] < before["expected_auc"] - 0.05
    r = cbpe_test(ref, cur)
    assert r.detector == "cbpe_accuracy" and r.significant(0.01)
    assert r.effect == pytest.approx(before["expected_accuracy"] - after["expected_accuracy"])
    assert not cbpe_test(cur, ref).significant(0.05)


# -- small samples and invalid input ------------------------------------------------------


def test_small_windows_are_insufficient():
    assert performance_test(acc_metrics(9, 10), acc_metrics(1, 10)).insufficient
    few_pos = binary_metrics([0.9, 0.1] * 50, [1] + [0] * 99)
    assert performance_test(few_pos, few_pos, metric="auc").insufficient
    assert contract_test(1, 10, 0.9).insufficient
    assert label_delay_test(0.5, 0, 10).insufficient
    assert cbpe_test([0.9] * 10, [0.5] * 10).insufficient
    assert not contract_test(1, 10, 0.9).significant(1.0)


@pytest.mark.parametrize("call", [
    lambda: binary_metrics([0.5, 1.2], [0, 1]),
    lambda: binary_metrics([0.5, 0.2], [0, 2]),
    lambda: binary_metrics([0.5], [0, 1]),
    lambda: binary_metrics([0.5], [1], threshold=1.0),
    lambda: binary_metrics([0.5], [1], confidence=1.0),
    lambda: regression_metrics([1.0], [np.inf]),
    lambda: regression_metrics([1.0], [1.0], n_boot=10),
    lambda: performance_test({}, {}, metric="f1"),
    lambda: performance_test({}, {}, method="chi2"),
    lambda: performance_test(acc_metrics(1, 2), acc_metrics(1, 2), min_effect=-0.1),
    lambda: contract_test(5, 4, 0.9),
    lambda: contract_test(5, 10, 1.0),
    lambda: cbpe([0.2, -0.1]),
    lambda: cbpe([0.2], threshold=0.0),
    lambda: cbpe_test([0.2] * 50, [0.3] * 50, min_effect=-1),
    lambda: label_delay_test(0.0, 1, 10),
    lambda: label_delay_test(0.5, 11, 10),
    lambda: label_delay_test(0.5, 1, 10, delay_p95=-1.0),
    lambda: wilson_ci(3, 2),
])
def test_invalid_parameters_refused(call):
    with pytest.raises(ValueError):
        call()

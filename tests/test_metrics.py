"""Accuracy, S-score and efficiency against values worked out by hand."""

import math

import numpy as np
import pytest

from bap_tf import metrics


def test_domain_score_by_hand():
    # reference error 0.2 -> E_max = 0.4, alpha = 1000 / 0.4**2 = 6250.
    assert metrics.domain_score(0.0, 0.2) == pytest.approx(1000.0)  # perfect domain
    assert metrics.domain_score(0.2, 0.2) == pytest.approx(250.0)  # 6250 * 0.2**2
    assert metrics.domain_score(0.1, 0.2) == pytest.approx(562.5)  # 6250 * 0.3**2
    assert metrics.domain_score(0.4, 0.2) == 0.0  # at E_max
    assert metrics.domain_score(0.7, 0.2) == 0.0  # max(0, .) clips above E_max


def test_zero_reference_error_is_the_limit_of_the_formula():
    assert metrics.domain_score(0.0, 0.0) == 1000.0
    assert metrics.domain_score(0.01, 0.0) == 0.0


def test_s_score_sums_the_domains():
    total, terms = metrics.s_score({"a": 0.1, "b": 0.5, "c": 0.25}, {"a": 0.2, "b": 0.2, "c": 0.5, "extra": 0.3})
    # c: E_max = 1.0, alpha = 1000, (1.0 - 0.25)**2 * 1000 = 562.5
    assert terms == pytest.approx({"a": 562.5, "b": 0.0, "c": 562.5})
    assert total == pytest.approx(1125.0)


def test_efficiency_divides_by_the_geometric_mean_of_the_cost_ratios():
    # sqrt(0.25 * 0.64) = 0.4
    assert metrics.efficiency(562.5, 0.25, 0.64) == pytest.approx(1406.25)
    assert metrics.efficiency(300.0, 1.0, 1.0) == pytest.approx(300.0)
    assert metrics.efficiency(100.0, 0.5, 0.5) == pytest.approx(200.0)
    assert math.isclose(metrics.efficiency(0.0, 0.3, 0.2), 0.0)


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match=r"reference errors for \['a', 'b'\]\. Received none for: \['b'\]"):
        metrics.s_score({"a": 0.1, "b": 0.2}, {"a": 0.2})
    with pytest.raises(ValueError, match=r"error fraction in \[0, 1\]\. Received: error=1\.5"):
        metrics.domain_score(1.5, 0.2)
    with pytest.raises(ValueError, match=r"macs_ratio must be a finite number > 0\. Received: macs_ratio=0"):
        metrics.efficiency(10.0, 0.5, 0)
    with pytest.raises(ValueError, match=r"at least one domain"):
        metrics.s_score({}, {})


def test_accuracy_of_logits():
    logits = [[0.1, 2.0, -1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1.0, 0.5, 0.0]]
    assert metrics.accuracy(logits, [1, 0, 0, 0]) == 0.75
    assert metrics.accuracy(logits, [[1], [0], [2], [0]]) == 1.0  # (N, 1) labels as tfds gives them
    assert math.isnan(metrics.accuracy(np.zeros((0, 3)), []))

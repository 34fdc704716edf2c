"""The oneDNN-setting benchmark's comparison and page, on fake weights and rows (no training here)."""

import numpy as np

from benchmarks import cpu_isa


def test_weights_that_differ_anywhere_are_told_apart():
    a = {"conv/kernel": np.ones((2, 2), "float32"), "step": np.array(3, "int64")}
    assert cpu_isa.max_difference(a, dict(a)) == 0.0
    b = {**a, "conv/kernel": np.array([[1, 1], [1, 1.5]], "float32")}
    assert cpu_isa.max_difference(b, a) == 0.5


def test_page_lists_every_setting():
    row = {"max_weight_difference": 0.0, "union_fraction": 0.476,
           "accuracy_masked": {"digits": 0.975, "letters": 0.689}}
    record = {"rows": {"this machine": row, "ONEDNN_MAX_CPU_ISA=AVX2": {**row, "max_weight_difference": 7.37}}}
    page = cpu_isa.markdown(record)
    assert "| this machine | 0 | 0.476 | 0.975 | 0.689 |" in page
    assert "| ONEDNN_MAX_CPU_ISA=AVX2 | 7.37 | 0.476 | 0.975 | 0.689 |" in page

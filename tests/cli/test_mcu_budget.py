"""A tiny run under a microcontroller budget, every stage: the estimates drive training, and
the int8 files the export stage writes fit the board when TFLM measures them."""

import json

import numpy as np
import pytest
from keras import ops

from bap_tf.budgets.mcu import KIB, McuCost
from bap_tf.config import ExperimentConfig
from bap_tf.run import stages
from bap_tf.run.backbone import load_backbone
from bap_tf.run.workdir import Workdir
from bap_tf.switching import build_switched_network


@pytest.mark.slow
def test_mcu_budget_run(tmp_path, pocket_cache):
    # One domain: each int8 file costs a calibrated conversion (~20 s).
    values = dict(domains=("letters",), data_dir=str(pocket_cache), pretrained="none", width=4, epochs=1,
                  steps_per_epoch=3, batch_size=4, finetune_epochs=0, quantize=("int8",), eval_examples=8,
                  calibration_examples=8, baselines=False)
    network = build_switched_network(load_backbone(ExperimentConfig(**values).resolve()), [("letters", 26)])
    board = McuCost(network, 1e6, 1e6)
    switches = board.counts.num_switches
    full = {k: float(ops.convert_to_numpy(v)[0]) for k, v in board.estimate(ops.ones((1, switches))).items()}
    none = {k: float(ops.convert_to_numpy(v)[0]) for k, v in board.estimate(ops.zeros((1, switches))).items()}
    # A board that fits the network's unswitched part and three quarters of the rest.
    flash_kb, ram_kb = ((none[k] + 0.75 * (full[k] - none[k])) / KIB for k in ("flash_bytes", "ram_bytes"))
    config = ExperimentConfig(**values, budget_metric="mcu", mcu_flash_kb=flash_kb, mcu_ram_kb=ram_kb).resolve()
    workdir = Workdir(tmp_path / "run").create()
    stages.run_stages(config, workdir)

    costs = json.loads(workdir.costs.read_text())
    report = json.loads((workdir.root / "report.json").read_text())
    assert report["budget"] == 1.0 and report["mcu"]["fits"]
    for name in config.domains:
        estimate, measured = costs["mcu_estimate"][name], report["mcu"]["domains"][name]
        assert costs["budget_check"][name]["metric"] == "mcu" and costs["budget_check"][name]["met"]
        assert estimate["flash_bytes"] <= flash_kb * KIB and estimate["ram_bytes"] <= ram_kb * KIB
        # The estimates are what the files take, within the format's and TFLM's slack.
        assert np.isclose(measured["model_kb"] * KIB, estimate["flash_bytes"], rtol=0.2)
        assert np.isclose(measured["arena_kb"] * KIB, estimate["ram_bytes"], rtol=0.2)
    assert "trained to the estimates" in (workdir.root / "report.md").read_text()

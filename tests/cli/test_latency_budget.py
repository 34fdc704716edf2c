"""A tiny run under a latency budget, train and prune: the table drives training, the model
saves it, and the rewrite keeps the table's step, so each domain's model meets its budget by the
table (the report's entry is tested on its own in tests/budgets/test_latency.py)."""

import json

import keras
import numpy as np
import pytest
from keras import ops

from bap_tf import model as _registers_model  # noqa: F401  (BudgetAwareModel for load_model)
from bap_tf.config import ExperimentConfig
from bap_tf.export import latency_table as lt
from bap_tf.run import stages
from bap_tf.run.backbone import load_backbone
from bap_tf.run.workdir import Workdir

STEP = 4


@pytest.mark.slow
def test_latency_budget_run(tmp_path, pocket_cache):
    values = dict(domains=("digits", "letters"), data_dir=str(pocket_cache), pretrained="none", width=4, epochs=1,
                  steps_per_epoch=3, batch_size=4, finetune_epochs=0, budget=0.9)
    backbone = load_backbone(ExperimentConfig(**values).resolve())
    plan = lt.plan_cells(backbone, STEP)
    ms = {name: 1e-3 * cin * cout for name, (_, cin, cout) in lt.unique_cells(plan).items()}
    table = lt.assemble_table(plan, ms, threads=1, machine="test", reference_ms=1.2 * sum(ms.values()))
    path = lt.save_table(table, tmp_path / "table.json")
    config = ExperimentConfig(**values, budget_metric="latency", latency_table=str(path)).resolve()
    workdir = Workdir(tmp_path / "run").create()
    stages.run_stages(config, workdir, stages=("train", "prune"))

    masked = keras.saving.load_model(workdir.model, compile=False)
    assert masked.budget_metric == "latency" and masked.latency_table == json.loads(path.read_text())
    rounded = ops.convert_to_numpy(masked.latency_cost().kept_fractions(masked.gates(), rounded=True))
    assert np.all(rounded <= 0.9 + 1e-6)
    costs = json.loads(workdir.costs.read_text())
    latency = costs["latency"]
    assert latency["step"] == STEP and latency["budget"] == 0.9
    for name in config.domains:
        assert costs["budget_check"][name]["metric"] == "latency" and costs["budget_check"][name]["met"]
        assert latency["domains_ms"][name] <= 0.9 * latency["backbone_ms"] + 1e-9

"""A tiny run under a latency budget, every stage: the table drives training, the rewrite keeps
the table's step, and the report compares each domain's prediction and measured signature with
its budget."""

import json

import pytest

from bap_tf.config import ExperimentConfig
from bap_tf.export import latency_table as lt
from bap_tf.run import stages
from bap_tf.run.backbone import load_backbone
from bap_tf.run.workdir import Workdir

STEP = 4


@pytest.mark.slow
def test_latency_budget_run(tmp_path, pocket_cache):
    values = dict(domains=("digits", "letters"), data_dir=str(pocket_cache), pretrained="none", width=4, epochs=2,
                  steps_per_epoch=3, batch_size=4, finetune_epochs=0, quantize=("float32",), eval_examples=16,
                  baselines=False, budget=0.6)
    backbone = load_backbone(ExperimentConfig(**values).resolve())
    plan = lt.plan_cells(backbone, STEP)
    ms = {name: 1e-3 * cin * cout for name, (_, cin, cout) in lt.unique_cells(plan).items()}
    table = lt.assemble_table(plan, ms, threads=1, machine="test", reference_ms=1.2 * sum(ms.values()))
    path = lt.save_table(table, tmp_path / "table.json")
    config = ExperimentConfig(**values, budget_metric="latency", latency_table=str(path)).resolve()
    workdir = Workdir(tmp_path / "run").create()
    stages.run_stages(config, workdir)

    costs = json.loads(workdir.costs.read_text())
    latency = costs["latency"]
    assert latency["step"] == STEP and latency["budget"] == 0.6
    for name in config.domains:
        assert costs["budget_check"][name]["metric"] == "latency" and costs["budget_check"][name]["met"]
        assert latency["domains_ms"][name] <= 0.6 * latency["backbone_ms"] + 1e-9
    report = json.loads((workdir.root / "report.json").read_text())
    entry = report["latency_budget"]
    assert entry["layout"] == "per_domain" and entry["budget_ms"] == pytest.approx(0.6 * latency["backbone_ms"])
    for name in config.domains:
        domain = entry["domains"][name]
        assert domain["predicted_ms"] == latency["domains_ms"][name] == domain["signature_predicted_ms"]
        assert domain["measured_ratio"] > 0 and domain["measured_over_budget"] == pytest.approx(
            domain["measured_ratio"] / 0.6)
    assert "Latency budget: 0.600 of the backbone's" in (workdir.root / "report.md").read_text()

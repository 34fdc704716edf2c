"""The latency budget: the table's price of a domain's gates, its projection, the rewrite it
predicts, training under it, the report's entry, and the errors that come before training."""

import dataclasses

import numpy as np
import pytest
from keras import ops

from bap_tf import backbones, switching
from bap_tf.budgets import latency as latency_budget
from bap_tf.config import ExperimentConfig
from bap_tf.export import latency_table as lt
from bap_tf.model import BudgetAwareModel
from bap_tf.prune import Rewriter

DOMAINS = [("a", 3), ("b", 4)]
STEP = 4
OVERHEAD = 0.3  # the reference's time beyond the table's full-size sum, as a share of it


def fake_table(backbone, step=STEP):
    """A table whose ms grows with both counts, plus a whole-backbone reference (no timing)."""
    plan = lt.plan_cells(backbone, step)
    cells = lt.unique_cells(plan).items()
    ms = {name: 1e-3 * cin * cout * (1 + conv.kernel_size[0]) for name, (conv, cin, cout) in cells}
    table = lt.assemble_table(plan, ms, threads=1, machine="test", date="2026-01-01T00:00:00+00:00")
    full = sum(entry["ms"][-1][-1] for entry in table["layers"].values())
    return {**table, "reference": {"name": backbone.name, "ms": (1 + OVERHEAD) * full}}


def network_and_table(arch="resnet26"):
    backbone = (backbones.resnet26((16, 16, 3), width=8, blocks_per_stage=1) if arch == "resnet26"
                else backbones.mobilenet_v2((32, 32, 3), alpha=0.35))
    return switching.build_switched_network(backbone, DOMAINS), fake_table(backbone)


def randomize(network, seed=0, share=0.5):
    rng = np.random.default_rng(seed)
    for layer in switching.switched_layers(network):
        on = rng.uniform(size=layer.switches.shape) < share
        layer.switches.assign(np.where(on, rng.uniform(0.05, 0.9, layer.switches.shape),
                                       -rng.uniform(0.05, 0.9, layer.switches.shape)).astype("float32"))


def model(network, table, budget=0.6):
    return BudgetAwareModel(network, DOMAINS, budget=budget, budget_metric="latency", latency_table=table)


def test_the_whole_backbone_costs_one_and_the_reference_scales_the_table():
    network, table = network_and_table()
    cost = model(network, table)._budget_cost
    assert cost.scale == pytest.approx(1 + OVERHEAD)
    assert cost.backbone_ms == pytest.approx(table["reference"]["ms"])
    everything = ops.ones((2, cost.counts.num_switches))
    assert np.allclose(ops.convert_to_numpy(cost.kept_fractions(everything)), 1.0)
    assert 0 < cost.minimum_fraction() < 0.5
    without_reference = {key: value for key, value in table.items() if key != "reference"}
    assert model(network, without_reference)._budget_cost.scale == 1.0


@pytest.mark.parametrize("arch", ["resnet26", "mobilenet_v2"])
def test_rounded_prediction_is_the_table_latency_of_the_rewritten_models(arch):
    network, table = network_and_table(arch)
    randomize(network)
    masked = model(network, table, budget=0.9)
    cost = masked.latency_cost()
    predicted = ops.convert_to_numpy(cost.predicted_ms(masked.gates(), rounded=True))
    domain_models = Rewriter.from_model(masked, channel_multiple=STEP).domain_models()
    for index, (name, _) in enumerate(DOMAINS):
        assert cost.model_ms(domain_models[name]) == pytest.approx(float(predicted[index]), rel=1e-5)


def test_step_moves_take_one_stream_down_a_step_dropping_its_least_confident_channels():
    network, table = network_and_table()
    randomize(network, share=0.9)
    cost = model(network, table).latency_cost()
    values = np.concatenate([layer.switches.numpy() for layer in switching.switched_layers(network)], axis=1)[0]
    gates = (values > 0).astype("float32")
    moves = cost.step_moves(values)
    assert moves
    for trial, lost in moves:
        changed = [g for g in cost.counts.shrinking_groups()
                   if not np.array_equal(trial[cost.counts.channel_keepers(g)], gates[cost.counts.channel_keepers(g)])]
        assert len(changed) == 1  # one stream per move
        keepers = cost.counts.channel_keepers(changed[0])
        before, after = (np.flatnonzero((g[keepers] > 0).any(axis=1)) for g in (gates, trial))
        assert len(after) % STEP == 0 and len(before) - STEP <= len(after) < len(before)
        # The channels dropped were the least confident kept ones, all their readers off.
        confidence = np.where(gates[keepers] > 0, values[keepers], 0.0).clip(min=0.0).sum(axis=1)
        dropped = np.setdiff1d(before, after)
        assert confidence[dropped].max() <= confidence[after].min()
        assert lost == pytest.approx(float(confidence[dropped].sum()), rel=1e-5)
        assert not np.any(trial[keepers[dropped]])


def test_projection_by_steps_meets_the_budget_with_few_switches_off():
    network, table = network_and_table()
    randomize(network, share=0.9)
    masked = model(network, table, budget=0.5)
    cost = masked.latency_cost()
    before = np.concatenate([layer.switches.numpy() for layer in masked.switched], axis=1)
    changed = masked.project_to_budget()
    after = np.concatenate([layer.switches.numpy() for layer in masked.switched], axis=1)
    assert np.all(ops.convert_to_numpy(cost.kept_fractions(masked.gates(), rounded=True)) <= 0.5 + 1e-6)
    for row, count in enumerate(changed):
        off, on = (before[row] > 0) & (after[row] <= 0), (before[row] <= 0) & (after[row] > 0)
        assert off.sum() - on.sum() == count > 0
        # Switch by switch, in order of value, the same budget takes more switches off.
        assert count <= _fewest_by_value(cost, before[row], 0.5)


def _fewest_by_value(cost, values, budget):
    """How many of ``values``' switches that are on, the least confident first, must go off for
    the rounded cost to fit ``budget`` (bisection: the cost only falls as switches go off)."""
    order = np.flatnonzero(values > 0)[np.argsort(values[values > 0], kind="stable")]

    def fits(count):
        gates = (values > 0).astype("float32")
        gates[order[:count]] = 0.0
        fraction = cost.kept_fractions(ops.convert_to_tensor(gates[None]), rounded=True)
        return float(ops.convert_to_numpy(fraction)[0]) <= budget + 1e-6

    low, high = 0, len(order)
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle + 1, high)
    return low


def test_projection_fills_a_domain_under_its_budget_up_to_it():
    network, table = network_and_table()
    randomize(network, share=0.2)
    masked = model(network, table, budget=0.8)
    cost = masked.latency_cost()
    before = np.concatenate([layer.switches.numpy() for layer in masked.switched], axis=1)
    assert np.all(ops.convert_to_numpy(cost.kept_fractions(masked.gates(), rounded=True)) < 0.8)
    changed = masked.project_to_budget()
    after = np.concatenate([layer.switches.numpy() for layer in masked.switched], axis=1)
    fractions = ops.convert_to_numpy(cost.kept_fractions(masked.gates(), rounded=True))
    assert np.all(fractions <= 0.8 + 1e-6)
    for row, count in enumerate(changed):
        on = (before[row] <= 0) & (after[row] > 0)
        assert count < 0 and on.sum() == -count and not np.any((before[row] > 0) & (after[row] <= 0))
        # The nearest to on came on first, and the next of them would exceed the budget.
        still_off = after[row] <= 0
        assert before[row][on].min() >= before[row][still_off].max()
        more = (after[row] > 0).astype("float32")
        more[np.flatnonzero(still_off)[np.argmax(before[row][still_off])]] = 1.0
        fraction = cost.kept_fractions(ops.convert_to_tensor(more[None]), rounded=True)
        assert float(ops.convert_to_numpy(fraction)[0]) > 0.8


def test_budgets_no_pruning_can_meet_are_refused_by_name():
    network, table = network_and_table()
    floor = model(network, table)._budget_cost.minimum_fraction()
    with pytest.raises(ValueError, match=rf"Expected a budget in \(0\.\d+, 1\]\. Received: budget={floor / 2!r}"):
        model(network, table, budget=floor / 2)
    cost = model(network, table).latency_cost()
    assert latency_budget.budget_fraction(cost, 0.5, 0.0) == 0.5
    assert latency_budget.budget_fraction(cost, 0.5, 0.6 * cost.backbone_ms) == pytest.approx(0.6)
    for budget_ms in (0.5 * floor * cost.backbone_ms, 2 * cost.backbone_ms):
        with pytest.raises(ValueError, match=f"Received: budget_ms={budget_ms!r}"):
            latency_budget.budget_fraction(cost, 0.5, budget_ms)
    with pytest.raises(ValueError, match="needs a latency table"):
        BudgetAwareModel(network, DOMAINS, budget_metric="latency")


def test_config_asks_for_the_table_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="Received: latency_table=''"):
        ExperimentConfig(budget_metric="latency")
    with pytest.raises(ValueError, match="an existing file .* Received: latency_table='/nowhere.json'"):
        ExperimentConfig(budget_metric="latency", latency_table="/nowhere.json")
    with pytest.raises(ValueError, match="Received: budget_ms=2.0"):
        ExperimentConfig(budget_ms=2.0)
    path = tmp_path / "table.json"
    path.write_text("{}")
    config = ExperimentConfig(budget_metric="latency", latency_table=str(path), budget_ms=2.0)
    assert dataclasses.replace(config).budget_ms == 2.0


def test_report_entry_compares_the_measured_signature_with_the_budget():
    costs_latency = {"target": "avx512", "step": 32, "machine": "m", "date": "d", "backbone_ms": 2.0,
                     "scale": 1.2, "budget": 0.5, "domains_ms": {"a": 0.9, "b": 1.0},
                     "union_ms": {"a": 1.1, "b": 1.1}}
    promise = {"android": {"signatures": {"a": {"latency_ratio": 0.55}, "b": {"latency_ratio": 0.6}}}}
    entry = latency_budget.report_entry(costs_latency, "shared_filters", promise)
    assert entry["budget_ms"] == 1.0
    assert entry["domains"]["a"]["predicted_ratio"] == 0.45
    assert entry["domains"]["a"]["signature_predicted_ratio"] == 0.55
    assert entry["domains"]["b"]["measured_over_budget"] == pytest.approx(1.2)
    own = latency_budget.report_entry(costs_latency, "per_domain", None)
    assert own["domains"]["b"]["signature_predicted_ms"] == 1.0 and own["domains"]["b"]["measured_ratio"] is None
    lines = latency_budget.describe(entry)
    assert "1.000 ms per domain" in lines[0] and "measured x0.60 (1.20 of the budget)" in lines[2]
    assert latency_budget.describe(None) == []

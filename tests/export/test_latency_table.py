"""Latency tables: the grid, the JSON format and its checks, interpolation and its gradient,
and one tiny real measurement (one conversion of every cell, a few rounds of timing)."""

import copy
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from bap_tf.backbones import resnet26
from bap_tf.export import latency_table as lt
from bap_tf.switching import build_switched_network, switched_layers

IMAGE_SIZE = 32
WIDTH = 4
STEP = 4


@pytest.fixture(scope="module")
def backbone():
    return resnet26((IMAGE_SIZE, IMAGE_SIZE, 3), width=WIDTH, blocks_per_stage=1)


@pytest.fixture(scope="module")
def plan(backbone):
    return lt.plan_cells(backbone, STEP)


def fake_table(plan):
    """A monotone table for ``plan``: ms grows with both counts (no timing)."""
    cells = lt.unique_cells(plan)
    ms = {name: 0.001 * cin * cout * (1 + conv.kernel_size[0]) for name, (conv, cin, cout) in cells.items()}
    return lt.assemble_table(plan, ms, threads=1, machine="test", date="2025-01-01T00:00:00+00:00")


# -- the grid -------------------------------------------------------------------------------
def test_grid_counts():
    assert lt.grid_counts(64, 16) == [16, 32, 48, 64]
    assert lt.grid_counts(40, 16) == [16, 32, 40]
    assert lt.grid_counts(8, 16) == [8]
    assert lt.in_grid_counts(64, 32) == [8, 16, 24, 32, 64]
    assert lt.in_grid_counts(16, 32) == [8, 16]
    assert lt.in_grid_counts(6, 2) == [1, 2, 4, 6]


def test_resolve_step():
    assert lt.resolve_step(target="neon") == ("neon", 8)
    assert lt.resolve_step(12) == (lt.CUSTOM_TARGET, 12)
    assert lt.resolve_step(32, "avx512") == ("avx512", 32)
    for step, target in ((None, None), (0, None), (16, "neon"), (None, "sse")):
        with pytest.raises(ValueError, match="Received"):
            lt.resolve_step(step, target)


def test_plan_covers_every_switched_conv_once_per_shape(backbone, plan):
    network = build_switched_network(backbone, [("a", 2)])
    assert list(plan["layers"]) == [layer.name for layer in switched_layers(network)]
    assert lt.plan_cells(network, STEP)["layers"] == plan["layers"]  # a backbone or its switched network
    entry = plan["layers"]["stage3_block1_1_conv"]
    # cin also below one step (the reduction falls channel by channel), cout in steps (the tile).
    assert entry["in_counts"] == [1, 2, 3, 4, 8] and entry["out_counts"] == [4, 8, 12, 16]
    assert entry["conv"]["input_size"] == [8, 8] and entry["conv"]["strides"] == [2, 2]
    assert entry["cells"][4][2] == "k3x3_s2x2_same_h8w8_i8_o12"
    total = sum(len(e["in_counts"]) * len(e["out_counts"]) for e in plan["layers"].values())
    assert len(lt.unique_cells(plan)) <= total


def test_cell_model_has_the_cells_shape(plan):
    conv, cin, cout = lt.unique_cells(plan)["k3x3_s2x2_same_h8w8_i8_o12"]
    model = conv.cell_model(cin, cout)
    assert tuple(model.inputs[0].shape) == (None, 8, 8, 8)
    assert tuple(model.outputs[0].shape) == (None, 4, 4, 12)


# -- the file -------------------------------------------------------------------------------
def test_round_trip(tmp_path, plan, backbone):
    table = fake_table(plan)
    path = lt.save_table(table, tmp_path / "table.json")
    assert lt.load_table(path, network=backbone) == json.loads(json.dumps(table))
    assert json.loads(path.read_text())["format"] == lt.FORMAT


def _broken(plan, change):
    table = copy.deepcopy(fake_table(plan))
    change(table)
    return table


LAYER = "stage3_block1_2_conv"
BAD_TABLES = {
    "format": (lambda t: t.update(format="bap_tf.latency_table/0"), "format='bap_tf.latency_table/0'"),
    "missing field": (lambda t: t.pop("machine"), r"lacks the fields \['machine'\]"),
    "step": (lambda t: t.update(step=0), "step=0"),
    "no layers": (lambda t: t.update(layers={}), "layers={}"),
    "decreasing counts": (lambda t: t["layers"][LAYER].update(in_counts=[4, 12, 8, 16]), r"in_counts=\[4, 12, 8, 16\]"),
    "repeated counts": (lambda t: t["layers"][LAYER].update(out_counts=[4, 8, 8, 16]), r"out_counts=\[4, 8, 8, 16\]"),
    "ms rows": (lambda t: t["layers"][LAYER].update(ms=t["layers"][LAYER]["ms"][:3]),
                r"Received: ms row lengths \[4, 4, 4\]"),
    "ms columns": (lambda t: t["layers"][LAYER]["ms"][1].pop(), r"row lengths \[4, 3, 4, 4, "),
    "negative ms": (lambda t: t["layers"][LAYER]["ms"][0].__setitem__(1, -0.5), "ms value -0.5"),
    "nan ms": (lambda t: t["layers"][LAYER]["ms"][2].__setitem__(0, math.nan), "ms value nan"),
    "infinite ms": (lambda t: t["layers"][LAYER]["ms"][2].__setitem__(0, math.inf), "ms value inf"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_load_refuses(tmp_path, plan, case):
    change, message = BAD_TABLES[case]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(plan, change)))  # NaN and Infinity as Python's json writes them
    with pytest.raises(ValueError, match=message) as error:
        lt.load_table(path)
    assert str(path) in str(error.value) and "Received:" in str(error.value)
    with pytest.raises(ValueError, match="Received"):
        lt.save_table(_broken(plan, change), tmp_path / "not_written.json")
    assert not (tmp_path / "not_written.json").exists()


def test_load_refuses_a_table_missing_a_layer_of_the_network(tmp_path, plan, backbone):
    path = lt.save_table(_broken(plan, lambda t: t["layers"].pop(LAYER)), tmp_path / "table.json")
    lt.load_table(path)  # a valid table in itself
    with pytest.raises(ValueError, match=f"no layer '{LAYER}'.*Received: layers"):
        lt.load_table(path, network=backbone)
    wider = resnet26((IMAGE_SIZE, IMAGE_SIZE, 3), width=2 * WIDTH, blocks_per_stage=1)
    with pytest.raises(ValueError, match="ends at 4 -> 4 channels, but the network's conv has 8 -> 8"):
        lt.load_table(lt.save_table(fake_table(plan), tmp_path / "full.json"), network=wider)
    larger = resnet26((2 * IMAGE_SIZE, 2 * IMAGE_SIZE, 3), width=WIDTH, blocks_per_stage=1)
    with pytest.raises(ValueError, match=r"measured at input size \(32, 32\), but the network's conv reads \(64, 64\)"):
        lt.load_table(tmp_path / "full.json", network=larger)


def test_load_refuses_what_is_not_json(tmp_path):
    path = tmp_path / "table.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON.*Received"):
        lt.load_table(path)


def test_assemble_names_missing_cells(plan):
    ms = {name: 1.0 for name in list(lt.unique_cells(plan))[1:]}
    with pytest.raises(ValueError, match="lack 1 of the plan's .*Received: none for"):
        lt.assemble_table(plan, ms, threads=1, machine="test")


# -- interpolation --------------------------------------------------------------------------
GRID = {"in_counts": [2, 4, 8], "out_counts": [4, 8], "ms": [[1.0, 2.0], [3.0, 5.0], [4.0, 9.0]]}


def test_exact_at_grid_points():
    for i, cin in enumerate(GRID["in_counts"]):
        for j, cout in enumerate(GRID["out_counts"]):
            assert lt.interpolate(GRID, cin, cout) == pytest.approx(GRID["ms"][i][j])


def test_bilinear_between_grid_points():
    assert lt.interpolate(GRID, 3, 4) == pytest.approx(2.0)
    assert lt.interpolate(GRID, 2, 6) == pytest.approx(1.5)
    assert lt.interpolate(GRID, 3, 6) == pytest.approx((1 + 2 + 3 + 5) / 4)
    assert lt.interpolate(GRID, 6, 7) == pytest.approx(0.5 * (3 + 0.75 * 2) + 0.5 * (4 + 0.75 * 5))  # uneven intervals
    values = lt.interpolate(GRID, np.array([2.0, 3.0, 5.0]), np.array([4.0, 6.0, 8.0]))
    np.testing.assert_allclose(values, [1.0, 2.75, 5.0 + (9.0 - 5.0) / 4], rtol=1e-6)


def test_clamped_outside_the_grid():
    assert lt.interpolate(GRID, 0, 0) == pytest.approx(1.0)
    assert lt.interpolate(GRID, 100, 100) == pytest.approx(9.0)
    assert lt.interpolate(GRID, 1, 6) == pytest.approx(1.5)
    assert lt.interpolate({"in_counts": [8], "out_counts": [16], "ms": [[2.5]]}, 3, 20) == pytest.approx(2.5)


def test_gradient_follows_the_grid():
    cin, cout = tf.Variable(3.0), tf.Variable(6.0)
    with tf.GradientTape() as tape:
        ms = lt.interpolate(GRID, cin, cout)
    d_in, d_out = tape.gradient(ms, [cin, cout])
    assert float(ms) == pytest.approx(2.75)
    assert float(d_in) == pytest.approx(((3 - 1) + (5 - 2)) / 2 / 2)  # mean slope along cin
    assert float(d_out) == pytest.approx(((2 - 1) + (5 - 3)) / 2 / 4)
    cin.assign(4.0)  # a grid point: the slope of the interval above
    with tf.GradientTape() as tape:
        ms = lt.interpolate(GRID, cin, cout)
    assert float(tape.gradient(ms, cin)) == pytest.approx(((4 - 3) + (9 - 5)) / 2 / 4)
    cin.assign(20.0)  # clamped: no slope
    with tf.GradientTape() as tape:
        ms = lt.interpolate(GRID, cin, cout)
    assert float(tape.gradient(ms, cin)) == 0.0


def test_table_latency_sums_layers_with_gradient(plan):
    table = fake_table(plan)
    full = {name: (e["in_counts"][-1], e["out_counts"][-1]) for name, e in table["layers"].items()}
    assert lt.table_latency(table, full) == pytest.approx(sum(e["ms"][-1][-1] for e in table["layers"].values()))
    keep = tf.Variable(6.0)
    with tf.GradientTape() as tape:
        total = lt.table_latency(table, {LAYER: (keep, keep), "stage3_block1_1_conv": (4, keep)})
    assert float(tape.gradient(total, keep)) > 0  # more channels, more ms
    with pytest.raises(ValueError, match="no layer 'nope'.*Received: counts for 'nope'"):
        lt.table_latency(table, {"nope": (4, 4)})


# -- a real measurement ---------------------------------------------------------------------
def test_measure_table(tmp_path):
    backbone = resnet26((IMAGE_SIZE, IMAGE_SIZE, 3), width=2 * WIDTH, blocks_per_stage=1)  # 43 cells
    table = lt.measure_table(backbone, 2 * STEP, threads=1, rounds=3, round_s=0.004, cache_dir=tmp_path / "cells")
    path = lt.save_table(table, tmp_path / "table.json")
    table = lt.load_table(path, network=backbone)
    assert (table["step"], table["target"], table["threads"]) == (2 * STEP, lt.CUSTOM_TARGET, 1)
    values = [v for e in table["layers"].values() for row in e["ms"] for v in row]
    assert all(v > 0 for v in values)
    # The largest cells against the smallest, summed over the layers that have several cells
    # (never cell by cell: timing is noisy). Measured here ~1.7x; 16x the MACs.
    grids = [e for e in table["layers"].values() if len(e["in_counts"]) * len(e["out_counts"]) > 1]
    assert sum(e["ms"][-1][-1] for e in grids) > sum(e["ms"][0][0] for e in grids)
    listing = json.loads((tmp_path / "cells" / lt.CELLS_FILE).read_text())
    assert listing["format"] == lt.CELLS_FORMAT
    assert sorted(s for sigs in listing["files"].values() for s in sigs) == sorted(lt.unique_cells(listing))

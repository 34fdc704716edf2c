"""The latency-budget benchmark's record, page and plot, from made-up reports (no training here)."""

import json

import pytest

from benchmarks import common, latency_budget


def _report(budget, measured, predicted=None):
    """A report.json of two domains whose signatures the eval stage measured at 0.9 of the
    backbone (the timing pass measures ``measured``, ``_done``)."""
    domains = {name: {"kept_fraction": budget, "accuracy_pruned": 0.9} for name in measured}
    signatures = {name: {"latency_ratio": 0.9, "macs_ratio": 0.4} for name in measured}
    latency = None
    if predicted is not None:
        latency = {"table": {"backbone_ms": 1.0},
                   "domains": {name: {"signature_predicted_ratio": predicted} for name in measured}}
    return {"domains": domains, "latency_budget": latency, "timings_s": {"train": 10.0},
            "promise": {"layout": "per_domain", "android": {"backbone_latency_ms": 2.0, "signatures": signatures}}}


def _table(tmp_path):
    path = tmp_path / "table.json"
    layer = {"in_counts": [32, 64], "out_counts": [32, 64], "ms": [[0.1, 0.2], [0.2, 0.4]]}
    path.write_text(json.dumps({"target": "avx512", "step": 32, "machine": "here", "date": "2026-12-07T20:00:00",
                                "layers": {"a": layer, "b": layer}, "reference": {"ms": 1.0}}))
    return path


def test_table_summary_gives_the_floor_of_pruning(tmp_path, monkeypatch):
    monkeypatch.setattr(latency_budget.common, "ROOT", tmp_path)
    summary = latency_budget.table_summary(_table(tmp_path))
    # 0.2 ms outside the convs' 0.8; at their smallest cells 0.2 ms, a quarter of it (the budget
    # scales the convs by the reference, so the floor is the convs' share).
    assert abs(summary["outside_ms"] - 0.2) < 1e-9 and abs(summary["smallest_fraction"] - 0.25) < 1e-9


def test_a_refused_budget_is_recorded_with_its_floor_and_not_run_again(tmp_path, monkeypatch):
    calls = []

    def refuse(workdir, flags, stages):
        calls.append(flags)
        workdir.mkdir(parents=True)
        (workdir / latency_budget.pocket_runs.LOG).write_text(
            "ValueError: The budget is below what the network costs with every switch off (0.779 of the "
            "backbone's latency: ...). Expected a budget in (0.779, 1]. Received: budget=0.5\n")
        raise RuntimeError("bap-train failed")

    monkeypatch.setattr(latency_budget.common, "ROOT", tmp_path)
    monkeypatch.setattr(latency_budget, "cache_dir", lambda quick: tmp_path / "cache")
    monkeypatch.setattr(latency_budget.pocket_runs, "shared_reference", lambda: tmp_path / "reference.json")
    monkeypatch.setattr(latency_budget.pocket_runs, "_bap_train", refuse)
    table = tmp_path / "table.json"
    for _ in range(2):
        result = latency_budget.run_chain("pocket", "latency", 0.5, True, table, "abc")
        assert result["status"] == "infeasible" and result["floor"] == 0.779
    assert len(calls) == 1
    flags = calls[0]
    assert flags["budget_metric"] == "latency" and flags["latency_table"] == "table.json"
    assert flags["flagfile"] == "flags/pocket.cfg" and "android_layout" not in flags
    # A MACs budget at the same fraction: each signature the domain's own model.
    assert latency_budget.run_flags("pocket", "macs", 0.5, True, table)["android_layout"] == "per_domain"


def _done(tmp_path, measured, exported, predicted=None):
    """A finished run whose signatures time at ``measured`` of the backbone in the timing pass."""
    workdir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    workdir.mkdir()
    (workdir / "measured.json").write_text(json.dumps(measured))
    return {"status": "done", "workdir": workdir, "exported_ratio": exported,
            "report": _report(0.5, measured, predicted)}


def test_page_and_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(latency_budget.common, "ROOT", tmp_path)
    timed = lambda workdir, domains, quick: (json.loads((workdir / "measured.json").read_text()), 2.0)  # noqa: E731
    monkeypatch.setattr(latency_budget, "time_signatures", timed)
    record = common.start_record(latency_budget.NAME, False, {})
    record["tables"] = {"pocket": latency_budget.table_summary(_table(tmp_path))}
    record["runs"] = [
        latency_budget.summarize("pocket", "latency", 0.5, 0, _done(
            tmp_path, {"digits": 0.52, "letters": 0.40}, {"digits": 0.5, "letters": 0.5}, predicted=0.48), False),
        latency_budget.summarize("pocket", "latency", 0.25, 0, {"status": "infeasible", "floor": 0.3}, False),
        latency_budget.summarize("pocket", "macs", 0.5, 0, _done(
            tmp_path, {"digits": 0.7, "letters": 0.75}, {"digits": 0.7, "letters": 0.7}), False),
    ]
    # The verdict reads the timing pass, not the eval stage's figure (kept in the JSON).
    assert record["runs"][0]["domains"]["digits"]["eval_stage_ratio"] == 0.9
    assert record["runs"][0]["domains"]["digits"]["within"] and not record["runs"][0]["domains"]["letters"]["within"]
    record["plot"] = latency_budget.plot(record, tmp_path / "latency_budget.png").name
    page = latency_budget.markdown(record)
    assert (tmp_path / "latency_budget.png").stat().st_size > 0
    assert "| latency | 0.5 | `digits` | 0.480 | 0.500 | 0.520 | 1.04 | 1.04 | 0.400 | 0.900 | yes |" in page
    assert "| latency | 0.5 | `letters` | 0.480 | 0.500 | 0.400 | 0.80 | 0.80 | 0.400 | 0.900 | no |" in page
    assert "| latency | 0.25 | – | infeasible: the command refuses it (floor 0.300) |" in page
    # A MACs budget: no prediction in training, the table still prices the exported model.
    assert "| macs | 0.5 | `digits` | – | 0.700 | 0.700 | 1.40 | 1.00 | 0.400 | 0.900 | no |" in page
    assert ("**missed**: 1 of 2 domains within it over 1 trained latency-budget runs; 1 budget(s) below what "
            "the table allows: pocket at 0.25, seed 0 (floor 0.300).") in page
    assert "would leave 0.250 of the backbone's latency" in page


def _run(metric, budget, seed, latency, accuracy):
    domain = {"measured_ratio": latency, "accuracy": accuracy, "within": True}
    return {"shape": "pocket", "metric": metric, "budget": budget, "seed": seed, "status": "done",
            "domains": {"digits": domain, "letters": domain}}


def test_accuracy_at_equal_latency_interpolates_the_macs_runs_of_the_same_seed():
    runs = [_run("macs", 0.25, 1, 0.40, 0.60), _run("macs", 0.5, 1, 0.70, 0.90), _run("latency", 0.5, 1, 0.50, 0.75),
            _run("latency", 0.25, 1, 0.30, 0.50), _run("macs", 0.5, 2, 0.70, 0.90)]
    rows = latency_budget.equal_latency(runs)
    assert [(r["seed"], r["budget"]) for r in rows] == [(1, 0.5), (1, 0.25)]  # seed 2 has no latency run
    assert rows[0]["macs_accuracy"] == pytest.approx(0.7) and rows[0]["accuracy"] == 0.75  # 0.6 + a third of 0.3
    assert rows[1]["macs_accuracy"] is None  # below the MACs runs' range: not extrapolated
    page = "\n".join(latency_budget.equal_latency_lines({"equal_latency": rows}))
    assert "Target at latency budget 0.5, mean accuracy ≥ the MACs budget's at equal latency over 1 seed(s): " \
           "**met** (0.750 against 0.700)." in page
    assert "Latency budget 0.25: no seed's latency inside its MACs runs' range." in page

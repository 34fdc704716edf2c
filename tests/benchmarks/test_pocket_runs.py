"""The machinery that lets long benchmarks resume and share runs (no training here)."""

import argparse
import json
import sys
import types

import pytest

from benchmarks import frontier, pocket_runs


def test_each_recipe_gets_its_own_run_name():
    plain = pocket_runs.run_flags("jaccard", 0.5, 1, False)
    tuned = pocket_runs.run_flags("jaccard", 0.5, 1, False, {"finetune_epochs": 2, "validation_fraction": 0.1})
    assert pocket_runs.run_name(plain, False) == "pocket_jaccard_b0.5_s1"
    assert pocket_runs.run_name(tuned, False) == "pocket_jaccard_b0.5_s1_finetune_epochs2_validation_fraction0.1"
    # Quick mode's own settings are the mode's, not a recipe's.
    assert pocket_runs.run_name(pocket_runs.run_flags("none", 1.0, 0, True), True) == "pocket_none_b1_s0"


def _fail_if_run(*args, **kwargs):
    raise AssertionError("a recorded run was run again")


def test_a_recorded_run_is_not_run_again_unless_its_flags_changed(tmp_path, monkeypatch):
    flags = pocket_runs.run_flags("union", 0.25, 2, False, runs_dir=tmp_path / "runs")
    path = pocket_runs.record_path(flags, False, tmp_path)
    path.parent.mkdir(parents=True)
    effective = {k: v for k, v in pocket_runs.effective_flags(flags).items() if k != "reference_errors"}
    path.write_text(json.dumps({"effective_flags": effective, "mean_accuracy": 0.5}))
    assert pocket_runs.find_record("union", 0.25, 2, False, tmp_path, runs_dir=tmp_path / "runs") is not None
    del effective["baselines"]  # a record made before the flag existed counts: it changes no figure
    monkeypatch.setattr(pocket_runs, "run_pocket", _fail_if_run)
    record = pocket_runs.pocket_record("union", 0.25, 2, False, tmp_path, runs_dir=tmp_path / "runs")
    assert record["mean_accuracy"] == 0.5
    # A record made when the flagfile said something else does not count.
    path.write_text(json.dumps({"effective_flags": {**effective, "epochs": "99"}, "mean_accuracy": 0.5}))
    assert pocket_runs.find_record("union", 0.25, 2, False, tmp_path, runs_dir=tmp_path / "runs") is None


def _trained_run(runs_dir, extra):
    flags = pocket_runs.run_flags("jaccard", 0.5, 0, False, extra, runs_dir)
    workdir = pocket_runs.workdir_of(flags, False, runs_dir)
    (workdir / "backup").mkdir(parents=True)
    (workdir / "backup" / "state").write_text("backup")
    (workdir / "model.keras").write_text("model")
    (workdir / "history.json").write_text("{}")
    (workdir / "timings.json").write_text(json.dumps({"train": 100.0, "prune": 5.0}))
    marker = {"flags": flags, "effective_flags": pocket_runs.effective_flags(flags), "stages": ["train", "prune"]}
    (workdir / pocket_runs.MARKER).write_text(json.dumps(marker))
    return workdir


def test_runs_that_differ_only_after_training_share_the_trained_model(tmp_path):
    runs_dir = tmp_path / "runs"
    source = _trained_run(runs_dir, {"warmup_epochs": 1})
    tuned = pocket_runs.run_flags("jaccard", 0.5, 0, False, {"warmup_epochs": 1, "finetune_epochs": 2}, runs_dir)
    workdir = pocket_runs.workdir_of(tuned, False, runs_dir)
    assert pocket_runs._share_training(workdir, tuned, False, runs_dir) == ["train"]
    assert (workdir / "model.keras").read_text() == "model" and (workdir / "backup" / "state").exists()
    assert json.loads((workdir / "timings.json").read_text()) == {"train": 100.0}  # not the source's prune
    assert json.loads((workdir / pocket_runs.MARKER).read_text())["train_shared_from"] == source.name
    # Another training setting (here: no warm-up) trains its own model.
    other = pocket_runs.run_flags("jaccard", 0.5, 0, False, {"finetune_epochs": 2}, runs_dir)
    assert pocket_runs._share_training(pocket_runs.workdir_of(other, False, runs_dir), other, False, runs_dir) == []


def test_a_run_of_another_name_with_the_same_flags_is_copied_not_redone(tmp_path):
    runs_dir = tmp_path / "runs"
    # Named before its benchmark spelled out the flagfile's number of fine-tuning epochs.
    epochs = int(pocket_runs.flagfile_values()["finetune_epochs"])
    source = _trained_run(runs_dir, {"finetune_learning_rate": 1e-3})
    spelled = pocket_runs.run_flags("jaccard", 0.5, 0, False,
                                    {"finetune_learning_rate": 1e-3, "finetune_epochs": epochs}, runs_dir)
    workdir = pocket_runs.workdir_of(spelled, False, runs_dir)
    assert workdir != source
    assert pocket_runs._copy_same_run(workdir, spelled, False, runs_dir) == ["train", "prune"]
    assert (workdir / "model.keras").read_text() == "model"
    assert json.loads((workdir / "timings.json").read_text())["prune"] == 5.0
    assert pocket_runs._done_stages(workdir, spelled) == ["train", "prune"]
    # Another value is another run: at most its training is shared.
    longer = pocket_runs.run_flags("jaccard", 0.5, 0, False,
                                   {"finetune_learning_rate": 1e-3, "finetune_epochs": epochs + 1}, runs_dir)
    assert pocket_runs._copy_same_run(pocket_runs.workdir_of(longer, False, runs_dir), longer, False, runs_dir) == []


def _row(loss, budget, accuracy, macs, seed=0):
    return {"sharing_loss": loss, "budget": budget, "seed": seed, "mean_accuracy": accuracy, "macs_ratio": macs,
            "accuracy": {"a": accuracy, "b": accuracy}}


def test_frontier_compares_losses_with_none_where_both_reach():
    rows = [_row("none", 1.0, 0.80, 1.0), _row("none", 0.5, 0.78, 0.85),
            _row("jaccard", 1.0, 0.82, 0.9), _row("jaccard", 0.5, 0.79, 0.5), _row("jaccard", 0.25, 0.7, 0.25),
            _row("union", 1.0, 0.70, 0.95), _row("union", 0.5, 0.79, 0.45)]
    comparison = frontier.compare_with_none(frontier.points(rows))
    # Overlap with none: MACs 0.85-0.9; jaccard 0.82 at 0.9 vs none's 0.79 there, and above at 0.85.
    assert comparison["jaccard"]["macs_levels"] == [0.85, 0.9] and comparison["jaccard"]["above"]
    assert not comparison["union"]["above"] and comparison["union"]["min_gap"] < 0
    assert frontier.compare_with_none(frontier.points(rows[:2] + [_row("union", 0.25, 0.9, 0.2)]))["union"] is None


def test_frontier_judges_sharing_against_none_at_the_same_budget():
    rows = [_row("none", 0.5, 0.80, 0.85), _row("jaccard", 0.5, 0.79, 0.5), _row("union", 0.5, 0.81, 0.6),
            _row("intersection", 0.5, 0.75, 0.4), _row("intersection", 1.0, 0.9, 0.9)]
    sharing = frontier.sharing_at_budget(frontier.points(rows))
    assert sharing["jaccard"]["met"] and sharing["jaccard"]["accuracy_gap"] == pytest.approx(-0.01)
    assert not sharing["union"]["met"]  # accurate but MACs 0.6 > 0.55
    assert not sharing["intersection"]["met"] and sharing["intersection"]["macs_ratio"] == 0.4  # 5 points below
    assert frontier.sharing_at_budget(frontier.points(rows[1:])) == {}  # no none at β 0.5 yet


def test_frontier_page_and_plot_from_recorded_runs(tmp_path):
    rows = [_row("none", 1.0, 0.80, 1.0), _row("none", 1.0, 0.82, 0.98, seed=1), _row("jaccard", 0.5, 0.79, 0.5)]
    shared = [{"feature_extractor": {"a": {"accuracy": 0.6}, "b": {"accuracy": 0.7}}, "finetune": None}]
    current = {"main job now": {"seeds": 2, "mean_accuracy": 0.84, "mean_accuracy_std": 0.01, "macs_ratio": 0.37}}
    record = {"runs": rows, "seeds": [0, 1], "partial": "1 of 2", "shared_baselines": shared, "current": current,
              "fine_tuning": frontier.fine_tuning(False, {"finetune_batch_size": 0, "finetune_learning_rate": 1e-4})}
    frontier.summarize_into(record, tmp_path / "frontier.png")
    assert record["baselines"] == {"feature_extractor": pytest.approx(0.65)}
    assert (tmp_path / "frontier.png").stat().st_size > 0
    page = frontier.markdown(record)
    assert "0.810 ± 0.014" in page and "**Partial**: 1 of 2" in page and "feature extractor 0.650" in page
    assert "no MACs level in common" in page and "not measured yet" in page  # jaccard at 0.5 never meets none
    assert "Target at β 0.5" not in page  # none has no point at β 0.5
    assert "main job now 0.840 ± 0.010 at MACs 0.370 (2 seed(s))" in page
    epochs = pocket_runs.flagfile_values()["finetune_epochs"]  # the main job's, the run does not set them
    assert f"fine-tunes its reduced models {epochs} epochs at the training batch, Adam 0.0001" in page


def test_frontier_plot_fits_y_to_the_data_and_draws_budgets_as_markers(tmp_path, monkeypatch):
    # Every point in [0.69, 0.87]: the y axis hugs them, not [0, 1]; β is a marker named in a
    # legend, never a text beside the points (those overlapped where the losses' points crowd).
    rows = [_row(loss, budget, accuracy, macs) for loss, offset in (("none", 0.0), ("union", 0.01), ("jaccard", 0.02))
            for budget, accuracy, macs in ((1.0, 0.87, 0.97), (0.5, 0.80 + offset, 0.4), (0.25, 0.69 + offset, 0.15))]
    record = {"frontier": frontier.points(rows), "baselines": {"finetune": 0.86}, "plot_name": "frontier.png"}
    (tmp_path / "frontier.json").write_text(json.dumps(record))
    figures = []
    monkeypatch.setattr(frontier.plt, "close", figures.append)
    assert frontier.replot(tmp_path / "frontier.json") == tmp_path / "frontier.png"
    assert (tmp_path / "frontier.png").stat().st_size > 0
    (figure,) = figures
    low, high = figure.axes[0].get_ylim()
    assert 0.6 < low < 0.69 and 0.87 < high < 0.95
    assert not figure.axes[0].texts
    legends = [[t.get_text() for t in legend.get_texts()] for legend in figure.legends]
    assert ["β = 1", "β = 0.5", "β = 0.25"] in legends
    frontier.plt.close(figure)
    # A baseline below the points stays in view; nothing drawn: the old frame.
    assert frontier.y_limits(record["frontier"], {"feature_extractor": 0.63})[0] < 0.63
    assert frontier.y_limits({}, {}) == (0.0, 1.02)


def test_frontier_collects_only_recorded_runs_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(pocket_runs, "run_pocket", _fail_if_run)
    args = types.SimpleNamespace(seeds=1, quick=True, results_dir=tmp_path)
    seeds, rows, missing = frontier.measure(args, losses=("none",), budgets=(1.0, 0.5), run=False)
    assert seeds == [0] and rows == [] and missing == ["none β 1 seed 0", "none β 0.5 seed 0"]


def test_effective_flags_hold_every_default_so_a_changed_default_makes_records_stale(tmp_path, monkeypatch):
    flags = pocket_runs.run_flags("jaccard", 0.5, 0, False, runs_dir=tmp_path)
    effective = pocket_runs.effective_flags(flags)
    assert effective["budget"] == 0.5 and effective["warmup_epochs"] == 0  # named / a library default
    # Values are parsed as bap-train parses them: two spellings of one value are one run.
    assert pocket_runs.effective_flags({**flags, "learning_rate": "1e-2"}) == effective
    path = pocket_runs.record_path(flags, False, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"effective_flags": pocket_runs._without(effective), "mean_accuracy": 0.5}))
    assert pocket_runs.find_record("jaccard", 0.5, 0, False, tmp_path, runs_dir=tmp_path)["mean_accuracy"] == 0.5
    warmup = pocket_runs._bap_train_flags()["warmup_epochs"]
    monkeypatch.setattr(warmup, "default", 3)
    assert pocket_runs.find_record("jaccard", 0.5, 0, False, tmp_path, runs_dir=tmp_path) is None
    with pytest.raises(ValueError, match="not bap-train flags: no_such_flag"):
        pocket_runs.resolve_flags({"no_such_flag": "1"})


def test_export_and_latency_measure_the_main_jobs_loss_unless_told(monkeypatch):
    assert pocket_runs.main_job_loss() == pocket_runs.flagfile_values()["sharing_loss"]
    monkeypatch.setattr(sys, "argv", ["export.py"])
    assert pocket_runs.parse_with_sharing_loss(argparse.ArgumentParser())[1:] == (
        pocket_runs.main_job_loss(), "the main job's (flags/pocket.cfg)")
    monkeypatch.setattr(sys, "argv", ["export.py", "--sharing_loss=union"])
    assert pocket_runs.parse_with_sharing_loss(argparse.ArgumentParser())[1] == "union"


def test_frontier_losses_flag_keeps_the_order_given_and_names_a_bad_loss():
    assert frontier._losses("jaccard, none,jaccard") == ("jaccard", "none")
    with pytest.raises(argparse.ArgumentTypeError, match="'jaccard,bogus'"):
        frontier._losses("jaccard,bogus")


def test_a_run_recorded_under_another_name_is_found_by_its_flags(tmp_path, monkeypatch):
    flags = pocket_runs.run_flags("jaccard", 0.5, 1, False, runs_dir=tmp_path / "runs")
    path = pocket_runs.record_path(flags, False, tmp_path)
    other = path.with_name("an_older_name-" + path.name.rsplit("-", 1)[1])
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"effective_flags": pocket_runs.effective_flags(flags), "mean_accuracy": 0.7}))
    monkeypatch.setattr(pocket_runs, "run_pocket", _fail_if_run)
    record = pocket_runs.pocket_record("jaccard", 0.5, 1, False, tmp_path, runs_dir=tmp_path / "runs")
    assert record["mean_accuracy"] == 0.7


def test_a_run_whose_flags_changed_only_after_training_keeps_its_training(tmp_path):
    runs_dir = tmp_path / "runs"
    workdir = _trained_run(runs_dir, {"finetune_epochs": 2})
    retuned = pocket_runs.run_flags("jaccard", 0.5, 0, False, {"finetune_epochs": 3}, runs_dir)
    assert pocket_runs.workdir_of(retuned, False, runs_dir) != workdir  # the name says the recipe
    # Same workdir, a post-training flag changed (as when the flagfile's default changes).
    marker = json.loads((workdir / pocket_runs.MARKER).read_text())
    marker["effective_flags"]["finetune_learning_rate"] = "0.5"
    (workdir / pocket_runs.MARKER).write_text(json.dumps(marker))
    flags = pocket_runs.run_flags("jaccard", 0.5, 0, False, {"finetune_epochs": 2}, runs_dir)
    assert pocket_runs._done_stages(workdir, flags) == ["train"]
    # A training flag changed: everything is redone.
    marker["effective_flags"]["epochs"] = "99"
    (workdir / pocket_runs.MARKER).write_text(json.dumps(marker))
    assert pocket_runs._done_stages(workdir, flags) == []


def test_shared_baselines_outlive_a_change_of_post_training_flags(tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    path = runs_dir / "full" / "baselines_s0.json"
    path.parent.mkdir(parents=True)
    flags = pocket_runs.effective_flags(pocket_runs.baseline_flags(0, False, runs_dir))
    for changed, kept in ((("finetune_epochs", 99), True), (("sharing_loss", "union"), True), (("epochs", 99), False),
                          (("finetune_schedule", "other"), False)):  # the baselines fine-tune on the run's schedule
        path.write_text(json.dumps({"feature_extractor": {}, "effective_flags": {**flags, changed[0]: changed[1]}}))
        found = pocket_runs.shared_baselines(0, False, runs_dir, measure=False)
        assert (found is not None) == kept, changed


def test_a_results_page_not_named_after_its_module_names_the_module_to_run(monkeypatch):
    from benchmarks import common

    monkeypatch.setattr(common.sys, "argv", ["frontier.py", "--fine_tuning=before"])
    record = common.start_record("frontier_finetune_before", False, {}, module="frontier")
    assert record["benchmark"] == "frontier_finetune_before"
    assert record["command"] == "python -m benchmarks.frontier --fine_tuning=before"


def test_a_flag_added_since_a_run_counts_at_the_value_it_ran_with(tmp_path, monkeypatch):
    # A run recorded before --finetune_schedule existed ran with a constant rate.
    constant = pocket_runs.run_flags("jaccard", 0.5, 0, True, extra={"finetune_schedule": "constant"},
                                     runs_dir=tmp_path)
    workdir = pocket_runs.workdir_of(constant, True, tmp_path)
    workdir.mkdir(parents=True)
    saved = pocket_runs.effective_flags(constant)
    del saved["finetune_schedule"]
    (workdir / pocket_runs.MARKER).write_text(json.dumps({"flags": constant, "effective_flags": saved,
                                                          "stages": ["train", "prune"]}))
    assert pocket_runs._done_stages(workdir, constant) == ["train", "prune"]
    # Asked with a cosine rate, the same run keeps only its training.
    cosine = {**constant, "finetune_schedule": "cosine"}
    assert pocket_runs._done_stages(workdir, cosine) == ["train"]

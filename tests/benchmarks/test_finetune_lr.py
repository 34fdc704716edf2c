"""The fine-tuning-rate benchmark's choice and page, from fake runs (no training here)."""

import json
import types

from benchmarks import finetune_lr

# held-back and test accuracy of each rate's fake run: test prefers 8e-4, held-back data 4e-4.
SCORES = {2e-4: (0.80, 0.81), 4e-4: (0.86, 0.83), 8e-4: (0.84, 0.85), 1.6e-3: (0.70, 0.84)}


def _fake_run_pocket(tmp_path, calls):
    def run_pocket(loss, budget, seed, quick, stages, extra):
        calls.append((loss, budget, seed, stages, extra))
        workdir = tmp_path / f"s{seed}_{extra['finetune_learning_rate']}"
        (workdir / "pruned").mkdir(parents=True)
        held_back, test = SCORES[extra["finetune_learning_rate"]]
        union = {"selection_score": held_back + seed / 100, "selected_epoch": 8,
                 "after": {"a": test, "b": test}, "before": {}, "history": {}}
        (workdir / "pruned" / "finetune.json").write_text(json.dumps({"union": union}))
        return {"workdir": workdir, "timings": {"prune": 100.0}}
    return run_pocket


def test_rate_is_chosen_on_held_back_data_never_on_test(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(finetune_lr.pocket_runs, "run_pocket", _fake_run_pocket(tmp_path, calls))
    args = types.SimpleNamespace(seeds=2, quick=False)
    seeds, rows = finetune_lr.measure(args)
    assert seeds == [0, 1] and len(rows) == 8
    # The main job's chain to its fine-tuning, the data held back, the rate varied.
    assert calls[0] == ("jaccard", 0.5, 0, ("train", "prune"), {"validation_fraction": 0.1, "finetune_learning_rate": 2e-4})
    summary = finetune_lr.summarize(rows)
    assert summary["chosen"] == 4e-4  # test accuracy would have chosen 8e-4
    assert abs(summary["rates"][4e-4]["held_back"] - 0.865) < 1e-9 and summary["rates"][8e-4]["test"] == 0.85
    # A rate measured at fewer seeds than the others cannot win on its luckier seeds.
    partial = rows + [{**rows[0], "seed": 2, "rate": 3e-3, "held_back": 0.99}]
    assert finetune_lr.summarize(partial)["chosen"] == 4e-4


def test_page_and_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(finetune_lr.pocket_runs, "run_pocket", _fake_run_pocket(tmp_path, []))
    seeds, rows = finetune_lr.measure(types.SimpleNamespace(seeds=1, quick=False), rates=(4e-4, 8e-4))
    summary = finetune_lr.summarize(rows)
    record = {"seeds": seeds, "summary": summary, "main_job_rate": 8e-4,
              "plot_name": finetune_lr.plot(summary, tmp_path / "rate.png").name}
    page = finetune_lr.markdown(record)
    assert (tmp_path / "rate.png").stat().st_size > 0
    assert "| 0.0008 (main job) | 1 | 0.840 | 0.850 | 8 |" in page
    assert "Held-back data choose **0.0004**: not the main job's rate (0.0008)." in page

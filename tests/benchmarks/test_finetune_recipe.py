"""The fine-tuning-recipe benchmark's choice and page, from fake runs (no training here)."""

import json
import types

from benchmarks import finetune_recipe

LABELS = list(finetune_recipe.RECIPES)
# held-back and test accuracy of each recipe's fake run: test prefers the first, held-back data the second.
SCORES = {LABELS[0]: (0.84, 0.85), LABELS[1]: (0.86, 0.83),
          **{label: (0.80 - index / 100, 0.81 - index / 100) for index, label in enumerate(LABELS[2:])}}


def _fake_run_pocket(tmp_path, calls):
    def run_pocket(loss, budget, seed, quick, stages, extra):
        calls.append((loss, budget, seed, stages, extra))
        label = next(label for label in finetune_recipe.RECIPES
                     if finetune_recipe.run_extra(label) == extra and finetune_recipe.recipe_loss(label) == loss)
        workdir = tmp_path / f"s{seed}_{LABELS.index(label)}"
        (workdir / "pruned").mkdir(parents=True)
        held_back, test = SCORES[label]
        union = {"selection_score": held_back + seed / 100, "selected_epoch": 8,
                 "after": {"a": test, "b": test}, "before": {}, "history": {}}
        (workdir / "pruned" / "finetune.json").write_text(json.dumps({"union": union}))
        (workdir / "pruned" / "costs.json").write_text(json.dumps({"union_ratio": {"macs": 0.4}}))
        return {"workdir": workdir, "timings": {"prune": 100.0}}
    return run_pocket


def test_recipe_is_chosen_on_held_back_data_never_on_test(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(finetune_recipe.pocket_runs, "run_pocket", _fake_run_pocket(tmp_path, calls))
    seeds, rows = finetune_recipe.measure(types.SimpleNamespace(seeds=2, quick=False))
    assert seeds == [0, 1] and len(rows) == 2 * len(LABELS)
    # The main job's chain to its fine-tuning, the data held back, the recipe varied.
    assert calls[0] == ("jaccard", 0.5, 0, ("train", "prune"),
                        {"validation_fraction": 0.1, **finetune_recipe.RECIPES[LABELS[0]]})
    summary = finetune_recipe.summarize(rows)
    assert summary["chosen"] == LABELS[1]  # test accuracy would have chosen the first
    assert abs(summary["recipes"][LABELS[1]]["held_back"] - 0.865) < 1e-9
    assert "test" not in summary["recipes"][LABELS[0]]  # not chosen: not reported on test
    assert summary["recipes"][LABELS[1]]["test_per_domain"]["a"][0] == 0.83
    # A recipe measured at fewer seeds than the others cannot win on its luckier seeds.
    partial = rows + [{**rows[0], "seed": 2, "recipe": "other", "held_back": 0.99}]
    assert finetune_recipe.summarize(partial)["chosen"] == LABELS[1]
    # A recipe with another sharing loss trains its own model with that loss.
    assert ("union", 0.5, 0, ("train", "prune"), finetune_recipe.run_extra(LABELS[4])) in calls
    assert "sharing_loss" not in finetune_recipe.run_extra(LABELS[4])


def test_page_and_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(finetune_recipe.pocket_runs, "run_pocket", _fake_run_pocket(tmp_path, []))
    seeds, rows = finetune_recipe.measure(types.SimpleNamespace(seeds=1, quick=False), recipes=LABELS[:2])
    summary = finetune_recipe.summarize(rows)
    baselines = {"finetune": {"a": (0.95, None), "b": (0.85, None)},
                 "feature_extractor": {"a": (0.6, None), "b": (0.5, None)}}
    record = {"seeds": seeds, "summary": summary, "main_job_recipe": LABELS[0], "baselines": baselines,
              "plot_name": finetune_recipe.plot(summary, tmp_path / "recipe.png").name}
    page = finetune_recipe.markdown(record)
    assert (tmp_path / "recipe.png").stat().st_size > 0
    # Only the chosen recipe is reported on the test split.
    assert f"| {LABELS[0]} (main job) | 1 | 0.840 | – | 0.400 | 8 |" in page
    assert f"| {LABELS[1]} | 1 | 0.860 | 0.830 | 0.400 | 8 |" in page
    assert f"Held-back data choose **{LABELS[1]}**: not the main job's ({LABELS[0]})." in page
    assert f"| union-pruned model, {LABELS[1]} | 0.830 | 0.830 | 0.830 |" in page
    assert "| per-domain fine-tuning (tuned on the held-back data) | 0.950 | 0.850 | 0.900 |" in page


def test_the_main_job_recipe_is_read_from_its_flags():
    # flags/pocket.cfg: 1.6e-3, cosine, distillation, 16 epochs augmented; the default layout,
    # shared_filters: the whole union.
    assert finetune_recipe.main_job_recipe(quick=False) == LABELS[7]

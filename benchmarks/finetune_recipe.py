"""Which recipe data held back from training choose, at the main job's settings: fine-tuning,
the union model's layout and the sharing loss.

A user chooses without the test split, and so does this benchmark: the main job
(``flags/pocket.cfg``: ``jaccard``, β 0.5) with 10 % of each domain's training data held back
(``--validation_fraction=0.1``), trained once per seed, then fine-tuned with each recipe of
``RECIPES`` (learning rate, schedule, distillation from the per-domain fine-tuning baselines, the
union model's layout, the number of epochs, augmentation; a recipe with another sharing loss
trains its own model), keeping the epoch that
scores best on the held-back data; the recipe with the best held-back accuracy (union model,
mean over domains and seeds) wins. Each run is the real chain ``bap-train --stages=train,prune``
(``benchmarks.pocket_runs``: resumable, and the runs of one seed share its training); the figures
are each run's ``pruned/finetune.json``. Test accuracy is shown beside, never used to choose.

    python -m benchmarks.finetune_recipe            # 3 seeds x 9 recipes: 3-4 hours on 2 cores
    python -m benchmarks.finetune_recipe --quick    # 1 seed, 2 epochs x 30 steps
"""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bap_tf.atomic import atomic_path  # noqa: E402
from benchmarks import common, pocket_runs  # noqa: E402

NAME = "finetune_recipe"
LOSS, BUDGET = "jaccard", 0.5
VALIDATION_FRACTION = 0.1
# label -> the bap-train flags of the recipe (beyond the main job's).
# Each recipe names every flag any recipe varies: the main job's flagfile sets them too.
# The union model of the first three keeps each domain's channel masks (as the per_domain and
# shared layouts need); with the shared_filters layout every domain reads the whole union.
# The first five ran 8 epochs at batch 128 without augmentation (the length chosen earlier on the
# test split); the next three vary those on the held-back data too; the last has every conv of the
# union read only the run of its input that holds its channels (--read_runs: fewer MACs), the one
# flag the others leave to its default.
_LENGTH = {"finetune_epochs": 8, "finetune_batch_size": 128, "finetune_augment": False}
_SAME = {**_LENGTH, "finetune_learning_rate": 1.6e-3, "finetune_schedule": "cosine", "distill_weight": 0.5,
         "android_layout": "shared_filters"}
RECIPES = {
    "Adam 8e-4, constant": {**_LENGTH, "finetune_learning_rate": 8e-4, "finetune_schedule": "constant",
                            "distill_weight": 0.0, "android_layout": "per_domain"},
    "Adam 1.6e-3, cosine": {**_LENGTH, "finetune_learning_rate": 1.6e-3, "finetune_schedule": "cosine",
                            "distill_weight": 0.0, "android_layout": "per_domain"},
    "Adam 1.6e-3, cosine, distillation 0.5": {**_LENGTH, "finetune_learning_rate": 1.6e-3,
                                              "finetune_schedule": "cosine", "distill_weight": 0.5,
                                              "android_layout": "per_domain"},
    "the same, each domain reading the whole union": _SAME,
    "the same, union sharing loss": {**_SAME, "sharing_loss": "union"},
    "the same, 16 epochs": {**_SAME, "finetune_epochs": 16},
    "the same, augmented": {**_SAME, "finetune_augment": True},
    "the same, 16 epochs, augmented": {**_SAME, "finetune_epochs": 16, "finetune_augment": True},
    "the same, 16 epochs, augmented, reading runs": {**_SAME, "finetune_epochs": 16, "finetune_augment": True,
                                                     "read_runs": True},
}


def recipe_loss(recipe):
    """The recipe's sharing loss (the main job's unless it names one)."""
    return RECIPES[recipe].get("sharing_loss", LOSS)


def run_extra(recipe):
    """The recipe's flags beyond the main job's, the sharing loss aside (``recipe_loss``)."""
    flags = {name: value for name, value in RECIPES[recipe].items() if name != "sharing_loss"}
    return {"validation_fraction": VALIDATION_FRACTION, **flags}


def measure(args, recipes=tuple(RECIPES), on_row=None):
    """``(seeds, rows)``: one row per (seed, recipe), seeds outer; ``on_row(seeds, rows)`` after each."""
    seeds = list(range(args.seeds if args.seeds else (1 if args.quick else 3)))
    rows = []
    for seed in seeds:
        for recipe in recipes:
            print(f"seed {seed}, fine-tuning {recipe}:", flush=True)
            run = pocket_runs.run_pocket(recipe_loss(recipe), BUDGET, seed, args.quick, stages=("train", "prune"),
                                         extra=run_extra(recipe))
            union = json.loads((run["workdir"] / "pruned" / "finetune.json").read_text())["union"]
            costs = json.loads((run["workdir"] / "pruned" / "costs.json").read_text())
            rows.append({"seed": seed, "recipe": recipe, "held_back": union["selection_score"],
                         "macs": costs["union_ratio"]["macs"],
                         "selected_epoch": union["selected_epoch"],
                         "test": common.mean(list(union["after"].values())), "test_per_domain": union["after"],
                         "prune_s": run["timings"].get("prune")})
            if on_row:
                on_row(seeds, rows)
    return seeds, rows


def summarize(rows):
    """``{"recipes": {recipe: {held_back, held_back_std, seeds, epochs}}, "chosen": recipe}``;
    the recipe with the best mean held-back accuracy (among those measured at the most seeds).
    Only the chosen recipe's entry has its test accuracy (``test``, ``test_std``,
    ``test_per_domain``: ``{domain: (mean, std)}``): the others are not reported on test."""
    recipes = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        items = [r for r in rows if r["recipe"] == recipe]
        recipes[recipe] = {
            "seeds": len(items),
            "held_back": common.mean([r["held_back"] for r in items]),
            "held_back_std": common.std([r["held_back"] for r in items]),
            "selected_epochs": [r["selected_epoch"] for r in items],
            "macs": common.mean([r["macs"] for r in items if r.get("macs") is not None]),
        }
    most = max((entry["seeds"] for entry in recipes.values()), default=0)
    complete = {recipe: entry for recipe, entry in recipes.items() if entry["seeds"] == most}
    chosen = max(complete, key=lambda recipe: complete[recipe]["held_back"]) if complete else None
    if chosen is not None:
        items = [r for r in rows if r["recipe"] == chosen]
        recipes[chosen].update(
            test=common.mean([r["test"] for r in items]), test_std=common.std([r["test"] for r in items]),
            test_per_domain={d: (common.mean([r["test_per_domain"][d] for r in items]),
                                 common.std([r["test_per_domain"][d] for r in items]))
                             for d in items[0]["test_per_domain"]})
    return {"recipes": recipes, "chosen": chosen}


def baselines_over_seeds(seeds, recipe, quick, measure):
    """``{kind: {domain: (mean, std)}}`` of the baselines (tuned on the same held-back data) at
    ``seeds``, with the recipe's fine-tuning schedule; ``None`` when a seed's are not measured."""
    found = [pocket_runs.shared_baselines(seed, quick, measure=measure, extra=run_extra(recipe)) for seed in seeds]
    if any(record is None for record in found):
        return None
    return {kind: {d: (common.mean([r[kind][d]["accuracy"] for r in found]),
                       common.std([r[kind][d]["accuracy"] for r in found])) for d in found[0][kind]}
            for kind in ("feature_extractor", "finetune")}


def plot(summary, path):
    figure, axis = plt.subplots(figsize=(9, 3.8))
    labels = list(summary["recipes"])
    positions = range(len(labels))
    axis.errorbar(list(positions), [summary["recipes"][r]["held_back"] for r in labels], marker="o", capsize=3,
                  linestyle="none", label="held-back 10 % of training data (chooses)",
                  yerr=[summary["recipes"][r]["held_back_std"] or 0.0 for r in labels])
    if summary["chosen"] is not None:
        chosen = summary["recipes"][summary["chosen"]]
        axis.errorbar([labels.index(summary["chosen"]) + 0.1], [chosen["test"]], yerr=[chosen["test_std"] or 0.0],
                      marker="s", capsize=3, linestyle="none", label="test split, chosen recipe only")
    axis.set_xticks(list(positions), [label.replace(", ", "\n") for label in labels], fontsize=8)
    axis.set_ylabel("mean accuracy, union model (4 domains)")
    axis.set_title("Pocket benchmark, β 0.5: recipe after training")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return path


def _pm(pair, seeds):
    """``mean ± std`` of a ``(mean, std)`` over ``seeds`` seeds (the value alone for one)."""
    mean, std = pair
    return common.fmt(mean) if seeds < 2 else f"{common.fmt(mean)} ± {common.fmt(std)}"


def markdown(record):
    summary, default = record["summary"], record["main_job_recipe"]
    rows = [[recipe + (" (main job)" if recipe == default else ""), str(entry["seeds"]),
             common.fmt_summary_pm(entry, "held_back"),
             common.fmt_summary_pm(entry, "test") if "test" in entry else "–",
             common.fmt(entry.get("macs")), ", ".join(map(str, entry["selected_epochs"]))]
            for recipe, entry in summary["recipes"].items()]
    chosen = summary["chosen"]
    lines = [
        f"### Recipe chosen on held-back data, pocket benchmark ({len(record['seeds'])} seed(s) asked)", "",
        common.markdown_table(["recipe", "seeds", "held-back accuracy (chooses)", "test accuracy (chosen recipe only)",
                               "union MACs / backbone", "epoch kept per seed"], rows), "",
        f"The main job (`jaccard`, β 0.5) with {VALIDATION_FRACTION:.0%} of each domain's training data held back; "
        "union model, mean over domains; the epoch kept is the best on the held-back data (0: before fine-tuning).",
        "",
    ]
    if chosen is not None:
        same = "the main job's" if chosen == default else f"not the main job's ({default})"
        lines += [f"Held-back data choose **{chosen}**: {same}.", ""]
        entry, baselines = summary["recipes"][chosen], record.get("baselines")
        domains = list(entry["test_per_domain"])
        table = [["union-pruned model, " + chosen, *(_pm(entry["test_per_domain"][d], entry["seeds"]) for d in domains),
                  common.fmt_summary_pm(entry, "test")]]
        for kind, label in (("finetune", "per-domain fine-tuning (tuned on the held-back data)"),
                            ("feature_extractor", "feature extractor (tuned on the held-back data)")):
            if baselines:
                means = [baselines[kind][d][0] for d in domains]
                table.append([label, *(_pm(baselines[kind][d], entry["seeds"]) for d in domains),
                              common.fmt(common.mean(means))])
        lines += [f"Test accuracy over seeds {', '.join(map(str, record['seeds']))} (mean ± std):", "",
                  common.markdown_table(["model", *(f"`{d}`" for d in domains), "mean"], table), ""]
    lines.append(f"![fine-tuning recipe]({record['plot_name']})")
    if record.get("partial"):
        lines += ["", f"**Partial**: {record['partial']}"]
    return "\n".join(lines)


def main_job_recipe(quick):
    """The label of the recipe the main job's flags run (``None`` if none of ``RECIPES``)."""
    flags = pocket_runs.effective_flags(pocket_runs.run_flags(LOSS, BUDGET, 0, quick))
    return next((label for label, extra in RECIPES.items()
                 if all(flags[name] == value for name, value in {"sharing_loss": LOSS, **extra}.items())), None)


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--seeds", type=int, default=0, help="seeds (default: 3, quick mode 1)")
    args = parser.parse_args()
    settings = {"recipes": RECIPES,
                "run_flags": pocket_runs.run_flags(LOSS, BUDGET, "<seed>", args.quick, run_extra(next(iter(RECIPES))))}
    record = common.start_record(NAME, args.quick, settings)
    record["main_job_recipe"] = main_job_recipe(args.quick)

    def write(seeds, rows):
        done = len(rows) == len(seeds) * len(RECIPES)
        record.update(seeds=seeds, rows=rows, summary=summarize(rows))
        chosen = record["summary"]["chosen"]
        record["baselines"] = baselines_over_seeds(seeds, chosen, args.quick, measure=done) if done else None
        record.pop("partial", None)
        if not done:
            record["partial"] = f"{len(rows)} of {len(seeds) * len(RECIPES)} runs"
        plot_path = common.results_path(NAME, args.quick, "png", args.results_dir)
        record["plot_name"] = plot(record["summary"], plot_path).name
        common.write_results(record, markdown(record), args.results_dir)

    measure(args, on_row=write)


if __name__ == "__main__":
    main()

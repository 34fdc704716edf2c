"""Training recipes on the pocket benchmark at budget 0.5: which one the main job should default to.

Each recipe is the README's main job as it was before this benchmark chose its defaults
(``recipes_base.cfg``: ``union``, no fine-tuning, no held-back data) with a few flags changed; each run is
the real chain ``bap-train --stages=train,prune,eval`` (``benchmarks.pocket_runs``), recorded as
it ends in ``results/pocket_runs/<mode>/<run>.json`` (a killed benchmark resumes from there).
Runs that differ only after training (e.g. ``--finetune_epochs``) train once and share the model.
Seeds go in the outer loop, so a partial benchmark has every recipe at the first seeds.

Figures: Keras test accuracy per domain of the union-pruned model (fine-tuned when the recipe
fine-tunes), their mean, the union-pruned model's MACs over the backbone's, and wall time.

    python -m benchmarks.recipes            # 3 seeds, the main job's epochs: hours on 2 cores
    python -m benchmarks.recipes --quick    # 1 seed, 2 epochs x 30 steps
"""

from benchmarks import common, pocket_runs

NAME = "recipes"
BUDGET = 0.5
# label -> (sharing loss, flags over recipes_base.cfg)
# Every recipe changes a few flags of the main job as it was before this benchmark chose its
# defaults (benchmarks/recipes_base.cfg), so the recipes stay comparable when pocket.cfg changes.
BASE = {"flagfile": "benchmarks/recipes_base.cfg"}
NEW_FINETUNE = {"finetune_epochs": 8, "finetune_batch_size": 128, "finetune_learning_rate": 8e-4}
RECIPES = {
    "union": ("union", {**BASE}),
    "jaccard": ("jaccard", {**BASE}),
    "union + finetune 4": ("union", {**BASE, "finetune_epochs": 4}),
    "jaccard + finetune 4": ("jaccard", {**BASE, "finetune_epochs": 4}),
    # Model selection on 10 % of the training data held back (best epoch of training and of
    # fine-tuning). Selection lost 2.5 points at seed 0 (it trains on 10 % less data), so each
    # recipe after it changes one thing of the default (``jaccard + finetune 4``): the
    # fine-tuning's learning rate at 1e-3 (the per-domain baseline's) instead of 1e-4; only
    # BatchNorms and heads fine-tuned (at 1e-3); a 1-epoch warm-up of the BatchNorms and heads;
    # the sharing weight alpha capped at 2; 8 epochs of fine-tuning; each domain reading every
    # channel the union keeps in the union model (no masks: the shared convs compute them
    # anyway), adapted by the fine-tuning.
    "jaccard + finetune 4 + selection": ("jaccard", {**BASE, "finetune_epochs": 4, "validation_fraction": 0.1}),
    "jaccard + finetune 4 at 1e-3": ("jaccard", {**BASE, "finetune_epochs": 4, "finetune_learning_rate": 1e-3}),
    "jaccard + finetune 4 BN + heads at 1e-3": (
        "jaccard",
        {**BASE, "finetune_epochs": 4, "finetune_layers": "batchnorm_heads", "finetune_learning_rate": 1e-3}),
    "jaccard + finetune 4 + warm-up": ("jaccard", {**BASE, "finetune_epochs": 4, "warmup_epochs": 1}),
    "jaccard + finetune 4 + alpha <= 2": ("jaccard", {**BASE, "finetune_epochs": 4, "max_sharing_weight": 2.0}),
    "jaccard + finetune 8": ("jaccard", {**BASE, "finetune_epochs": 8}),
    "jaccard + finetune 4 + whole union": ("jaccard", {**BASE, "finetune_epochs": 4, "whole_union": "true"}),
    # 8 epochs at batch 128 take the steps of 4 at batch 32 (about the same time on 2 cores), at
    # the learning rate that scored best of 2e-4, 4e-4, 8e-4 and 1.6e-3 over seeds 0-2: the main
    # job's default (flags/pocket.cfg), measured beside `none` at budget 1 with the same
    # fine-tuning (the target's reference).
    "jaccard + finetune 8 at batch 128, 8e-4": ("jaccard", {**BASE, **NEW_FINETUNE}),
    "none, budget 1 + finetune 8 at batch 128, 8e-4": ("none", {**BASE, **NEW_FINETUNE, "budget": 1.0}),
}


def measure(args, recipes=RECIPES, run=True):
    """``(seeds, {label: [record]}, missing)``; ``run=False`` only collects recorded runs."""
    seeds = list(range(args.seeds if args.seeds else (1 if args.quick else 3)))
    runs, missing = {label: [] for label in recipes}, []
    for seed in seeds:
        for label, (loss, extra) in recipes.items():
            if run:
                print(f"{label}, budget {extra.get('budget', BUDGET)}, seed {seed}:", flush=True)
                record = pocket_runs.pocket_record(loss, BUDGET, seed, args.quick, args.results_dir, extra=extra)
            else:
                record = pocket_runs.find_record(loss, BUDGET, seed, args.quick, args.results_dir, extra=extra)
            if record is None:
                missing.append(f"{label} seed {seed}")
            else:
                runs[label].append({"seed": seed, **record})
    return seeds, runs, missing


def summarize(runs):
    summary = {}
    for label, items in runs.items():
        if not items:
            continue
        domains = list(items[0]["accuracy"])
        summary[label] = {
            "seeds": len(items),
            "accuracy": {d: common.mean([r["accuracy"][d] for r in items]) for d in domains},
            "accuracy_std": {d: common.std([r["accuracy"][d] for r in items]) for d in domains},
            "mean_accuracy": common.mean([r["mean_accuracy"] for r in items]),
            "mean_accuracy_std": common.std([r["mean_accuracy"] for r in items]),
            "macs_ratio": common.mean([r["macs_ratio"] for r in items]),
            "wall_s": common.mean([r["wall_s"] for r in items]),
        }
    return summary


def markdown(record):
    runs, summary = record["runs"], record["summary"]
    domains = list(next(iter(summary.values()))["accuracy"])
    headers = ["recipe", "seeds", *domains, "mean", "mean before fine-tuning (masked model)", "union MACs / backbone",
               "wall s per run (train, prune, eval)"]
    rows = []
    for label, entry in summary.items():
        walls = "; ".join(
            f"{r['wall_s']:.0f} ({', '.join(f'{v:.0f}' for v in r['timings_s'].values() if v)})" for r in runs[label]
        )
        rows.append([
            f"`{label}`", str(entry["seeds"]),
            *(common.fmt_pm([r["accuracy"][d] for r in runs[label]]) for d in domains),
            common.fmt_pm([r["mean_accuracy"] for r in runs[label]]),
            common.fmt_pm([r["mean_accuracy_masked"] for r in runs[label]]),
            common.fmt_pm([r["macs_ratio"] for r in runs[label]]), walls,
        ])
    lines = [
        f"### Training recipes, pocket benchmark, budget {BUDGET} ({len(record['seeds'])} seed(s), mean ± std)", "",
        common.markdown_table(headers, rows), "",
        "Keras test accuracy (whole test split) of the union-pruned model, fine-tuned where the recipe says so "
        "(before fine-tuning: the masked model after training; for `none` at budget 1, BatchNorm and head "
        "adaptation of the whole backbone); "
        "each recipe is `benchmarks/recipes_base.cfg` (the main job before these defaults) with the flags named. "
        "Wall time per run (stage times in brackets) on a "
        "machine shared with other jobs: compare with care. Runs with the same training share it (fine-tuning "
        "recipes reuse the plain recipe's model, so their train time is that run's).",
    ]
    if record.get("partial"):
        lines += ["", f"**Partial**: {record['partial']}"]
    return "\n".join(lines)


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--seeds", type=int, default=0, help="seeds per recipe (default: 3, quick mode 1)")
    parser.add_argument("--recorded_only", action="store_true",
                        help="run nothing: the table of the runs recorded so far (marked partial)")
    args = parser.parse_args()
    record = common.start_record(NAME, args.quick,
                                 {"budget": BUDGET, "recipes": {k: list(v) for k, v in RECIPES.items()}})
    record["seeds"], record["runs"], missing = measure(args, run=not args.recorded_only)
    if missing:
        record["partial"] = f"runs not recorded yet: {', '.join(missing)}"
    record["summary"] = summarize(record["runs"])
    common.write_results(record, markdown(record), args.results_dir)


if __name__ == "__main__":
    main()

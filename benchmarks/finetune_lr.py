"""Which fine-tuning learning rate data held back from training choose, at the main job's settings.

``benchmarks.recipes`` picked the main job's fine-tuning rate by test accuracy. Here it is
picked as a user would, without the test split: the main job (``flags/pocket.cfg``: ``jaccard``,
β 0.5, 8 fine-tuning epochs at batch 128) with 10 % of each domain's training data held back
(``--validation_fraction=0.1``), trained once per seed, then fine-tuned at each rate of ``RATES``
keeping the epoch that scores best on the held-back data; the rate with the best held-back
accuracy (union model, mean over domains and seeds) wins. Each run is the real chain
``bap-train --stages=train,prune`` (``benchmarks.pocket_runs``: resumable, and the runs of one
seed share its training); the figures are each run's ``pruned/finetune.json``. Test accuracy is
shown beside, never used to choose.

    python -m benchmarks.finetune_lr            # 3 seeds x 4 rates: about 40 minutes on 2 cores
    python -m benchmarks.finetune_lr --quick    # 1 seed, 2 epochs x 30 steps
"""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bap_tf.atomic import atomic_path  # noqa: E402
from benchmarks import common, pocket_runs  # noqa: E402

NAME = "finetune_lr"
LOSS, BUDGET = "jaccard", 0.5
RATES = (2e-4, 4e-4, 8e-4, 1.6e-3)
VALIDATION_FRACTION = 0.1


def run_extra(rate):
    return {"validation_fraction": VALIDATION_FRACTION, "finetune_learning_rate": rate}


def measure(args, rates=RATES, on_row=None):
    """``(seeds, rows)``: one row per (seed, rate), seeds outer; ``on_row(seeds, rows)`` after each."""
    seeds = list(range(args.seeds if args.seeds else (1 if args.quick else 3)))
    rows = []
    for seed in seeds:
        for rate in rates:
            print(f"seed {seed}, fine-tuning rate {rate:g}:", flush=True)
            run = pocket_runs.run_pocket(LOSS, BUDGET, seed, args.quick, stages=("train", "prune"), extra=run_extra(rate))
            union = json.loads((run["workdir"] / "pruned" / "finetune.json").read_text())["union"]
            rows.append({"seed": seed, "rate": rate, "held_back": union["selection_score"],
                         "selected_epoch": union["selected_epoch"],
                         "test": common.mean(list(union["after"].values())), "test_per_domain": union["after"],
                         "prune_s": run["timings"].get("prune")})
            if on_row:
                on_row(seeds, rows)
    return seeds, rows


def summarize(rows):
    """``{"rates": {rate: {held_back, held_back_std, test, test_std, seeds, epochs}}, "chosen": rate}``;
    the rate with the best mean held-back accuracy (among those measured at the most seeds)."""
    rates = {}
    for rate in dict.fromkeys(r["rate"] for r in rows):
        items = [r for r in rows if r["rate"] == rate]
        rates[rate] = {
            "seeds": len(items),
            "held_back": common.mean([r["held_back"] for r in items]),
            "held_back_std": common.std([r["held_back"] for r in items]),
            "test": common.mean([r["test"] for r in items]),
            "test_std": common.std([r["test"] for r in items]),
            "selected_epochs": [r["selected_epoch"] for r in items],
        }
    most = max((entry["seeds"] for entry in rates.values()), default=0)
    complete = {rate: entry for rate, entry in rates.items() if entry["seeds"] == most}
    chosen = max(complete, key=lambda rate: complete[rate]["held_back"]) if complete else None
    return {"rates": rates, "chosen": chosen}


def plot(summary, path):
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    rates = sorted(summary["rates"])
    for key, label in (("held_back", "held-back 10 % of training data (chooses)"), ("test", "test split (shown)")):
        axis.errorbar(rates, [summary["rates"][r][key] for r in rates], marker="o", capsize=3, label=label,
                      yerr=[summary["rates"][r][f"{key}_std"] or 0.0 for r in rates])
    axis.set_xscale("log")
    axis.set_xlabel("fine-tuning learning rate (Adam)")
    axis.set_ylabel("mean accuracy, union model (4 domains)")
    axis.set_title("Pocket benchmark, jaccard β 0.5: fine-tuning rate")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return path


def markdown(record):
    summary, default = record["summary"], record["main_job_rate"]
    rows = [[f"{rate:g}" + (" (main job)" if rate == default else ""), str(entry["seeds"]),
             common.fmt_summary_pm(entry, "held_back"), common.fmt_summary_pm(entry, "test"), ", ".join(map(str, entry["selected_epochs"]))]
            for rate, entry in sorted(summary["rates"].items())]
    chosen = summary["chosen"]
    lines = [
        f"### Fine-tuning rate chosen on held-back data, pocket benchmark ({len(record['seeds'])} seed(s) asked)", "",
        common.markdown_table(["Adam rate", "seeds", "held-back accuracy (chooses)", "test accuracy (shown)",
                               "epoch kept per seed"], rows), "",
        f"The main job (`jaccard`, β 0.5) with {VALIDATION_FRACTION:.0%} of each domain's training data held back; "
        "union model, mean over domains; the epoch kept is the best on the held-back data (0: before fine-tuning).",
        "",
    ]
    if chosen is not None:
        same = "the main job's rate" if chosen == default else f"not the main job's rate ({default:g})"
        lines += [f"Held-back data choose **{chosen:g}**: {same}.", ""]
    lines.append(f"![fine-tuning rate]({record['plot_name']})")
    if record.get("partial"):
        lines += ["", f"**Partial**: {record['partial']}"]
    return "\n".join(lines)


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--seeds", type=int, default=0, help="seeds (default: 3, quick mode 1)")
    args = parser.parse_args()
    settings = {"rates": list(RATES), "run_flags": pocket_runs.run_flags(LOSS, BUDGET, "<seed>", args.quick, run_extra("<rate>"))}
    record = common.start_record(NAME, args.quick, settings)
    record["main_job_rate"] = pocket_runs.effective_flags(pocket_runs.run_flags(LOSS, BUDGET, 0, args.quick))["finetune_learning_rate"]

    def write(seeds, rows):
        done = len(rows) == len(seeds) * len(RATES)
        record.update(seeds=seeds, rows=rows, summary=summarize(rows))
        record.pop("partial", None)
        if not done:
            record["partial"] = f"{len(rows)} of {len(seeds) * len(RATES)} runs"
        record["plot_name"] = plot(record["summary"], common.results_path(NAME, args.quick, "png", args.results_dir)).name
        common.write_results(record, markdown(record), args.results_dir)

    measure(args, on_row=write)


if __name__ == "__main__":
    main()

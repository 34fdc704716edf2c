"""Sharing losses on the pocket benchmark at budget 0.5: none (BA² trained jointly) vs union vs
intersection vs jaccard.

Each run is the real chain ``bap-train --stages=train,prune,eval`` (``benchmarks.pocket_runs``);
the figures come from its ``report.json``: mean test accuracy of the union-pruned model, each
domain's kept fraction of the switchable MACs, and the union-pruned multi-domain model's params
and MACs relative to the single-domain backbone (shared weights once + every domain's BN, head
and 1-bit masks).

Target: with a sharing loss, pruned MACs <= 0.55 x backbone while the mean accuracy stays
within 2 points of ``none``.

    python -m benchmarks.sharing           # 3 seeds, library defaults (8 epochs): ~1-2 h on 2 cores
    python -m benchmarks.sharing --quick   # 1 seed, 2 epochs x 30 steps: ~10 min on 2 cores
"""

from benchmarks import common, pocket_runs

NAME = "sharing"
LOSSES = ("none", "union", "intersection", "jaccard")
BUDGET = 0.5


def measure(args):
    seeds = list(range(args.seeds if args.seeds else (1 if args.quick else 3)))
    runs = {loss: [] for loss in LOSSES}
    for loss in LOSSES:
        for seed in seeds:
            print(f"{loss}, budget {BUDGET}, seed {seed}:", flush=True)
            run = pocket_runs.run_pocket(loss, BUDGET, seed, args.quick)
            report = run["report"]
            runs[loss].append({
                "seed": seed,
                "workdir": str(run["workdir"].relative_to(common.ROOT)),
                "mean_accuracy": report["mean_accuracy_pruned"],
                "mean_accuracy_masked": sum(d["accuracy_masked"] for d in report["domains"].values()) / len(report["domains"]),
                "accuracy": {d: v["accuracy_pruned"] for d, v in report["domains"].items()},
                "kept_fraction": {d: v["kept_fraction"] for d, v in report["domains"].items()},
                "union_fraction": report["union_fraction"],
                "params_ratio": report["pruned"]["params_ratio"],
                "macs_ratio": report["pruned"]["macs_ratio"],
                "s_score": report["s_score"],
                "train_s": run["timings"].get("train"),
                "flags": run["flags"],
                "effective_flags": run["effective_flags"],
                "config": run["config"],
            })
    return seeds, runs


def summarize(runs):
    summary = {}
    for loss, items in runs.items():
        domains = list(items[0]["kept_fraction"])
        summary[loss] = {
            "mean_accuracy": common.mean([r["mean_accuracy"] for r in items]),
            "mean_accuracy_std": common.std([r["mean_accuracy"] for r in items]),
            "kept_fraction": {d: common.mean([r["kept_fraction"][d] for r in items]) for d in domains},
            "union_fraction": common.mean([r["union_fraction"] for r in items]),
            "params_ratio": common.mean([r["params_ratio"] for r in items]),
            "macs_ratio": common.mean([r["macs_ratio"] for r in items]),
            "macs_ratio_std": common.std([r["macs_ratio"] for r in items]),
        }
    reference = summary["none"]["mean_accuracy"]
    for loss, entry in summary.items():
        entry["accuracy_drop_vs_none"] = reference - entry["mean_accuracy"]
        entry["meets_macs"] = entry["macs_ratio"] <= pocket_runs.MACS_TARGET
        entry["meets_accuracy"] = entry["accuracy_drop_vs_none"] <= pocket_runs.ACCURACY_TOLERANCE
        entry["meets_target"] = loss != "none" and entry["meets_macs"] and entry["meets_accuracy"]
    return summary


def markdown(record):
    runs, summary = record["runs"], record["summary"]
    domains = list(next(iter(summary.values()))["kept_fraction"])
    rows = []
    for loss in LOSSES:
        s = runs[loss]
        entry = summary[loss]
        rows.append([
            f"`{loss}`",
            common.fmt_pm([r["mean_accuracy"] for r in s]),
            common.fmt(-entry["accuracy_drop_vs_none"] * 100, "+.1f") if loss != "none" else "–",
            " / ".join(common.fmt(entry["kept_fraction"][d], ".2f") for d in domains),
            common.fmt(entry["union_fraction"], ".2f"),
            common.fmt_pm([r["params_ratio"] for r in s]),
            common.fmt_pm([r["macs_ratio"] for r in s]),
            "–" if loss == "none" else common.verdict(entry["meets_target"]),
        ])
    seeds = len(record["settings"]["seeds"])
    met = [loss for loss in LOSSES if summary[loss]["meets_target"]]
    text = [
        f"## Sharing losses, pocket benchmark, budget {BUDGET:g} ({seeds} seed{'s' if seeds > 1 else ''}, mean ± std)",
        "",
        common.markdown_table(
            ["sharing loss", "mean accuracy", "Δ vs none (points)", f"kept fraction ({' / '.join(domains)})",
             "union keeps", "params / backbone", "MACs / backbone", "target"],
            rows,
        ),
        "",
        f"Target: pruned MACs ≤ {pocket_runs.MACS_TARGET} × backbone with mean accuracy within "
        f"{pocket_runs.ACCURACY_TOLERANCE * 100:g} points of `none`: "
        + (f"{common.verdict(True)} by {', '.join(f'`{m}`' for m in met)}." if met else f"{common.verdict(False)} by every sharing loss."),
        "",
        "Mean accuracy: the union-pruned model's test accuracy averaged over the domains. "
        "*kept fraction*: each domain's share of the switchable MACs (budget "
        f"{BUDGET:g}); *union keeps*: the share that survives pruning. Params and MACs are the union-pruned "
        "multi-domain model's (shared weights once, every domain's BatchNorms, head and 1-bit masks) over the "
        "single-domain backbone's, stem and heads included.",
    ]
    return "\n".join(text)


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--seeds", type=int, default=0, help="number of seeds (default: 3, quick: 1)")
    args = parser.parse_args()
    seeds = list(range(args.seeds if args.seeds else (1 if args.quick else 3)))
    settings = {
        "dataset": "pocket", "budget": BUDGET, "losses": list(LOSSES), "seeds": seeds,
        "run_flags": pocket_runs.run_flags("<loss>", BUDGET, "<seed>", args.quick),
        "stages": "train,prune,eval",
        "runs_dir": str(pocket_runs.RUNS.relative_to(common.ROOT)),
    }
    record = common.start_record(NAME, args.quick, settings)
    _, runs = measure(args)
    record["runs"] = runs
    record["summary"] = summarize(runs)
    record["targets"] = {
        "macs_ratio_max": pocket_runs.MACS_TARGET,
        "accuracy_drop_max": pocket_runs.ACCURACY_TOLERANCE,
        "met_by": [loss for loss in LOSSES if record["summary"][loss]["meets_target"]],
    }
    record["best_sharing_loss"] = pocket_runs.best_sharing_loss(record)
    text = markdown(record)
    common.write_results(record, text, args.results_dir)
    print(text)


if __name__ == "__main__":
    main()

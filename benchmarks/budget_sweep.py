"""Budget sweep on the pocket benchmark: budgets 1.0 / 0.75 / 0.5 / 0.25 with the best sharing loss.

Each budget is the real chain ``bap-train --stages=train,prune,eval`` (``benchmarks.pocket_runs``;
the budget-0.5 run is the sharing benchmark's, reused). From each ``report.json``: mean test
accuracy of the union-pruned model, the Visual Decathlon S-score (against the feature-extractor
reference measured in the run), the efficiency (S over the geometric mean of the params and MACs
ratios), and the union-pruned model's params and MACs relative to the backbone. Draws
``results/budget_sweep[-quick].png``: accuracy vs MACs.

The sharing loss is the one ``pocket_runs.best_sharing_loss`` picks from the sharing benchmark's
results of the same mode (``--sharing_loss`` overrides).

    python -m benchmarks.budget_sweep           # library defaults (8 epochs), seed 0: ~30 min on 2 cores
    python -m benchmarks.budget_sweep --quick   # 2 epochs x 30 steps: ~8 min on 2 cores
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bap_tf.report import save_accuracy_vs_cost  # noqa: E402
from benchmarks import common, pocket_runs  # noqa: E402

NAME = "budget_sweep"
BUDGETS = (1.0, 0.75, 0.5, 0.25)


def measure(loss, seeds, quick):
    rows = []
    for budget in BUDGETS:
        for seed in seeds:
            print(f"{loss}, budget {budget}, seed {seed}:", flush=True)
            run = pocket_runs.run_pocket(loss, budget, seed, quick)
            report = run["report"]
            rows.append({
                "budget": budget,
                "seed": seed,
                "workdir": str(run["workdir"].relative_to(common.ROOT)),
                "mean_accuracy": report["mean_accuracy_pruned"],
                "accuracy": {d: v["accuracy_pruned"] for d, v in report["domains"].items()},
                "kept_fraction": {d: v["kept_fraction"] for d, v in report["domains"].items()},
                "domain_macs_ratio": {d: v["macs_ratio"] for d, v in report["domains"].items()},
                "union_fraction": report["union_fraction"],
                "s_score": report["s_score"],
                "s_score_max": report["s_score_max"],
                "efficiency": report["efficiency"],
                "params_ratio": report["pruned"]["params_ratio"],
                "macs_ratio": report["pruned"]["macs_ratio"],
                "params": report["pruned"]["params"],
                "macs": report["pruned"]["macs"],
                "backbone": report["backbone"],
                "reference_errors": report["reference_errors"],
                "s_score_reference": report["s_score_reference"],
                "effective_flags": run["effective_flags"],
                "config": run["config"],
            })
    return rows


def by_budget(rows):
    """Seed means per budget."""
    table = {}
    for budget in BUDGETS:
        items = [r for r in rows if r["budget"] == budget]
        table[budget] = {key: common.mean([r[key] for r in items]) for key in
                         ("mean_accuracy", "s_score", "efficiency", "params_ratio", "macs_ratio", "union_fraction",
                          "params", "macs")}
        table[budget]["seeds"] = len(items)
    return table


def plot(rows, loss, path):
    figure, axis = plt.subplots(figsize=(6.0, 4.2))
    first = rows[0]
    domains = list(first["accuracy"])
    reference = {d: 1.0 - first["reference_errors"][d] for d in domains}
    for index, domain in enumerate(domains):
        colour = f"C{index}"
        points = sorted((r["domain_macs_ratio"][domain], r["accuracy"][domain]) for r in rows)
        axis.plot(*zip(*points), color=colour, alpha=0.35, marker=".", label=f"{domain} (own model)")
        axis.scatter([1.0], [reference[domain]], color=colour, marker="x")
    means = by_budget(rows)
    xs = [means[b]["macs_ratio"] for b in BUDGETS]
    ys = [means[b]["mean_accuracy"] for b in BUDGETS]
    axis.plot(xs, ys, color="black", marker="o", linewidth=2, label="union-pruned model, mean")
    for budget, x, y in zip(BUDGETS, xs, ys):
        axis.annotate(f"β={budget:g}", (x, y), textcoords="offset points", xytext=(4, -12), fontsize=8)
    save_accuracy_vs_cost(figure, axis, path, xlabel="MACs relative to the backbone",
                          ylabel="test accuracy (x: feature-extractor reference)",
                          title=f"Pocket benchmark: accuracy vs MACs, {loss} sharing", legend_loc="lower right")
    return path


def markdown(record):
    means = record["by_budget"]
    rows = [[
        f"{budget:g}",
        common.fmt(means[str(budget)]["mean_accuracy"]),
        common.fmt(means[str(budget)]["s_score"], ".0f"),
        common.fmt(means[str(budget)]["efficiency"], ".0f"),
        common.fmt(means[str(budget)]["union_fraction"], ".2f"),
        f"{means[str(budget)]['params'] / 1e3:.1f}k",
        common.fmt(means[str(budget)]["params_ratio"]),
        f"{means[str(budget)]['macs'] / 1e6:.2f}M",
        common.fmt(means[str(budget)]["macs_ratio"]),
    ] for budget in BUDGETS]
    first = record["runs"][0]
    backbone = first["backbone"]
    seeds = len(record["settings"]["seeds"])
    domains = list(first["accuracy"])
    return "\n".join([
        f"## Budget sweep, pocket benchmark, `{record['sharing_loss']}` sharing ({seeds} seed{'s' if seeds > 1 else ''})",
        "",
        common.markdown_table(
            ["budget β", "mean accuracy", "S-score", "efficiency", "union keeps", "params", "params / backbone",
             "MACs", "MACs / backbone"],
            rows,
        ),
        "",
        f"Sharing loss `{record['sharing_loss']}`: {record['sharing_loss_reason']}. Backbone: "
        f"{backbone['params'] / 1e3:.1f}k params, {backbone['macs'] / 1e6:.2f}M MACs. S-score: of at most "
        f"{first['s_score_max']:.0f} ({len(domains)} domains), against the feature-extractor reference (the frozen "
        "backbone with a logistic-regression head per domain, measured once for all runs; accuracies "
        + ", ".join(f"{d} {1 - first['reference_errors'][d]:.3f}" for d in domains)
        + "); efficiency = S / √(params ratio × MACs ratio). "
        f"Plot: `{record['plot']}`.",
    ])


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds per budget (default 1)")
    args, loss, reason = pocket_runs.parse_with_sharing_loss(parser)
    seeds = list(range(args.seeds))
    settings = {"dataset": "pocket", "budgets": list(BUDGETS), "sharing_loss": loss, "seeds": seeds,
                "run_flags": pocket_runs.run_flags(loss, "<budget>", "<seed>", args.quick),
                "stages": "train,prune,eval", "runs_dir": str(pocket_runs.RUNS.relative_to(common.ROOT))}
    record = common.start_record(NAME, args.quick, settings)
    record["sharing_loss"], record["sharing_loss_reason"] = loss, reason
    rows = measure(loss, seeds, args.quick)
    record["runs"] = rows
    record["by_budget"] = {str(b): v for b, v in by_budget(rows).items()}
    path = plot(rows, loss, common.results_path(NAME, args.quick, "png", args.results_dir))
    record["plot"] = str(path.relative_to(common.ROOT)) if path.is_relative_to(common.ROOT) else str(path)
    text = markdown(record)
    common.write_results(record, text, args.results_dir)
    print(text)


if __name__ == "__main__":
    main()

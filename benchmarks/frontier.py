"""The accuracy-vs-cost frontier on the pocket benchmark: every sharing loss at every budget.

``none`` (BA² trained jointly), ``union``, ``intersection`` and ``jaccard`` at budgets β 1 /
0.75 / 0.5 / 0.25, 3 seeds each, with the main job's flags (``flags/pocket.cfg``: its epochs and
its fine-tuning, 8 epochs at batch 128, Adam 8e-4); each run is the real chain ``bap-train
--stages=train,prune,eval`` (``benchmarks.pocket_runs``), recorded as it ends in
``results/pocket_runs/<mode>/<run>.json``, so the benchmark resumes where it was killed and
shares its runs with the other benchmarks (the main job's recipe and ``none`` at β 1 of the
recipes benchmark). Seeds go in the outer loop: a partial frontier has every point at the first
seeds; ``--losses`` picks which losses (and in which order) run.

``--fine_tuning=before`` gives the frontier with the fine-tuning the main job had before
``benchmarks.recipes`` chose the current one (``benchmarks/recipes_base.cfg`` + 4 epochs at the
training batch of 32, Adam 1e-4), written as ``frontier_finetune_before``; the main job's current
fine-tuning is drawn on it as stars.

Plots mean test accuracy (union-pruned model, Keras, mean over domains and seeds) against the
union-pruned model's MACs over the backbone's, one line per sharing loss and one marker per budget
β, with the baselines of the same data, epochs and seeds as horizontal lines
(``pocket_runs.shared_baselines``, measured once per seed): the feature extractor (frozen backbone
+ logistic regression per domain) and per-domain fine-tuning of the whole backbone. The y axis
fits what is drawn; ``--replot`` redraws the plot from the results JSON alone.

Targets: the best sharing loss is above ``none`` at every union-MACs level both reach; and at
β 0.5, a sharing loss prunes to at most 0.55 of the backbone's MACs with mean accuracy within 2
points of ``none`` at the same budget.

    python -m benchmarks.frontier            # 48 runs, the main job's epochs: hours on 2 cores
    python -m benchmarks.frontier --losses=none,jaccard   # the default loss against none first
    python -m benchmarks.frontier --quick    # 1 seed, 2 epochs x 30 steps
    python -m benchmarks.frontier --replot   # only the PNG again, from results/frontier.json
"""

import argparse
import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from bap_tf.atomic import atomic_path  # noqa: E402
from bap_tf.config import SHARING_LOSSES  # noqa: E402
from benchmarks import common, pocket_runs, recipes  # noqa: E402

LOSSES = SHARING_LOSSES  # in this order on every page and plot
# --fine_tuning -> (results name, flags over the main job's). ``before``: the main job before
# benchmarks.recipes changed its defaults (recipes_base.cfg) with 4 epochs of fine-tuning.
FINE_TUNINGS = {
    "main_job": ("frontier", {}),
    "before": ("frontier_finetune_before", {"flagfile": "benchmarks/recipes_base.cfg", "finetune_epochs": 4}),
}
# The main job's fine-tuning now (benchmarks.recipes' runs), drawn on the ``before`` frontier.
CURRENT = {
    "main job now (jaccard β 0.5, fine-tuning 8 epochs at batch 128, 8e-4)": "jaccard + finetune 8 at batch 128, 8e-4",
    "none β 1, the same fine-tuning": "none, budget 1 + finetune 8 at batch 128, 8e-4",
}
BUDGETS = (1.0, 0.75, 0.5, 0.25)
# At SHARING_BUDGET, sharing must prune to MACS_TARGET x backbone within ACCURACY_TOLERANCE of none.
SHARING_BUDGET, MACS_TARGET, ACCURACY_TOLERANCE = 0.5, 0.55, 0.02


def measure(args, losses=LOSSES, budgets=BUDGETS, run=True, extra=None):
    """``(seeds, [record])`` of every (seed, loss, budget) run of the main job's flags with
    ``extra``, seeds outer. ``run=False`` collects only the runs already recorded (a partial
    frontier) and lists the others."""
    seeds = list(range(args.seeds if args.seeds else (1 if args.quick else 3)))
    rows, missing = [], []
    for seed in seeds:
        for loss in losses:
            for budget in budgets:
                if run:
                    print(f"{loss}, budget {budget:g}, seed {seed}:", flush=True)
                    record = pocket_runs.pocket_record(loss, budget, seed, args.quick, args.results_dir, extra=extra)
                else:
                    record = pocket_runs.find_record(loss, budget, seed, args.quick, args.results_dir, extra=extra)
                if record is None:
                    missing.append(f"{loss} β {budget:g} seed {seed}")
                else:
                    rows.append({"sharing_loss": loss, "budget": budget, "seed": seed, **record})
    return seeds, rows, missing


def current_points(args, seeds):
    """``recipes.summarize`` of the ``CURRENT`` recipes recorded at ``seeds`` (none run here)."""
    runs = {}
    for name, label in CURRENT.items():
        loss, extra = recipes.RECIPES[label]
        items = [pocket_runs.find_record(loss, recipes.BUDGET, seed, args.quick, args.results_dir, extra=extra)
                 for seed in seeds]
        runs[name] = [r for r in items if r]
    return recipes.summarize(runs)


def points(rows):
    """``{loss: [{budget, seeds, mean_accuracy, std, macs_ratio}]}`` sorted by MACs."""
    result = {}
    for loss in dict.fromkeys(r["sharing_loss"] for r in rows):
        entries = []
        for budget in dict.fromkeys(r["budget"] for r in rows if r["sharing_loss"] == loss):
            items = [r for r in rows if r["sharing_loss"] == loss and r["budget"] == budget]
            entries.append({
                "budget": budget, "seeds": len(items),
                "mean_accuracy": common.mean([r["mean_accuracy"] for r in items]),
                "mean_accuracy_std": common.std([r["mean_accuracy"] for r in items]),
                "accuracy": {d: common.mean([r["accuracy"][d] for r in items]) for d in items[0]["accuracy"]},
                "macs_ratio": common.mean([r["macs_ratio"] for r in items]),
                "macs_ratio_std": common.std([r["macs_ratio"] for r in items]),
            })
        result[loss] = sorted(entries, key=lambda e: e["macs_ratio"])
    return result


def _interpolate(curve, macs):
    xs = [p["macs_ratio"] for p in curve]
    return float(np.interp(macs, xs, [p["mean_accuracy"] for p in curve]))


def compare_with_none(frontier):
    """Per sharing loss: its accuracy minus ``none``'s at every union-MACs level both curves
    reach (the MACs of either curve's points inside the overlap, each curve read piecewise
    linearly); ``above`` is True when every difference is > 0. ``None`` without overlap."""
    if "none" not in frontier:
        return {}
    base = frontier["none"]
    result = {}
    for loss, curve in frontier.items():
        if loss == "none":
            continue
        low = max(curve[0]["macs_ratio"], base[0]["macs_ratio"])
        high = min(curve[-1]["macs_ratio"], base[-1]["macs_ratio"])
        levels = sorted({p["macs_ratio"] for p in curve + base if low <= p["macs_ratio"] <= high})
        if not levels:
            result[loss] = None
            continue
        gaps = [_interpolate(curve, m) - _interpolate(base, m) for m in levels]
        result[loss] = {"macs_levels": levels, "accuracy_gap": gaps, "min_gap": min(gaps), "above": min(gaps) > 0}
    return result


def sharing_at_budget(frontier, budget=SHARING_BUDGET):
    """Per sharing loss at ``budget``: union MACs, accuracy minus ``none``'s at the same budget,
    and whether it meets ``MACS_TARGET`` within ``ACCURACY_TOLERANCE``. ``{}`` until ``none``
    has a point there."""
    at = {loss: p for loss, curve in frontier.items() for p in curve if p["budget"] == budget}
    if "none" not in at:
        return {}
    result = {}
    for loss, p in at.items():
        if loss != "none":
            gap = p["mean_accuracy"] - at["none"]["mean_accuracy"]
            result[loss] = {"macs_ratio": p["macs_ratio"], "accuracy_gap": gap,
                            "met": p["macs_ratio"] <= MACS_TARGET and gap >= -ACCURACY_TOLERANCE}
    return result


def baselines(shared):
    """``{kind: mean accuracy}`` of the reference models over domains and seeds, from
    ``pocket_runs.shared_baselines`` records (same data, epochs and seeds as the runs)."""
    result = {}
    for kind in ("feature_extractor", "finetune"):
        values = [np.mean([e["accuracy"] for e in record[kind].values()]) for record in shared if record.get(kind)]
        if values:
            result[kind] = float(np.mean(values))
    return result


# One marker per budget β (the legend says which), so that no β text crowds the points: at
# small budgets the sharing losses' points lie within a few pixels of each other.
BUDGET_MARKERS = {1.0: "o", 0.75: "s", 0.5: "^", 0.25: "D"}
Y_MARGIN = 0.05  # of the span of what the plot draws, above and below


def _marker(budget):
    return BUDGET_MARKERS.get(budget, "X")


def y_limits(frontier, references, current=()):
    """The y axis fitted to what the plot draws (every point with its error bar, the stars and
    the baselines' lines), ``Y_MARGIN`` of the span above and below, inside [0, 1.02]."""
    drawn = [p for curve in frontier.values() for p in curve] + list(dict(current).values())
    values = [p["mean_accuracy"] + sign * (p["mean_accuracy_std"] or 0.0) for p in drawn for sign in (-1, 1)]
    values += list(references.values())
    if not values:
        return 0.0, 1.02
    low, high = min(values), max(values)
    margin = max(Y_MARGIN * (high - low), 0.01)
    return max(0.0, low - margin), min(1.02, high + margin)


def plot(frontier, references, path, current=()):
    """The frontier at ``path`` (PNG, atomically): a line per sharing loss, a marker per budget
    β, stars for ``current``, grey lines for the baselines; y fitted to the data (``y_limits``)."""
    figure, axis = plt.subplots(figsize=(8.0, 4.8), layout="constrained")  # room for the legends
    for loss, curve in frontier.items():
        colour = f"C{LOSSES.index(loss)}"  # one colour per loss on every page
        axis.errorbar([p["macs_ratio"] for p in curve], [p["mean_accuracy"] for p in curve],
                      yerr=[p["mean_accuracy_std"] or 0.0 for p in curve], color=colour, capsize=3, label=loss)
        for p in curve:
            axis.plot([p["macs_ratio"]], [p["mean_accuracy"]], color=colour, marker=_marker(p["budget"]),
                      markersize=6, linestyle="none")
    for index, (name, p) in enumerate(dict(current).items(), start=len(LOSSES)):
        axis.errorbar([p["macs_ratio"]], [p["mean_accuracy"]], yerr=[p["mean_accuracy_std"] or 0.0], color=f"C{index}",
                      marker="*", markersize=11, linestyle="none", capsize=3, label=name)
    styles = {"feature_extractor": ":", "finetune": "--"}
    labels = {"feature_extractor": "feature extractor (frozen backbone)",
              "finetune": "per-domain fine-tuning (D backbones)"}
    for kind, value in references.items():
        axis.axhline(value, color="grey", linestyle=styles.get(kind, "-."), linewidth=1, label=labels.get(kind, kind))
    # Both legends right of the axes (constrained layout makes room), long star labels wrapped.
    handles, names = axis.get_legend_handles_labels()
    figure.legend(handles, [textwrap.fill(n, 34) for n in names], fontsize=7, loc="outside right upper")
    budgets = sorted({p["budget"] for curve in frontier.values() for p in curve}, reverse=True)
    handles = [Line2D([], [], color="black", marker=_marker(b), linestyle="none", markersize=6) for b in budgets]
    figure.legend(handles, [f"β = {b:g}" for b in budgets], fontsize=7, title="budget", title_fontsize=7,
                  loc="outside right lower")
    axis.set_xlabel("union-pruned MACs relative to the backbone")
    axis.set_ylabel("mean test accuracy (4 domains)")
    axis.set_xlim(0, 1.1)  # the x frame of every accuracy-vs-cost plot (bap_tf.run.report)
    axis.set_ylim(*y_limits(frontier, references, current))
    axis.grid(alpha=0.3)
    axis.set_title("Pocket benchmark: accuracy vs MACs")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return Path(path)


def markdown(record):
    frontier, comparison = record["frontier"], record["comparison"]
    domains = list(next(iter(frontier.values()))[0]["accuracy"])
    rows = []
    for loss, curve in frontier.items():
        for p in sorted(curve, key=lambda e: -e["budget"]):
            rows.append([f"`{loss}`", f"{p['budget']:g}", str(p["seeds"]),
                         *(common.fmt(p["accuracy"][d]) for d in domains),
                         common.fmt_summary_pm(p, "mean_accuracy"), common.fmt_summary_pm(p, "macs_ratio")])
    lines = [
        f"### Accuracy-vs-MACs frontier, pocket benchmark ({len(record['seeds'])} seed(s) asked)", "",
        common.markdown_table(
            ["sharing loss", "budget β", "seeds", *domains, "mean accuracy", "union MACs / backbone"], rows),
        "",
    ]
    if record["baselines"]:
        lines += ["Baselines (mean accuracy, same data): " + ", ".join(
            f"{kind.replace('_', ' ')} {value:.3f}" for kind, value in record["baselines"].items()) + ".", ""]
    tuning = record.get("fine_tuning")
    if tuning:
        batch = tuning["finetune_batch_size"]
        lines += [f"Every run fine-tunes its reduced models {tuning['finetune_epochs']} epochs at "
                  f"{f'batch {batch} per domain' if batch else 'the training batch'}, "
                  f"Adam {tuning['finetune_learning_rate']:g}.", ""]
    if record.get("current"):
        lines += ["With the main job's fine-tuning now (stars on the plot): " + "; ".join(
                      f"{name} {common.fmt_summary_pm(p, 'mean_accuracy')} at MACs {common.fmt(p['macs_ratio'])} "
                      f"({p['seeds']} seed(s))"
                      for name, p in record["current"].items()) + ".", ""]
    verdicts = []
    for loss, entry in comparison.items():
        if entry is None:
            verdicts.append(f"`{loss}`: no MACs level in common with `none`")
        else:
            gaps = ", ".join(f"{gap * 100:+.1f} at {macs:.2f}"
                             for macs, gap in zip(entry["macs_levels"], entry["accuracy_gap"]))
            verdicts.append(f"`{loss}` {'above' if entry['above'] else 'not above'} `none` (points at MACs: {gaps})")
    compared = [entry for entry in comparison.values() if entry]
    verdict = common.verdict(any(entry["above"] for entry in compared)) if compared else "**not measured yet**"
    lines += [f"Target: the best sharing loss above `none` at every union-MACs level both reach: {verdict} "
              f"({'; '.join(verdicts) or 'no comparison yet'}).", ""]
    sharing = record.get("sharing", {})
    if sharing:
        met = [loss for loss, entry in sharing.items() if entry["met"]]
        figures = "; ".join(f"`{loss}` MACs {entry['macs_ratio']:.3f}, {entry['accuracy_gap'] * 100:+.1f} points"
                            for loss, entry in sharing.items())
        lines += [f"Target at β {SHARING_BUDGET:g}: union MACs ≤ {MACS_TARGET:g} × backbone with mean accuracy within "
                  f"{ACCURACY_TOLERANCE * 100:g} points of `none`: {common.verdict(bool(met))} ({figures}).", ""]
    lines += [f"![frontier]({record['plot_name']})"]
    if record.get("partial"):
        lines += ["", f"**Partial**: {record['partial']}"]
    return "\n".join(lines)


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--seeds", type=int, default=0, help="seeds per point (default: 3, quick mode 1)")
    parser.add_argument("--recorded_only", action="store_true",
                        help="run nothing: the table and plot of the runs recorded so far (marked partial)")
    parser.add_argument("--fine_tuning", choices=sorted(FINE_TUNINGS), default="main_job",
                        help="main_job: the main job's flags; before: its fine-tuning before benchmarks.recipes")
    parser.add_argument("--losses", type=_losses, default=LOSSES, help="comma-separated, in the order to run")
    parser.add_argument("--replot", action="store_true",
                        help="run nothing, change no record: redraw the PNG from the results JSON as it is")
    args = parser.parse_args()
    name, extra = FINE_TUNINGS[args.fine_tuning]
    if args.replot:
        print(replot(common.results_path(name, args.quick, "json", args.results_dir)))
        return
    settings = {"losses": list(args.losses), "budgets": list(BUDGETS),
                "run_flags": pocket_runs.run_flags("<loss>", "<budget>", "<seed>", args.quick, extra)}
    record = common.start_record(name, args.quick, settings, module="frontier")
    record["fine_tuning"] = fine_tuning(args.quick, extra)
    record["seeds"], record["runs"], missing = measure(args, args.losses, run=not args.recorded_only, extra=extra)
    if extra:
        record["current"] = current_points(args, record["seeds"])
    shared = (pocket_runs.shared_baselines(seed, args.quick, measure=not args.recorded_only)
              for seed in record["seeds"])
    record["shared_baselines"] = [b for b in shared if b]
    if missing:
        record["partial"] = (f"{len(record['runs'])} of {len(record['runs']) + len(missing)} runs recorded; "
                             f"missing: {', '.join(missing)}")
    if record["runs"]:
        summarize_into(record, common.results_path(name, args.quick, "png", args.results_dir))
        common.write_results(record, markdown(record), args.results_dir)


def fine_tuning(quick, extra):
    """The fine-tuning flags every run of the frontier has (they vary neither with loss nor budget)."""
    effective = pocket_runs.effective_flags(pocket_runs.run_flags("none", 1.0, 0, quick, extra))
    return {name: effective[name] for name in ("finetune_epochs", "finetune_batch_size", "finetune_learning_rate")}


def _losses(text):
    losses = tuple(dict.fromkeys(loss.strip() for loss in text.split(",") if loss.strip()))
    unknown = [loss for loss in losses if loss not in LOSSES]
    if unknown or not losses:
        raise argparse.ArgumentTypeError(f"--losses={text!r}: expected a comma-separated subset of {', '.join(LOSSES)}")
    return losses


def replot(json_path):
    """Redraws the plot of a written results file (its ``plot_name``, beside it) from the
    frontier, baselines and stars it recorded; returns the PNG's path."""
    json_path = Path(json_path)
    record = json.loads(json_path.read_text())
    path = json_path.parent / record["plot_name"]
    return plot(record["frontier"], record["baselines"], path, record.get("current", {}))


def summarize_into(record, plot_path):
    """Adds the frontier, the comparison with ``none`` and the baselines to ``record`` and
    draws the plot at ``plot_path``."""
    record["frontier"] = points(record["runs"])
    record["comparison"] = compare_with_none(record["frontier"])
    record["sharing"] = sharing_at_budget(record["frontier"])
    record["baselines"] = baselines(record.get("shared_baselines", []))
    record["plot_name"] = plot(record["frontier"], record["baselines"], plot_path, record.get("current", {})).name


if __name__ == "__main__":
    main()

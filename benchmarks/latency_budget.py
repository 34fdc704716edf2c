"""Training to a latency budget: does each domain's exported model run in the time it was given?

``--budget_metric=latency`` prices each domain's kept channels with a latency table measured on
the target; the budget is a fraction of the whole backbone's latency on it. This benchmark
measures the table of each shape here (``bap-latency-table``, 1 thread, with the whole backbone
as reference), then runs the real chain ``bap-train --stages=train,prune,export,eval`` (child
processes) at each budget of ``BUDGETS``, and one above the shape's floor (``above_floor``), and
reads ``report.json``: per domain the table's prediction, its MACs and its accuracy. The measured
latency comes from a timing pass after every run is done (``time_signatures``): each run's
Android signatures and its unpruned backbone, LiteRT, timed in alternating rounds, with nothing
else of the benchmark running. The eval stage times them too, but while other runs train on the
same cores; such load slows a pruned model more than the backbone (width64 at 0.5 once measured
0.67-0.69 in the chain and 0.47-0.48 alone), so the page keeps the eval stage's figure only in
the JSON. The MACs budget at the same fractions (``--android_layout=per_domain``, so that
each signature is the domain's own pruned model, as under a latency budget) shows what a
budget in MACs buys in time. Targets: every domain's exported model measures within
±``TOLERANCE`` of its budget; at equal measured latency, the latency-budget model is at least
as accurate as the MACs-budget one (``equal_latency``: per seed, the MACs runs' accuracy
interpolated at the latency model's measured latency; the pocket shape runs 3 seeds). A
budget the table cannot reach (every switch off costs more) is refused by the command before
training: it is recorded as infeasible with the floor the command names.

Shapes (``SHAPES``): ``pocket``, the main job's (``flags/pocket.cfg``: the shipped ResNet-26
width 16, 32 px) with shortened training, so its accuracies are indicative only, and a table in
steps of 8 channels: at width 16 the avx512 tile (32) leaves one output count per stage-1 conv,
while the measured cells get faster with the input count well below a tile; ``width64``,
ResNet-26 width 64 at 64 px with random weights on the pocket data, which checks the latency
mechanism, not accuracy. Both pass the shared S-score reference (``pocket_runs``) so that no
run measures a feature extractor.

    python -m benchmarks.latency_budget          # 2 tables, 14 runs: about an hour on 2 busy cores
    python -m benchmarks.latency_budget --quick  # a few steps per run, tables timed briefly

Tables and runs are kept in ``runs/benchmarks/<mode>/latency_budget/``: a rerun reuses the tables
and skips every run that finished (or was refused) with the same flags and table.
"""

import hashlib
import json
import re
import shutil
import subprocess
import sys

from benchmarks import common, pocket_runs

NAME = "latency_budget"
BUDGETS = (0.5, 0.25)
TOLERANCE = 0.10
STAGES = ("train", "prune", "export", "eval")
_COMMON = {"finetune_epochs": 0, "distill_weight": 0, "quantize": "float32", "baselines": "false", "seed": 0}
SHAPES = {
    "pocket": {
        "title": "pocket: the shipped ResNet-26 width 16, 32 px (flags/pocket.cfg)",
        "table": {"backbone": "resnet26", "width": 16, "image_size": 32, "step": 8},
        "flags": {**_COMMON, "epochs": 2, "steps_per_epoch": 60, "eval_examples": 200},
        "quick": {"epochs": 1, "steps_per_epoch": 3, "eval_examples": 16},
        "metrics": ("latency", "macs"),
        # Budgets beyond BUDGETS, for a shape whose floor refuses them (none needed now).
        "above_floor": (),
        # Seeds of every run (quick mode: the first): the accuracy at equal latency is compared
        # per seed (``equal_latency``).
        "seeds": (0, 1, 2),
    },
    "width64": {
        "title": "width64: ResNet-26 width 64, 64 px, random weights",
        "table": {"backbone": "resnet26", "width": 64, "image_size": 64, "target": "avx512"},
        "flags": {**_COMMON, "pretrained": "none", "width": 64, "image_size": 64, "epochs": 1,
                  "steps_per_epoch": 20, "batch_size": 8, "eval_examples": 50},
        "quick": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "eval_examples": 8},
        "metrics": ("latency",),
        "above_floor": (),
        "seeds": (0,),
    },
}
# The table's timing: the command's defaults, shorter in quick mode.
TABLE_TIMING = {True: {"rounds": 2, "round_s": 0.02}, False: {}}
# The timing pass over the finished runs (``time_signatures``): more rounds than the eval stage's.
SIGNATURE_TIMING = {True: {"rounds": 2, "round_s": 0.02}, False: {"rounds": 20, "round_s": 0.1}}
MARKER = "latency_budget_run.json"
# The model's refusal of a budget under the cost of every switch off (BudgetAwareModel).
FLOOR = re.compile(r"Expected a budget in \(([0-9.]+), 1\]")


def cache_dir(quick):
    return pocket_runs.RUNS / ("quick" if quick else "full") / NAME


def table_file(shape, quick):
    """The shape's latency table, measured once (``bap-latency-table`` in a child process)."""
    spec = SHAPES[shape]["table"]
    grid = spec.get("target") or f"step{spec['step']}"
    path = cache_dir(quick) / f"table_{shape}_{grid}.json"
    if not path.exists():
        argv = [f"--{k}={v}" for k, v in {**spec, **TABLE_TIMING[quick]}.items()]
        argv += ["--threads=1", "--reference", f"--output={path}",
                 f"--cells_dir={cache_dir(quick) / f'cells_{shape}'}"]
        print(f"measuring the {shape} latency table: {path}", flush=True)
        subprocess.run([sys.executable, "-m", "bap_tf.cli.latency_table", *argv], cwd=common.ROOT, check=True)
    return path


def table_summary(path):
    """What the page says of a table: the backbone's ms, the convs' sums at full and smallest
    counts, and the fraction left with every conv at its smallest cell (a lower bound of the
    budget's floor: the budget scales the convs' sum by the backbone's reference)."""
    table = json.loads(path.read_text())
    layers = table["layers"].values()
    full = sum(e["ms"][-1][-1] for e in layers)
    smallest = sum(e["ms"][0][0] for e in layers)
    reference = (table.get("reference") or {}).get("ms")
    backbone = max(reference, full) if reference else full
    return {"path": str(path.relative_to(common.ROOT)), "target": table["target"], "step": table["step"],
            "machine": table["machine"], "date": table["date"], "layers": len(table["layers"]),
            "reference_ms": reference, "convs_full_ms": full, "convs_smallest_ms": smallest,
            "outside_ms": backbone - full, "smallest_fraction": smallest / full,
            "digest": hashlib.sha1(path.read_bytes()).hexdigest()[:12]}


def seeds(shape, quick):
    return SHAPES[shape]["seeds"][:1] if quick else SHAPES[shape]["seeds"]


def run_flags(shape, metric, budget, quick, table, seed=0):
    """The ``bap-train`` flags of one run: the main job's flagfile, then the shape's flags."""
    spec = SHAPES[shape]
    flags = {"flagfile": pocket_runs.FLAGFILE, **spec["flags"], **(spec["quick"] if quick else {}),
             "reference_errors": pocket_runs.shared_reference().relative_to(common.ROOT),
             "budget": budget, "budget_metric": metric, "seed": seed}
    if metric == "latency":
        flags["latency_table"] = table.relative_to(common.ROOT)
    else:  # each signature the domain's own model, as a latency budget's default layout makes it
        flags["android_layout"] = "per_domain"
    return {name: str(value) for name, value in flags.items()}


def run_chain(shape, metric, budget, quick, table, digest, seed=0):
    """One run's ``{"status": "done", "report", "exported_ratio"}`` or ``{"status": "infeasible",
    "floor"}``;
    kept in the workdir's marker, so a finished or refused run is not redone."""
    flags = run_flags(shape, metric, budget, quick, table, seed)
    workdir = cache_dir(quick) / (f"{shape}_{metric}_b{budget:g}" + (f"_s{seed}" if seed else ""))
    marker = workdir / MARKER
    identity = {"flags": flags, "table_digest": digest if metric == "latency" else None}
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved["identity"] == identity:
            print(f"  {workdir.name}: {saved['status']} earlier", flush=True)
            return _with_results(saved, workdir, table)
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        pocket_runs._bap_train(workdir, flags, list(STAGES))
        result = {"status": "done"}
    except RuntimeError:
        found = FLOOR.search((workdir / pocket_runs.LOG).read_text())
        if not found:
            raise
        print(f"  {workdir.name}: refused, the floor is {found[1]}", flush=True)
        result = {"status": "infeasible", "floor": float(found[1])}
    marker.write_text(json.dumps({**result, "identity": identity}, indent=2) + "\n")
    return _with_results(result, workdir, table)


def _with_results(result, workdir, table):
    """A finished run's result with its ``report.json`` and ``exported_prediction``."""
    if result["status"] != "done":
        return result
    return {**result, "workdir": workdir, "report": _report(workdir),
            "exported_ratio": exported_prediction(workdir, table)}


def exported_prediction(workdir, table_path):
    """``{domain: ratio}``: the table's latency of each domain's Android signature as exported
    (its own model, gathers absorbed: each conv reads the whole tensor before the gather, with zero
    kernel rows), over the table's backbone. Beside the training's prediction it shows whether a
    miss comes from the counts the budget priced or from the table itself."""
    import keras

    from bap_tf import layers as _registers_layers  # noqa: F401  (ChannelGather, ChannelMask)
    from bap_tf.budgets.latency import model_latency_ms
    from bap_tf.export.absorb import absorb_gathers

    table, summary = json.loads(table_path.read_text()), table_summary(table_path)
    ratios = {}
    for name in _report(workdir)["domains"]:
        model = absorb_gathers(keras.saving.load_model(workdir / "pruned" / f"{name}.keras", compile=False))
        ratios[name] = model_latency_ms(table, model) / summary["convs_full_ms"]
    return ratios


def _report(workdir):
    return json.loads((workdir / "report.json").read_text())


def time_signatures(workdir, domains, quick):
    """``({domain: latency fraction}, backbone ms)``: each domain's Android signature of a
    finished run over its unpruned backbone, timed together in alternating rounds (LiteRT,
    XNNPACK, 1 thread, batch 1)."""
    from bap_tf.domains import identifier
    from bap_tf.export.timing import signature_latencies

    manifest = json.loads((workdir / "export" / "manifest.json").read_text())
    backbone = manifest["backbone"]
    files = {d: (workdir / manifest["android"]["float32"]["path"], identifier(d)) for d in domains}
    files["backbone"] = (workdir / backbone["float32"]["path"], identifier(backbone["domain"]))
    ms = signature_latencies(files, threads=1, **SIGNATURE_TIMING[quick])
    return {d: ms[d] / ms["backbone"] for d in files if d != "backbone"}, ms["backbone"]


def summarize(shape, metric, budget, seed, result, quick):
    """The record's entry of one run: per domain the budget, the table's prediction, the
    measured latency fraction (``time_signatures``), measured / budget, MACs ratio, accuracy and
    the verdict."""
    entry = {"shape": shape, "metric": metric, "budget": budget, "seed": seed, "status": result["status"]}
    if result["status"] != "done":
        return {**entry, "floor": result["floor"]}
    report = result["report"]
    signatures = report["promise"]["android"]["signatures"]
    latency = report.get("latency_budget") or {"domains": {}}
    timed, backbone_ms = time_signatures(result["workdir"], report["domains"], quick)
    domains = {}
    for name, values in report["domains"].items():
        measured = timed[name]
        exported = result["exported_ratio"][name]
        domains[name] = {
            "predicted_ratio": latency["domains"].get(name, {}).get("signature_predicted_ratio"),
            "exported_ratio": exported, "measured_ratio": measured, "measured_over_budget": measured / budget,
            "measured_over_exported": measured / exported, "eval_stage_ratio": signatures[name]["latency_ratio"],
            "macs_ratio": signatures[name]["macs_ratio"], "kept_fraction": values["kept_fraction"],
            "accuracy": values["accuracy_pruned"], "within": abs(measured / budget - 1) <= TOLERANCE,
        }
    return {**entry, "layout": report["promise"].get("layout"), "domains": domains,
            "backbone_latency_ms": backbone_ms,
            "eval_stage_backbone_latency_ms": report["promise"]["android"]["backbone_latency_ms"],
            "table_backbone_ms": (latency.get("table") or {}).get("backbone_ms"),
            "timings_s": report.get("timings_s")}


def _seed_row(run):
    head = [run["metric"], f"{run['budget']:g}", str(run.get("seed", 0))]
    if run["status"] != "done":
        return head + [f"infeasible (floor {run['floor']:.3f})", "–", "–"]
    measured = [d["measured_ratio"] for d in run["domains"].values()]
    within = sum(d["within"] for d in run["domains"].values())
    return head + [f"{min(measured):.3f}–{max(measured):.3f}", f"{within} of {len(measured)}",
                   f"{_mean_of(run, 'accuracy'):.3f}"]


def _mean_of(run, field):
    return common.mean([d[field] for d in run["domains"].values()])


def equal_latency(runs):
    """Per shape and seed with both metrics: each latency-budget model's mean accuracy and mean
    measured latency fraction, and the MACs-budget models' mean accuracy at that latency,
    interpolated linearly between the seed's MACs runs by their mean measured latency (``None``
    outside their range: no extrapolation)."""
    rows = []
    for shape in SHAPES:
        for seed in SHAPES[shape]["seeds"]:
            done = [r for r in runs if r["shape"] == shape and r["seed"] == seed and r["status"] == "done"]
            macs = sorted((_mean_of(r, "measured_ratio"), _mean_of(r, "accuracy"))
                          for r in done if r["metric"] == "macs")
            for run in (r for r in done if r["metric"] == "latency" and macs):
                latency = _mean_of(run, "measured_ratio")
                rows.append({"shape": shape, "seed": seed, "budget": run["budget"], "latency": latency,
                             "accuracy": _mean_of(run, "accuracy"), "macs_points": macs,
                             "macs_accuracy": _interpolated(macs, latency)})
    return rows


def _interpolated(points, x):
    """Linear interpolation of sorted ``[(x, y)]`` at ``x`` (``None`` outside their range)."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def equal_latency_lines(record):
    """The page's section on accuracy at equal measured latency, with the target's verdict."""
    rows = record.get("equal_latency") or []
    if not rows:
        return []
    table = [[r["shape"], str(r["seed"]), f"{r['budget']:g}", f"{r['latency']:.3f}", f"{r['accuracy']:.3f}",
              ", ".join(f"{x:.3f} → {y:.3f}" for x, y in r["macs_points"]), _ratio(r["macs_accuracy"])]
             for r in rows]
    lines = ["#### Accuracy at equal measured latency", "",
             "Each latency-budget model's mean accuracy over domains against the MACs-budget models' at the same "
             "mean measured latency, interpolated between the same seed's MACs runs (their mean latency → mean "
             "accuracy).", "",
             common.markdown_table(["shape", "seed", "latency budget", "measured latency", "accuracy",
                                    "MACs runs: latency → accuracy", "MACs at equal latency"], table,
                                   align="lllrrlr"), ""]
    for budget in sorted({r["budget"] for r in rows}, reverse=True):
        chosen = [r for r in rows if r["budget"] == budget and r["macs_accuracy"] is not None]
        if not chosen:
            lines += [f"Latency budget {budget:g}: no seed's latency inside its MACs runs' range.", ""]
            continue
        ours, theirs = common.mean([r["accuracy"] for r in chosen]), common.mean([r["macs_accuracy"] for r in chosen])
        lines += [f"Target at latency budget {budget:g}, mean accuracy ≥ the MACs budget's at equal latency over "
                  f"{len(chosen)} seed(s): {common.verdict(ours >= theirs)} ({ours:.3f} against {theirs:.3f}).", ""]
    return lines


def _ratio(value):
    return "–" if value is None else f"{value:.3f}"


def markdown(record):
    lines = ["### Training to a latency budget (LiteRT 1 thread)", ""]
    for shape, tables in record["tables"].items():
        every_seed = [r for r in record["runs"] if r["shape"] == shape]
        runs = [r for r in every_seed if r.get("seed", 0) == SHAPES[shape]["seeds"][0]]
        reference = tables["reference_ms"]
        lines += [f"#### {SHAPES[shape]['title']}", "",
                  f"Table: {tables['layers']} switched convs, target {tables['target']}, step {tables['step']}, "
                  f"measured {tables['date'][:16]}; "
                  f"the whole backbone {_ms(reference)} ms, its switched convs {tables['convs_full_ms']:.3f} ms at "
                  f"full counts and {tables['convs_smallest_ms']:.3f} ms at the grid's smallest: every conv at its "
                  f"smallest cell would leave {tables['smallest_fraction']:.3f} of the backbone's latency (a lower "
                  "bound of the command's floor, which keeps the counts no switch removes).", ""]
        rows = []
        for run in runs:
            head = [run["metric"], f"{run['budget']:g}"]
            if run["status"] != "done":
                rows.append(head + ["–", f"infeasible: the command refuses it (floor {run['floor']:.3f})"]
                            + ["–"] * 7)
                continue
            for name, d in run["domains"].items():
                rows.append(head + [f"`{name}`", _ratio(d["predicted_ratio"]), _ratio(d["exported_ratio"]),
                                    _ratio(d["measured_ratio"]), f"{d['measured_over_budget']:.2f}",
                                    f"{d['measured_over_exported']:.2f}", _ratio(d["macs_ratio"]),
                                    _ratio(d["accuracy"]), "yes" if d["within"] else "no"])
        lines += [common.markdown_table(
            ["budget metric", "budget", "domain", "table's prediction (training's counts)",
             "table at the exported model's counts", "measured latency fraction", "measured ÷ budget",
             "measured ÷ table at exported counts", "MACs ratio", "accuracy", f"within ±{TOLERANCE:.0%}"],
            rows, align="lrlrrrrrrrl"), ""]
        if len(every_seed) > len(runs):
            lines += [f"Every seed (the rows above: seed {SHAPES[shape]['seeds'][0]}):", "",
                      common.markdown_table(["budget metric", "budget", "seed", "measured latency fractions",
                                             "within", "mean accuracy"],
                                            [_seed_row(r) for r in every_seed], align="lrlrrr"), ""]
    lines += [verdict_line(record), "", *equal_latency_lines(record),
              "Fractions are of the unpruned backbone's latency. The table's prediction is the one training "
              "and the report make (each conv priced at the width of the stream it reads and its filters, "
              "streams rounded up to the table's step, the convs' sum scaled to the table's whole-backbone "
              "reference); the table at the exported model's counts prices the Android signature as "
              "converted (the domain's own model with its gathers absorbed, so each conv reads the whole "
              "tensor before the gather, with zero kernel rows). The measured fraction "
              "is each domain's Android signature (per_domain layout: its own pruned model) over the unpruned "
              "backbone timed in the same rounds (LiteRT, XNNPACK, 1 thread, batch 1) in a timing pass after "
              f"every run, load average {_load(record)} before it (the eval stage's own figures, taken while "
              "other runs trained, are in the JSON). "
              "The MACs rows are trained to a MACs budget at the same fractions. Accuracy: the union-pruned "
              "model on the whole test split (Keras); training is shortened ("
              f"{training_note(record['mode'] == 'quick')}, no fine-tuning), so accuracies are indicative only.",
              "", f"![measured latency fraction vs budget]({record['plot']})"]
    return "\n".join(lines)


def training_note(quick):
    """How long each shape trains, e.g. ``pocket: 2 epochs of 60 steps``."""
    notes = []
    for shape, spec in SHAPES.items():
        flags = {**spec["flags"], **(spec["quick"] if quick else {})}
        weights = ", random weights" if flags.get("pretrained") == "none" else ""
        notes.append(f"{shape}: {flags['epochs']} epoch(s) of {flags['steps_per_epoch']} steps{weights}")
    return "; ".join(notes)


def _load(record):
    load = record.get("timing_load_average")
    return "–" if load is None else "/".join(f"{v:g}" for v in load)


def _ms(value):
    return "–" if value is None else f"{value:.3f}"


def verdict_line(record):
    """The target over the latency-budget runs: every domain within ±TOLERANCE of its budget."""
    runs = [r for r in record["runs"] if r["metric"] == "latency"]
    done = [r for r in runs if r["status"] == "done"]
    domains = [d for r in done for d in r["domains"].values()]
    within = sum(d["within"] for d in domains)
    infeasible = [f"{r['shape']} at {r['budget']:g}, seed {r.get('seed', 0)} (floor {r['floor']:.3f})"
                  for r in runs if r["status"] != "done"]
    met = bool(domains) and within == len(domains) and not infeasible
    line = (f"Target, every domain's exported model within ±{TOLERANCE:.0%} of its latency budget: "
            f"{common.verdict(met)}: {within} of {len(domains)} domains within it over {len(done)} trained "
            f"latency-budget runs")
    if infeasible:
        line += f"; {len(infeasible)} budget(s) below what the table allows: {', '.join(infeasible)}"
    return line + "."


def plot(record, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bap_tf.atomic import atomic_path

    figure, axis = plt.subplots(figsize=(6.5, 5))
    line = [0.0, 1.0]
    axis.plot(line, line, color="grey", linestyle="--", label="on budget")
    axis.fill_between(line, [(1 - TOLERANCE) * v for v in line], [(1 + TOLERANCE) * v for v in line],
                      color="grey", alpha=0.15, label=f"±{TOLERANCE:.0%}")
    colors = dict(zip(SHAPES, ("tab:blue", "tab:orange")))
    shown = set()
    for run in record["runs"]:
        key = (run["shape"], run["metric"])
        if run["status"] != "done":
            axis.scatter([run["budget"]], [run["floor"]], marker="x", color=colors[run["shape"]],
                         label=None if ("floor", run["shape"]) in shown else f"{run['shape']}: refused, floor")
            shown.add(("floor", run["shape"]))
            continue
        values = [d["measured_ratio"] for d in run["domains"].values()]
        axis.scatter([run["budget"]] * len(values), values, color=colors[run["shape"]], alpha=0.75,
                     marker="o" if run["metric"] == "latency" else "s",
                     label=None if key in shown else f"{run['shape']}, {run['metric']} budget")
        shown.add(key)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.1)
    axis.set_xlabel("budget (fraction of the backbone's latency or MACs)")
    axis.set_ylabel("measured latency / unpruned backbone's (LiteRT, 1 thread)")
    axis.set_title("Each domain's exported model against its budget")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return path


def main():
    args = common.parser(__doc__).parse_args()
    settings = {"budgets": BUDGETS, "tolerance": TOLERANCE, "shapes": SHAPES, "table_timing": TABLE_TIMING[args.quick],
                "signature_timing": SIGNATURE_TIMING[args.quick], "stages": STAGES}
    record = common.start_record(NAME, args.quick, settings)
    record["tables"], finished = {}, []
    for shape, spec in SHAPES.items():
        table = table_file(shape, args.quick)
        record["tables"][shape] = table_summary(table)
        for seed in seeds(shape, args.quick):
            for metric in spec["metrics"]:
                for budget in BUDGETS + spec["above_floor"]:
                    print(f"{shape}, {metric} budget {budget:g}, seed {seed}:", flush=True)
                    result = run_chain(shape, metric, budget, args.quick, table, record["tables"][shape]["digest"],
                                       seed)
                    finished.append((shape, metric, budget, seed, result))
    print("timing every run's signatures against its backbone", flush=True)
    record["timing_load_average"] = common.machine_info()["load_average_1_5_15"]
    record["runs"] = [summarize(*run, args.quick) for run in finished]
    record["equal_latency"] = equal_latency(record["runs"])
    record["load_average_after"] = common.machine_info()["load_average_1_5_15"]
    record["plot"] = plot(record, common.results_path(NAME, args.quick, "png", args.results_dir)).name
    common.write_results(record, markdown(record), args.results_dir)
    print(markdown(record))


if __name__ == "__main__":
    main()

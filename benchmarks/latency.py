"""On-device latency on the pocket benchmark: LiteRT (XNNPACK), batch 1, 1 and 2 threads.

For each budget of the sweep (the best sharing loss, seed 0; runs reused from the other
benchmarks or trained here with ``bap-train --stages=train,prune``), the float32 ``.tflite`` of:

- the union-pruned multi-domain model (the Android file, one signature per domain; each
  domain's signature is timed),
- each domain's own pruned model (one file each),

against the baseline measured in the same run: the unpruned backbone with the first domain's
BatchNorms and head (``benchmarks.run_models``), converted the same way. Files are converted with
``bap_tf.export.convert.export_android`` and cached in the run's workdir.

Timing: ``ai_edge_litert.interpreter.Interpreter(num_threads=...)`` with its default op
resolver (XNNPACK delegate for float32); one signature call sets the input, then only the
interpreter's ``Invoke`` is timed (no Python-side resize, copy or allocation), after a warm-up,
in rounds that alternate between all files so that load from other processes hits every model
alike; the figure is the median. Reported: latency ratio to the baseline, MACs ratio (the cost
model's count), and latency ratio ÷ MACs ratio. Target: <= 1.15, i.e. pruned MACs turn into
wall-clock speed.

    python -m benchmarks.latency           # 4 budgets, 10 rounds x 100 runs: ~25 min on 2 cores (conversions)
    python -m benchmarks.latency --quick   # budget 0.5, 5 rounds x 30 runs: ~6 min
"""

from benchmarks import common, pocket_runs

NAME = "latency"
BUDGETS = (1.0, 0.75, 0.5, 0.25)
QUICK_BUDGETS = (0.5,)
THREADS = (1, 2)
TARGET = 1.15
SEED = 0
CACHE = pocket_runs.DERIVED  # under the run's workdir


def _convert(models, path):
    from bap_tf.export.convert import export_android

    if not path.exists():
        print(f"  converting {path.name}", flush=True)
        export_android(models, path, variant="float32")
    return path


def files_of_run(run, baseline=False):
    """``[(label, budget, domain, path, signature, cost)]`` of one run's float32 files."""
    from benchmarks import run_models

    workdir = run["workdir"]
    config, masked, union, domain_models = run_models.load_run(workdir)
    budget = config.budget
    cache = workdir / CACHE
    cache.mkdir(exist_ok=True)
    entries = []
    if baseline:
        name = config.domains[0]
        model = run_models.unpruned_rewriter(masked).domain_model(name)
        path = _convert({name: model}, cache / f"unpruned_{name}_float32.tflite")
        entries.append(("backbone (unpruned)", None, name, path, name, run_models.cost(model, masked)))
    android = workdir / "export" / "android_float32.tflite"
    union_path = android if android.exists() else _convert(union, cache / "union_float32.tflite")
    for name in config.domains:
        entries.append(("union-pruned (multi-domain)", budget, name, union_path, name,
                        run_models.cost(union[name], masked)))
    for name, model in domain_models.items():
        path = _convert({name: model}, cache / f"{name}_float32.tflite")
        entries.append(("per-domain model", budget, name, path, name, run_models.cost(model, masked)))
    return entries


def _invoker(interpreter, signature, image):
    """A zero-argument call that runs the signature once more on the input set here."""
    runner = interpreter.get_signature_runner(signature)
    runner(image=image)  # resizes to batch 1, allocates, sets the input
    wrapper, index = getattr(runner, "_interpreter_wrapper", None), getattr(runner, "_subgraph_index", None)
    if wrapper is None or index is None:  # another LiteRT version: time the public call instead
        return lambda: runner(image=image)
    return lambda: wrapper.Invoke(index)


def time_files(entries, threads, rounds, runs, warmup):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    image = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    interpreters = {}
    candidates = {}
    for index, (_, _, _, path, signature, _) in enumerate(entries):
        if path not in interpreters:
            interpreters[path] = Interpreter(model_path=str(path), num_threads=threads)
        size = interpreters[path].get_signature_runner(signature).get_input_details()["image"]["shape"][1]
        if size != image.shape[1]:
            image = np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)
        candidates[index] = _invoker(interpreters[path], signature, image)
    return common.interleaved_medians(candidates, rounds, runs, warmup)


def markdown(record):
    rows = []
    for row in record["rows"]:
        cells = [row["model"], "–" if row["budget"] is None else f"{row['budget']:g}", f"`{row['domain']}`",
                 f"{row['macs'] / 1e6:.2f}M", common.fmt(row["macs_ratio"])]
        for threads in THREADS:
            t = row["threads"][str(threads)]
            cells += [f"{t['median_ms']:.3f}", common.fmt(t["latency_ratio"]),
                      common.fmt(t["ratio_over_macs_ratio"], ".2f") if row["budget"] is not None else "–"]
        rows.append(cells)
    headers = ["model", "budget", "domain", "MACs", "MACs ratio"]
    for threads in THREADS:
        headers += [f"ms ({threads} thr)", f"latency ratio ({threads} thr)", f"÷ MACs ratio ({threads} thr)"]
    summary = record["summary"]
    lines = [
        f"## Latency, LiteRT float32 (XNNPACK), batch 1, pocket benchmark, `{record['sharing_loss']}` sharing",
        "",
        common.markdown_table(headers, rows),
        "",
        f"Target: latency ratio ÷ MACs ratio ≤ {TARGET} for every pruned model: "
        + "; ".join(
            f"{threads} thread{'s' if threads > 1 else ''}: {common.verdict(summary[str(threads)]['met'])} "
            f"(worst {summary[str(threads)]['worst']:.2f}, {summary[str(threads)]['missed']} of "
            f"{summary[str(threads)]['count']} rows above)"
            for threads in THREADS
        )
        + ".",
        "",
        "Median of "
        f"{record['settings']['rounds']} rounds × {record['settings']['runs_per_round']} timed `Invoke` calls per "
        f"file and thread count, after {record['settings']['warmup']} warm-up calls; rounds alternate between "
        "the files. Ratios are to the baseline of the same thread count: the unpruned backbone with the "
        f"`{record['rows'][0]['domain']}` BatchNorms and head. Union-pruned rows time that domain's "
        "signature of the multi-domain Android file; MACs are that domain's path through it.",
    ]
    return "\n".join(lines)


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--sharing_loss", choices=("none", "union", "intersection", "jaccard"), default=None,
                        help="default: the best loss of the sharing benchmark's results")
    args = parser.parse_args()
    common.quiet_tensorflow()
    if args.sharing_loss:
        loss, reason = args.sharing_loss, "given with --sharing_loss"
    else:
        loss, reason = pocket_runs.best_sharing_loss(common.read_results("sharing", args.quick, args.results_dir))
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    rounds, runs, warmup = (5, 30, 20) if args.quick else (10, 100, 50)
    settings = {"dataset": "pocket", "budgets": list(budgets), "sharing_loss": loss, "seed": SEED,
                "threads": list(THREADS), "rounds": rounds, "runs_per_round": runs, "warmup": warmup,
                "batch": 1, "format": "float32 (export_android)", "runtime": "ai_edge_litert Interpreter, default "
                "op resolver (XNNPACK delegate)", "timed": "Interpreter Invoke of the signature's subgraph",
                "run_flags": pocket_runs.run_flags(loss, "<budget>", SEED, args.quick)}
    record = common.start_record(NAME, args.quick, settings)
    record["sharing_loss"], record["sharing_loss_reason"] = loss, reason
    entries = []
    for index, budget in enumerate(budgets):
        print(f"{loss}, budget {budget}, seed {SEED}:", flush=True)
        run = pocket_runs.run_pocket(loss, budget, SEED, args.quick, stages=("train", "prune"))
        entries += files_of_run(run, baseline=index == 0)
    timings = {}
    for threads in THREADS:
        print(f"timing {len(entries)} models with {threads} thread(s)", flush=True)
        timings[threads] = time_files(entries, threads, rounds, runs, warmup)
    base_macs = entries[0][5]["macs"]
    record["rows"] = []
    for index, (label, budget, domain, path, _, cost) in enumerate(entries):
        row = {"model": label, "budget": budget, "domain": domain, "file": path.name, "file_bytes": path.stat().st_size,
               "params": cost["params"], "macs": cost["macs"], "macs_ratio": cost["macs"] / base_macs, "threads": {}}
        for threads in THREADS:
            t = timings[threads][index]
            ratio = t["median_s"] / timings[threads][0]["median_s"]
            row["threads"][str(threads)] = {
                "median_ms": t["median_s"] * 1e3, "p10_ms": t["p10_s"] * 1e3, "p90_ms": t["p90_s"] * 1e3,
                "latency_ratio": ratio, "ratio_over_macs_ratio": ratio / row["macs_ratio"],
            }
        record["rows"].append(row)
    record["summary"] = {}
    for threads in THREADS:
        values = [r["threads"][str(threads)]["ratio_over_macs_ratio"] for r in record["rows"] if r["budget"] is not None]
        record["summary"][str(threads)] = {
            "worst": max(values), "count": len(values), "missed": sum(v > TARGET for v in values),
            "met": all(v <= TARGET for v in values),
        }
    text = markdown(record)
    common.write_results(record, text, args.results_dir)
    print(text)


if __name__ == "__main__":
    main()

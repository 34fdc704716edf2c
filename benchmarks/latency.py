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
wall-clock speed. Each file's operators per signature are counted too (what XNNPACK has to run).

Scale check (both modes): the pocket models are tiny (14 M MACs, well under a millisecond), so a
second group repeats the comparison at the Decathlon shape (ResNet-26 width 64, 64 px, random
weights) with synthetic switches for two domains: a shared random half of every conv's input
channels, each domain flipping 5% of them (seed 0). Its files are cached in
``runs/benchmarks/latency_scale/``.

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


SCALE = {"width": 64, "image_size": 64, "domains": [("d0", 10), ("d1", 26)], "shared_fraction": 0.5,
         "domain_flip_fraction": 0.05, "seed": 0}


def scale_entries(cache):
    """``files_of_run``'s entries for the Decathlon-shaped scale check (``SCALE``)."""
    import keras
    import numpy as np

    from bap_tf.backbones import resnet26
    from bap_tf.prune import Rewriter
    from bap_tf.prune.report import model_cost
    from bap_tf.switching import build_switched_network, gate_values, switched_layers

    keras.utils.set_random_seed(SCALE["seed"])
    size, domains = SCALE["image_size"], SCALE["domains"]
    network = build_switched_network(resnet26((size, size, 3), width=SCALE["width"]), domains)
    rng = np.random.default_rng(SCALE["seed"])
    for layer in switched_layers(network):
        shared = rng.uniform(size=layer.switches.shape[1]) < SCALE["shared_fraction"]
        rows = [shared ^ (rng.uniform(size=shared.shape) < SCALE["domain_flip_fraction"]) for _ in domains]
        layer.switches.assign(np.where(np.stack(rows), 0.5, -0.5).astype("float32"))
    names = {layer.name for layer in switched_layers(network)}
    ones = {name: np.ones_like(value) for name, value in gate_values(network).items()}

    def cost(models):
        c = model_cost(models, names)
        return {"params": c.params_with_masks, "macs": c.total.macs}

    rewriter = Rewriter(network, domains)
    first = domains[0][0]
    baseline = Rewriter(network, domains, gates=ones).domain_model(first)
    union = rewriter.union_models()
    own = rewriter.domain_models()
    cache.mkdir(parents=True, exist_ok=True)
    entries = [("backbone (unpruned)", None, first, _convert({first: baseline}, cache / f"unpruned_{first}_float32.tflite"),
                first, cost(baseline))]
    union_path = _convert(union, cache / "union_float32.tflite")
    entries += [("union-pruned (multi-domain)", "synthetic", d, union_path, d, cost(union[d])) for d, _ in domains]
    entries += [("per-domain model", "synthetic", d, _convert({d: own[d]}, cache / f"{d}_float32.tflite"), d, cost(own[d]))
                for d, _ in domains]
    return entries


def op_counts(path, signature):
    """``{builtin op name: count}`` of one signature's subgraph in a ``.tflite`` file."""
    import collections

    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    index = next(model.SignatureDefs(i).SubgraphIndex() for i in range(model.SignatureDefsLength())
                 if model.SignatureDefs(i).SignatureKey().decode() == signature)
    graph = model.Subgraphs(index)
    return dict(collections.Counter(names[codes[graph.Operators(i).OpcodeIndex()]] for i in range(graph.OperatorsLength())))


def delegate_partitions(path):
    """XNNPACK partitions of a one-signature file (``DELEGATE`` nodes after delegation), or None.

    Read with LiteRT's ``_get_ops_details``, which sees only the primary subgraph: so not for the
    multi-signature union file. A model that XNNPACK runs whole has one partition; every op it
    cannot run (here ``GATHER``) falls back to LiteRT's own kernels and splits the graph.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    if len(interpreter.get_signature_list()) != 1 or not hasattr(interpreter, "_get_ops_details"):
        return None
    interpreter.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())


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


def _ops(counts):
    short = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dw", "MUL": "mul", "GATHER": "gather"}
    main = [f"{counts[k]} {v}" for k, v in short.items() if counts.get(k)]
    return f"{sum(counts.values())} ({', '.join(main)})"


def group_table(rows):
    table = []
    for row in rows:
        budget = "–" if row["budget"] is None else row["budget"] if isinstance(row["budget"], str) else f"{row['budget']:g}"
        cells = [row["model"], budget, f"`{row['domain']}`", f"{row['macs'] / 1e6:.2f}M", common.fmt(row["macs_ratio"]),
                 _ops(row["ops"]), "–" if row["xnnpack_partitions"] is None else row["xnnpack_partitions"]]
        for threads in THREADS:
            t = row["threads"][str(threads)]
            cells += [f"{t['median_ms']:.3f}", common.fmt(t["latency_ratio"]),
                      common.fmt(t["ratio_over_macs_ratio"], ".2f") if row["budget"] is not None else "–"]
        table.append(cells)
    headers = ["model", "budget", "domain", "MACs", "MACs ratio", "ops", "XNNPACK partitions"]
    for threads in THREADS:
        headers += [f"ms ({threads} thr)", f"latency ratio ({threads} thr)", f"÷ MACs ratio ({threads} thr)"]
    return common.markdown_table(headers, table)


def verdicts(summary):
    return "; ".join(
        f"{threads} thread{'s' if threads > 1 else ''}: {common.verdict(summary[str(threads)]['met'])} "
        f"(worst {summary[str(threads)]['worst']:.2f}, best {summary[str(threads)]['best']:.2f}; "
        f"{summary[str(threads)]['missed']} of {summary[str(threads)]['count']} rows above)"
        for threads in THREADS
    )


def markdown(record):
    pocket = [r for r in record["rows"] if r["group"] == "pocket"]
    scale = [r for r in record["rows"] if r["group"] == "scale"]
    lines = [
        f"## Latency, LiteRT float32 (XNNPACK), batch 1, pocket benchmark, `{record['sharing_loss']}` sharing",
        "",
        group_table(pocket),
        "",
        f"Target: latency ratio ÷ MACs ratio ≤ {TARGET} for every pruned model: {verdicts(record['summary']['pocket'])}.",
        "",
        f"### Scale check: ResNet-26 width {SCALE['width']}, {SCALE['image_size']} px, synthetic switches",
        "",
        group_table(scale),
        "",
        f"Same measurement at the Decathlon shape: random weights, two domains whose switches keep a shared random "
        f"{SCALE['shared_fraction']:.0%} of every conv's inputs, each flipping {SCALE['domain_flip_fraction']:.0%} of "
        f"them. Latency ratio ÷ MACs ratio: {verdicts(record['summary']['scale'])}.",
        "",
        "*ops*: operators in the timed signature's subgraph (conv, depthwise conv: the union model keeps each "
        "domain's BatchNorm as a 1x1 depthwise op after shared convs; mul: channel masks; gather: channel gathers, "
        "which XNNPACK does not run); *XNNPACK partitions*: delegated sub-graphs after LiteRT applies XNNPACK "
        "(1 = the whole model runs in XNNPACK; read for one-signature files only). Median of "
        f"{record['settings']['rounds']} rounds × {record['settings']['runs_per_round']} timed `Invoke` calls per "
        f"file and thread count, after {record['settings']['warmup']} warm-up calls; rounds alternate between "
        "the files. Ratios are to the baseline of the same group and thread count: the unpruned backbone with the "
        f"`{pocket[0]['domain']}` BatchNorms and head. Union-pruned rows time that domain's "
        "signature of the multi-domain Android file; MACs are that domain's path through it.",
    ]
    return "\n".join(lines)


def row_of(group, entry, index, timings):
    """One results row (ratios are added by ``summarize``)."""
    label, budget, domain, path, signature, cost = entry
    row = {"group": group, "model": label, "budget": budget, "domain": domain, "file": path.name,
           "file_bytes": path.stat().st_size, "ops": op_counts(path, signature),
           "xnnpack_partitions": delegate_partitions(path), "params": cost["params"],
           "macs": cost["macs"], "threads": {}}
    for threads in THREADS:
        t = timings[threads][index]
        row["threads"][str(threads)] = {"median_ms": t["median_s"] * 1e3, "p10_ms": t["p10_s"] * 1e3,
                                        "p90_ms": t["p90_s"] * 1e3, "runs": t["runs"]}
    return row


def summarize(rows):
    """Ratios to the group's first row (the baseline) and the target per thread count."""
    base = rows[0]
    summary = {}
    for row in rows:
        row["macs_ratio"] = row["macs"] / base["macs"]
        for threads, t in row["threads"].items():
            t["latency_ratio"] = t["median_ms"] / base["threads"][threads]["median_ms"]
            t["ratio_over_macs_ratio"] = t["latency_ratio"] / row["macs_ratio"]
    for threads in THREADS:
        values = [r["threads"][str(threads)]["ratio_over_macs_ratio"] for r in rows[1:]]
        summary[str(threads)] = {
            "worst": max(values), "best": min(values), "count": len(values),
            "missed": sum(v > TARGET for v in values), "met": all(v <= TARGET for v in values),
        }
    return summary


def main():
    parser = common.parser(__doc__)
    args, loss, reason = pocket_runs.parse_with_sharing_loss(parser)
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    rounds, runs, warmup = (5, 30, 20) if args.quick else (10, 100, 50)
    settings = {"dataset": "pocket", "budgets": list(budgets), "sharing_loss": loss, "seed": SEED,
                "threads": list(THREADS), "rounds": rounds, "runs_per_round": runs, "warmup": warmup,
                "batch": 1, "format": "float32 (export_android)", "runtime": "ai_edge_litert Interpreter, default "
                "op resolver (XNNPACK delegate)", "timed": "Interpreter Invoke of the signature's subgraph",
                "run_flags": pocket_runs.run_flags(loss, "<budget>", SEED, args.quick)}
    record = common.start_record(NAME, args.quick, settings)
    record["sharing_loss"], record["sharing_loss_reason"] = loss, reason
    groups = {"pocket": []}
    for index, budget in enumerate(budgets):
        print(f"{loss}, budget {budget}, seed {SEED}:", flush=True)
        run = pocket_runs.run_pocket(loss, budget, SEED, args.quick, stages=("train", "prune"))
        groups["pocket"] += files_of_run(run, baseline=index == 0)
    print("scale check (Decathlon shape, synthetic switches):", flush=True)
    groups["scale"] = scale_entries(pocket_runs.RUNS / "latency_scale")
    record["settings"]["scale_check"] = SCALE
    record["rows"], record["summary"] = [], {}
    for group, entries in groups.items():
        timings = {}
        for threads in THREADS:
            print(f"timing {len(entries)} {group} models with {threads} thread(s)", flush=True)
            timings[threads] = time_files(entries, threads, rounds, runs, warmup)
        rows = [row_of(group, entry, index, timings) for index, entry in enumerate(entries)]
        record["rows"] += rows
        record["summary"][group] = summarize(rows)
    text = markdown(record)
    common.write_results(record, text, args.results_dir)
    print(text)


if __name__ == "__main__":
    main()

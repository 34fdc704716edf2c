"""On-device latency: LiteRT (XNNPACK), batch 1, 1 and 2 threads, float32 and int8.

Two shapes, each a ResNet-26 with random weights and synthetic switches for two domains (a
shared random ``shared_fraction`` of every conv's input channels, each domain flipping
``domain_flip_fraction`` of them, seed 0): ``width64`` (width 64, 64 px, the Decathlon shape) and
``pocket`` (width 16, 32 px, the pocket benchmark's shape). ``--trained_runs`` adds the pocket
runs of the main job's sharing loss at budgets 1 / 0.75 / 0.5 / 0.25 (the frontier's runs; float32
only).

Per shape, the unpruned backbone (every switch on, the first domain's BatchNorms and head) is the
baseline, and each *variant* of the rewriter (``VARIANTS``: ``channel_multiple`` and
``dense_reads`` of ``bap_tf.prune.Rewriter``) gives:

- the Android file in two layouts (``export_android``): ``shared``, the union-pruned model with
  its weights stored once (per-domain channel masks and BatchNorms as extra ops), and
  ``per_domain``, each domain's own pruned model as its signature, as the export stage writes it
  (``export.absorb.android_models``: gathers absorbed into the convs, BatchNorms folded, no
  masks; larger file); every signature is timed;
- each domain's full-int8 microcontroller file (``export_micro``, calibrated on random images;
  its gathers stay, as in the export stage), timed with LiteRT's XNNPACK int8 kernels, against
  the int8 backbone.

Timing: ``ai_edge_litert.interpreter.Interpreter(num_threads=...)`` with its default op resolver
(XNNPACK delegate); one signature call sets the input, then only ``Invoke`` is timed, after a
warm-up, in rounds that alternate between every file of the shape (float32 and int8 together)
so that load from other processes hits every model alike; the figure is the median. Each round
gives each file about the same wall time (``ROUND_S``), so slow and fast files get equal weight.
Reported: latency ratio to the baseline of the same format, MACs ratio (the cost model's count),
and latency ratio ÷ MACs ratio (target ``TARGETS``), the 1-minute load average before and after.

Per-operator profile (``benchmarks.op_profile``): every operator of the first domain's signature
cut out into a one-operator model and timed alone, in alternating rounds with the whole signature;
reported per operator kind (ms, share, MACs, ms per GMAC) and for convolutions by whether their
output channels are a multiple of XNNPACK's tile (32 floats on AVX-512).

    python -m benchmarks.latency           # both shapes, 4 variants: 23 min on 2 cores at load 7 (mostly conversions)
    python -m benchmarks.latency --quick   # fewer rounds: a few minutes less (the conversions are the same)
Files are cached in ``runs/benchmarks/latency_<shape>/``; delete it after changing the rewriter.
"""

import os

from bap_tf.export import timing
from benchmarks import common, op_profile, pocket_runs

NAME = "latency"
BUDGETS = (1.0, 0.75, 0.5, 0.25)
QUICK_BUDGETS = (0.5,)
THREADS = (1, 2)
SEED = 0
CACHE = pocket_runs.DERIVED  # under a trained run's workdir
# Target of latency ratio ÷ MACs ratio per shape: (per-domain models, Android file signatures).
TARGETS = {"width64": (1.15, 1.3), "pocket": (1.6, 1.6), "trained": (1.6, 1.6)}
SHAPES = {"width64": {"width": 64, "image_size": 64}, "pocket": {"width": 16, "image_size": 32}}
SWITCHES = {"domains": [("d0", 10), ("d1", 26)], "shared_fraction": 0.5, "domain_flip_fraction": 0.05, "seed": 0}
# Rewriter options compared: the plain rewrite (gathers, exact channel counts), gathers replaced
# by zero kernel rows, and every stream rounded to XNNPACK's float32 tile (16 AVX2, 32 AVX-512).
VARIANTS = {
    "plain": {"channel_multiple": 1, "dense_reads": False},
    "dense": {"channel_multiple": 1, "dense_reads": True},
    "round16": {"channel_multiple": 16, "dense_reads": True},
    "round32": {"channel_multiple": 32, "dense_reads": True},
}
ROUND_S = {True: 0.08, False: 0.25}  # quick: wall time per file per round
INT8_CALIBRATION = 32  # random images
PROFILE_ROUNDS, PROFILE_ROUND_S = 4, 0.02  # per operator: rounds, seconds per round


def _convert_android(models, path):
    from bap_tf.export.convert import export_android

    if not path.exists():
        print(f"  converting {path.parent.name}/{path.name}", flush=True)
        export_android(models, path, variant="float32")
    return path


def _convert_micro(model, path, size):
    import numpy as np

    from bap_tf.export.convert import export_micro

    if not path.exists():
        print(f"  converting {path.parent.name}/{path.name}", flush=True)
        images = np.random.default_rng(0).random((INT8_CALIBRATION, size, size, 3), dtype=np.float32)
        export_micro(model, path, images, max_samples=INT8_CALIBRATION)
    return path


def _entry(model, variant, layout, fmt, domain, path, signature, cost):
    return {"model": model, "variant": variant, "layout": layout, "format": fmt, "domain": domain,
            "path": path, "signature": signature, **cost}


def synthetic_network(shape):
    """The switched ResNet-26 of ``SHAPES[shape]`` with ``SWITCHES``' random switches."""
    import keras
    import numpy as np

    from bap_tf.backbones import resnet26
    from bap_tf.switching import build_switched_network, switched_layers

    keras.utils.set_random_seed(SWITCHES["seed"])
    size, domains = SHAPES[shape]["image_size"], SWITCHES["domains"]
    network = build_switched_network(resnet26((size, size, 3), width=SHAPES[shape]["width"]), domains)
    rng = np.random.default_rng(SWITCHES["seed"])
    for layer in switched_layers(network):
        shared = rng.uniform(size=layer.switches.shape[1]) < SWITCHES["shared_fraction"]
        rows = [shared ^ (rng.uniform(size=shared.shape) < SWITCHES["domain_flip_fraction"]) for _ in domains]
        # Switch values in (-1, 1) with the sign of the gate: rounding ranks the extra channels.
        magnitude = rng.uniform(0.05, 1.0, size=(len(domains), shared.shape[0]))
        layer.switches.assign(np.where(np.stack(rows), magnitude, -magnitude).astype("float32"))
    return network, domains


def shape_entries(shape, cache, variants):
    """The files of one shape: baselines, then per variant both Android layouts and int8 files."""
    import numpy as np

    from bap_tf.export.absorb import android_models
    from bap_tf.prune import Rewriter
    from bap_tf.prune.costs_report import model_cost
    from bap_tf.switching import gate_values

    network, domains = synthetic_network(shape)
    size = SHAPES[shape]["image_size"]
    names = set(gate_values(network))

    def cost(models):
        c = model_cost(models, names)
        return {"params": c.params_with_masks, "macs": c.total.macs}

    cache.mkdir(parents=True, exist_ok=True)
    first = domains[0][0]
    ones = {name: np.ones_like(value) for name, value in gate_values(network).items()}
    baseline = Rewriter(network, domains, gates=ones).domain_model(first)
    entries = [
        _entry("backbone (unpruned)", None, None, "float32", first,
               _convert_android({first: baseline}, cache / "backbone_float32.tflite"), first, cost(baseline)),
        _entry("backbone (unpruned)", None, None, "int8", first,
               _convert_micro(baseline, cache / "backbone_int8.tflite", size), "serving_default", cost(baseline)),
    ]
    for variant in variants:
        rewriter = Rewriter(network, domains, **VARIANTS[variant])
        union, own = rewriter.union_models(), rewriter.domain_models()
        signatures = android_models("per_domain", union, own)  # as the export stage writes it
        shared = _convert_android(union, cache / f"{variant}_shared_float32.tflite")
        separate = _convert_android(signatures, cache / f"{variant}_per_domain_absorbed_float32.tflite")
        for d, _ in domains:
            entries.append(_entry("Android file, shared weights", variant, "shared", "float32", d, shared, d,
                                  cost(union[d])))
        for d, _ in domains:
            entries.append(_entry("per-domain model (Android file, per-domain layout)", variant, "per_domain",
                                  "float32", d, separate, d, cost(signatures[d])))
        for d, _ in domains:
            path = _convert_micro(own[d], cache / f"{variant}_{d}_int8.tflite", size)
            entries.append(_entry("per-domain model, int8", variant, None, "int8", d, path, "serving_default",
                                  cost(own[d])))
    return entries


def files_of_run(run, baseline=False):
    """Entries of one trained pocket run's float32 files (``--trained_runs``)."""
    from bap_tf.export.absorb import android_models
    from benchmarks import run_models

    workdir = run["workdir"]
    config, masked, union, domain_models = run_models.load_run(workdir)
    cache = workdir / CACHE
    cache.mkdir(exist_ok=True)
    entries = []
    if baseline:
        name = config.domains[0]
        model = run_models.unpruned_rewriter(masked).domain_model(name)
        path = _convert_android({name: model}, cache / f"unpruned_{name}_float32.tflite")
        entries.append(_entry("backbone (unpruned)", None, None, "float32", name, path, name,
                              run_models.cost(model, masked)))
    variant = f"trained b{config.budget:g}"
    android = workdir / "export" / "android_float32.tflite"
    union_path = android if android.exists() else _convert_android(union, cache / "union_float32.tflite")
    signatures = android_models("per_domain", union, domain_models)
    separate = _convert_android(signatures, cache / "per_domain_absorbed_float32.tflite")
    for name in config.domains:
        entries.append(_entry("Android file, shared weights", variant, "shared", "float32", name, union_path, name,
                              run_models.cost(union[name], masked)))
    for name, model in signatures.items():
        entries.append(_entry("per-domain model (Android file, per-domain layout)", variant, "per_domain", "float32",
                              name, separate, name, run_models.cost(model, masked)))
    return entries


def op_counts(path, signature):
    """``{builtin op name: count}`` of one signature's subgraph in a ``.tflite`` file."""
    import collections

    model = op_profile.read_model(path.read_bytes())
    names = op_profile.op_names()
    graph = model.subgraphs[op_profile.subgraph_index(model, signature)]
    codes = model.operatorCodes
    return dict(collections.Counter(
        names[max(codes[op.opcodeIndex].builtinCode, codes[op.opcodeIndex].deprecatedBuiltinCode)]
        for op in graph.operators))


def time_entries(entries, threads, rounds, round_s):
    from ai_edge_litert.interpreter import Interpreter

    interpreters, candidates = {}, {}
    for index, entry in enumerate(entries):
        key = (entry["path"], threads)
        if key not in interpreters:
            interpreters[key] = Interpreter(model_path=str(entry["path"]), num_threads=threads)
        candidates[index] = timing.signature_invoker(interpreters[key], entry["signature"])
    return timing.interleaved_medians(candidates, rounds, None, warmup=5, round_s=round_s)


def profile(entry, rounds, round_s):
    """Per-operator profile of one entry's signature, 1 thread (``op_profile``)."""
    from ai_edge_litert.interpreter import Interpreter

    ops = op_profile.ops_of(entry["path"].read_bytes(), entry["signature"])
    interpreter = Interpreter(model_path=str(entry["path"]), num_threads=1)
    candidates = {"whole": timing.signature_invoker(interpreter, entry["signature"])}
    for index, _, _, _, data in ops:
        candidates[index] = op_profile.invoker(data, threads=1)
    timings = timing.interleaved_medians(candidates, rounds, None, warmup=3, round_s=round_s)
    rows = [{"index": index, "op": name, "macs": macs, "what": what, "ms": timings[index]["median_s"] * 1e3}
            for index, name, macs, what, _ in ops]
    return {"whole_ms": timings["whole"]["median_s"] * 1e3, "sum_ms": sum(r["ms"] for r in rows), "ops": rows}


def profile_summary(result, tile=32):
    """``{kind: {"count", "ms", "macs"}}``; convs split by output channels aligned to ``tile``."""
    kinds = {}
    for row in result["ops"]:
        kind = row["op"]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            channels = int(row["what"].split("->")[1].split()[0])
            kind += f" (C_out % {tile} {'= 0' if channels % tile == 0 else '≠ 0'})"
        k = kinds.setdefault(kind, {"count": 0, "ms": 0.0, "macs": 0})
        k["count"] += 1
        k["ms"] += row["ms"]
        k["macs"] += row["macs"]
    return kinds


def summarize(rows, shape):
    """Ratios to the baseline of the same format; the target per thread count and kind."""
    per_domain_target, android_target = TARGETS[shape]
    base = {row["format"]: row for row in rows if row["variant"] is None}
    for row in rows:
        b = base[row["format"]]
        row["macs_ratio"] = row["macs"] / b["macs"]
        for threads, t in row["threads"].items():
            t["latency_ratio"] = t["median_ms"] / b["threads"][threads]["median_ms"]
            t["ratio_over_macs_ratio"] = t["latency_ratio"] / row["macs_ratio"]
    summary = {}
    for row in rows:
        if row["variant"] is None:
            continue
        target = android_target if row["layout"] == "shared" else per_domain_target
        s = summary.setdefault(row["variant"], {}).setdefault(row["model"], {"target": target, "threads": {}})
        for threads, t in row["threads"].items():
            c = s["threads"].setdefault(threads, {"worst": 0.0, "slower_than_backbone": False})
            c["worst"] = max(c["worst"], t["ratio_over_macs_ratio"])
            c["slower_than_backbone"] |= t["latency_ratio"] >= 1.0
    for s in (s for variant in summary.values() for s in variant.values()):
        s["met"] = all(c["worst"] <= s["target"] and not c["slower_than_backbone"] for c in s["threads"].values())
    return summary


def row_of(shape, entry, index, timings):
    row = {key: value for key, value in entry.items() if key != "path"}
    row.update(shape=shape, file=entry["path"].name, file_bytes=entry["path"].stat().st_size,
               ops=op_counts(entry["path"], entry["signature"]), threads={})
    for threads in THREADS:
        t = timings[threads][index]
        row["threads"][str(threads)] = {"median_ms": t["median_s"] * 1e3, "p10_ms": t["p10_s"] * 1e3,
                                        "p90_ms": t["p90_s"] * 1e3, "runs": t["runs"]}
    return row


def _ops(counts):
    short = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dw", "MUL": "mul", "GATHER": "gather"}
    main = [f"{counts[k]} {v}" for k, v in short.items() if counts.get(k)]
    return f"{sum(counts.values())} ({', '.join(main)})"


def shape_table(rows):
    table = []
    for row in rows:
        cells = [row["model"], row["variant"] or "–", row["format"], f"`{row['domain']}`", f"{row['macs'] / 1e6:.2f}M",
                 common.fmt(row["macs_ratio"]), _ops(row["ops"]), common.fmt_bytes(row["file_bytes"])]
        for threads in THREADS:
            t = row["threads"][str(threads)]
            cells += [f"{t['median_ms']:.3f}", common.fmt(t["latency_ratio"]),
                      common.fmt(t["ratio_over_macs_ratio"], ".2f") if row["variant"] else "–"]
        table.append(cells)
    headers = ["model", "variant", "format", "domain", "MACs", "MACs ratio", "ops", "file"]
    for threads in THREADS:
        headers += [f"ms ({threads} thr)", f"latency ratio ({threads} thr)", f"÷ MACs ({threads} thr)"]
    return common.markdown_table(headers, table)


def verdict_lines(summary):
    lines = []
    for variant, models in summary.items():
        for model, s in models.items():
            worst = ", ".join(
                f"{t} thr {c['worst']:.2f}{' (slower than the backbone)' if c['slower_than_backbone'] else ''}"
                for t, c in s["threads"].items())
            lines.append(f"- `{variant}`, {model}: worst ÷ {worst}; target ≤ {s['target']}: {common.verdict(s['met'])}")
    return lines


def profile_table(profiles):
    table = []
    for label, result in profiles.items():
        for kind, k in sorted(profile_summary(result).items(), key=lambda item: -item[1]["ms"]):
            per_gmac = f"{k['ms'] / (k['macs'] / 1e9):.1f}" if k["macs"] else "–"
            table.append([label, kind, k["count"], f"{k['ms']:.3f}", common.fmt(k["ms"] / result["sum_ms"], ".2f"),
                          f"{k['macs'] / 1e6:.2f}M", per_gmac])
        table.append([label, "**sum of ops / whole signature**", len(result["ops"]), f"{result['sum_ms']:.3f}",
                      f"whole {result['whole_ms']:.3f}", "", ""])
    return common.markdown_table(["file (signature of the first domain)", "operator kind", "count", "ms (1 thr)",
                                  "share", "MACs", "ms per GMAC"], table)


def plot(record, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = list(dict.fromkeys(r["shape"] for r in record["rows"]))
    figure, axes = plt.subplots(1, len(shapes), figsize=(6 * len(shapes), 4.5), squeeze=False)
    markers = {"float32": "o", "int8": "s"}
    for axis, shape in zip(axes[0], shapes):
        for row in (r for r in record["rows"] if r["shape"] == shape):
            kind = "backbone" if row["variant"] is None else "shared" if row["layout"] == "shared" else "per-domain"
            color = {"backbone": "black", "shared": "tab:orange", "per-domain": "tab:blue"}[kind]
            axis.scatter(row["macs"] / 1e6, row["threads"]["1"]["median_ms"], color=color,
                         marker=markers[row["format"]], label=f"{kind}, {row['format']}")
            if row["variant"]:
                axis.annotate(row["variant"], (row["macs"] / 1e6, row["threads"]["1"]["median_ms"]), fontsize=6)
        handles, labels = axis.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        axis.legend(unique.values(), unique.keys(), fontsize=7)
        axis.set_xlabel("MACs (M)")
        axis.set_ylabel("latency, 1 thread (ms)")
        axis.set_title(f"{shape}: LiteRT XNNPACK, batch 1")
        axis.set_xlim(left=0)
        axis.set_ylim(bottom=0)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def markdown(record):
    lines = ["## Latency, LiteRT (XNNPACK), batch 1, float32 and int8", ""]
    for shape in record["summary"]:
        rows = [r for r in record["rows"] if r["shape"] == shape]
        title = {"width64": "ResNet-26 width 64, 64 px", "pocket": "ResNet-26 width 16, 32 px (pocket shape)",
                 "trained": "trained pocket runs"}[shape]
        lines += [f"### {title}", "", shape_table(rows), "", *verdict_lines(record["summary"][shape]), ""]
    lines += ["### Per-operator profile (1 thread)", "", profile_table(record["profiles"]), ""]
    load = record["load_average"]
    lines += [
        f"Load average (1 min) before timing {load['before'][0]:.2f}, after {load['after'][0]:.2f} on "
        f"{record['machine']['cores']} cores. Synthetic switches: {SWITCHES}. Variants: "
        + "; ".join(f"`{k}` {v}" for k, v in VARIANTS.items())
        + ". *ops*: operators of the timed signature (mul: channel masks, dw: per-domain BatchNorms after shared "
        "convs as 1x1 depthwise ops, gather: channel gathers, which XNNPACK does not run). Median of "
        f"{record['settings']['rounds']} rounds alternating between every file of the shape, about "
        f"{record['settings']['round_s']} s per file per round. Ratios are to the unpruned backbone of the same format "
        f"in the same run. Plot of latency against MACs: `{record['plot']}`.",
    ]
    return "\n".join(lines)


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--trained_runs", action="store_true",
                        help="add the trained pocket runs (trains them if missing)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of VARIANTS")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated subset of SHAPES")
    args, loss, reason = pocket_runs.parse_with_sharing_loss(parser)
    variants = [v for v in args.variants.split(",") if v]
    shapes = [s for s in args.shapes.split(",") if s]
    rounds, round_s = (5, ROUND_S[True]) if args.quick else (12, ROUND_S[False])
    settings = {"shapes": {s: SHAPES[s] for s in shapes}, "switches": SWITCHES,
                "variants": {v: VARIANTS[v] for v in variants},
                "threads": list(THREADS), "rounds": rounds, "round_s": round_s, "batch": 1,
                "runtime": "ai_edge_litert Interpreter, default op resolver (XNNPACK delegate)",
                "timed": "Interpreter Invoke of the signature's subgraph"}
    record = common.start_record(NAME, args.quick, settings)
    groups = {}
    for shape in shapes:
        print(f"shape {shape}:", flush=True)
        groups[shape] = shape_entries(shape, pocket_runs.RUNS / f"latency_{shape}", variants)
    if args.trained_runs:
        groups["trained"] = []
        for index, budget in enumerate(QUICK_BUDGETS if args.quick else BUDGETS):
            run = pocket_runs.run_pocket(loss, budget, SEED, args.quick, stages=("train", "prune"))
            groups["trained"] += files_of_run(run, baseline=index == 0)
    record["rows"], record["summary"], record["profiles"] = [], {}, {}
    record["load_average"] = {"before": list(os.getloadavg())}
    for shape, entries in groups.items():
        timings = {}
        for threads in THREADS:
            print(f"timing {len(entries)} {shape} signatures with {threads} thread(s)", flush=True)
            timings[threads] = time_entries(entries, threads, rounds, round_s)
        rows = [row_of(shape, entry, index, timings) for index, entry in enumerate(entries)]
        record["rows"] += rows
        record["summary"][shape] = summarize(rows, shape)
        if shape == "trained":
            continue
        first = entries[0]["domain"]
        picks = [e for e in entries if e["domain"] == first and (e["variant"] is None or e["format"] == "float32"
                                                                  or e["variant"] in ("plain", variants[-1]))]
        for entry in picks:
            label = f"{shape} {entry['variant'] or 'backbone'} {entry['layout'] or ''} {entry['format']}"
            label = label.replace("  ", " ")
            print(f"profiling {label}", flush=True)
            record["profiles"][label] = profile(entry, PROFILE_ROUNDS, PROFILE_ROUND_S)
    record["load_average"]["after"] = list(os.getloadavg())
    png = plot(record, common.results_path(NAME, args.quick, "png", args.results_dir))
    record["plot"] = str(png.relative_to(common.ROOT)) if png.is_relative_to(common.ROOT) else str(png)
    text = markdown(record)
    common.write_results(record, text, args.results_dir)
    print(text)


if __name__ == "__main__":
    main()

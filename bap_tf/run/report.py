"""The run report: ``report.json`` (a contract other tools read), ``report.md`` and plots.

``build_report`` turns what the eval stage measured into one JSON-ready dict;
``write_report`` writes it, the Markdown page and the PNG plots (matplotlib, Agg backend), each
file atomically. Fields of ``report.json`` (``REPORT_VERSION`` 1), fractions in [0, 1]:

- ``budget``, ``budget_metric``, ``sharing_loss``, ``dataset``, ``backbone_name``, ``config``;
- ``backbone {params, macs}``: the single-domain backbone, no head;
- ``pruned {params, macs, params_ratio, macs_ratio, mask_bits, weight_params}``: the
  union-pruned multi-domain model, shared weights once plus every domain's BatchNorms, head and
  1-bit channel masks (``params`` counts 32 mask bits as one parameter; ``weight_params``
  leaves them out); ratios are to the backbone;
- ``union_fraction``: the switchable cost the union of the domains keeps (the budget metric);
- ``domains {name: {...}}``: ``accuracy_masked`` (trained masked model, Keras),
  ``accuracy_pruned`` (union-pruned model, Keras), ``accuracy_own`` (the domain's own pruned
  model, Keras: what the int8 file and the default Android layout hold), ``accuracy_tflite`` (Android file, LiteRT;
  float32, or dynamic when only that was exported), ``accuracy_tflite_dynamic``,
  ``accuracy_tflite_int8`` (the domain's int8 file, LiteRT), ``accuracy_tflm`` (same file,
  TFLM), ``accuracy_qat``, ``kept_fraction``, ``params`` / ``macs`` (the domain's own pruned
  model), ``union_params`` / ``union_macs`` (the domain's path through the union model),
  ``tflite_int8_bytes``, ``tflm_arena_bytes``, ``reference_error``, ``s_score``,
  ``num_test_images``, ``num_device_images``; ``null`` where a stage or variant did not run;
- ``s_score`` (over ``accuracy_pruned``), ``s_score_max``, ``s_score_reference`` (which
  reference errors were used), ``reference_errors``, ``efficiency`` (S-score over the geometric
  mean of ``pruned.params_ratio`` and ``pruned.macs_ratio``);
- ``baselines``: ``feature_extractor`` and ``finetune``, each ``{domain: {accuracy, params,
  macs}}`` (one domain's model; ``null`` when not measured) and ``skipped`` (why a baseline is
  missing, or null);
- ``promise``: the files against the unpruned backbone's (``bap_tf.export.promise``): the
  Android file's stored parameters, bytes and per-signature latency, the int8 files' flash;
- ``latency_budget`` (``--budget_metric=latency`` only, else null; ``bap_tf.budgets.latency``):
  per domain the budget, the table's prediction and the Android signature's measured latency;
- ``android``, ``mcu`` (the flash/RAM budget check), ``layers`` (channels kept per switched
  conv and domain), ``training`` (epochs and the last epoch's logs), ``timings_s``.
"""

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bap_tf import metrics  # noqa: E402
from bap_tf.atomic import atomic_path, write_json, write_text  # noqa: E402
from bap_tf.budgets import latency as latency_lib  # noqa: E402
from bap_tf.export import promise as promise_lib  # noqa: E402

REPORT_VERSION = 1
PLOTS = {"kept_channels": "plots/kept_channels.png", "accuracy_vs_cost": "plots/accuracy_vs_cost.png"}
S_SCORE_ACCURACY = "accuracy_pruned"


def build_report(*, config, costs, accuracy, num_test, checks, extra_accuracy, manifest, mcu,
                 kept_fractions, union_fraction, layers, reference_errors, reference, history,
                 timings, baselines=None, promise=None):
    """The report dict (see the module docstring) from the eval stage's measurements.

    Args:
      config: the run's ``ExperimentConfig``.
      costs: ``bap_tf.prune.costs_report.prune_report`` output (the prune stage's costs.json).
      accuracy: ``{"masked": {domain: acc}, "pruned": {domain: acc}, "own": {domain: acc}}``, Keras,
        whole test split (``own``: each domain's own pruned model; optional).
      num_test: ``{domain: test images}``.
      checks: ``bap_tf.export.runtime_checks.run_checks`` output.
      extra_accuracy: ``{"dynamic": {domain: acc}, "qat": {domain: acc}}`` (either may be absent).
      manifest: the export stage's manifest; mcu: ``check_mcu_budget`` output or None.
      kept_fractions: ``{domain: kept fraction}``; union_fraction: float.
      layers: ``[{"name", "in_channels", "kept": {domain: n}, "union": n}]``.
      reference_errors: ``{domain: error}``; reference: how they were obtained.
      history: the train stage's history.json (or None); timings: ``{stage: seconds}``.
      baselines: ``bap_tf.run.baseline_cache.measured_baselines`` output (None: none measured).
      promise: ``{"layout", "android", "micro"}`` of ``bap_tf.export.promise`` (None: not measured).
    """
    union = costs["union"]
    backbone = costs["backbone"]
    domains = {}
    for name in config.domains:
        device = checks["domains"].get(name, {})
        device_accuracy = device.get("accuracy", {})
        own = costs.get("domains", {}).get(name, {})
        path = costs["union_per_domain"][name]
        domains[name] = {
            "accuracy_masked": accuracy["masked"][name],
            "accuracy_pruned": accuracy["pruned"][name],
            "accuracy_own": accuracy.get("own", {}).get(name),
            "accuracy_tflite": device_accuracy.get("tflite_float"),
            "accuracy_tflite_dynamic": extra_accuracy.get("dynamic", {}).get(
                name, _dynamic_only(manifest, device_accuracy)),
            "accuracy_tflite_int8": device_accuracy.get("tflite_int8"),
            "accuracy_tflm": device_accuracy.get("tflm"),
            "accuracy_qat": extra_accuracy.get("qat", {}).get(name),
            "kept_fraction": kept_fractions[name],
            "params": own.get("params_with_masks", own.get("params")),
            "macs": own.get("macs"),
            "params_ratio": costs.get("domain_ratio", {}).get(name, {}).get("params"),
            "macs_ratio": costs.get("domain_ratio", {}).get(name, {}).get("macs"),
            "union_params": path["params_with_masks"],
            "union_macs": path["macs"],
            "tflite_int8_bytes": device.get("micro_model_bytes"),
            "tflm_arena_bytes": device.get("arena_bytes"),
            "tflite_vs_keras_max_abs_logit_diff": (device.get("tflite_float_vs_keras") or {}).get("max_abs_logit_diff"),
            "tflm_vs_tflite_int8_argmax_agreement": (device.get("tflm_vs_tflite_int8") or {}).get("argmax_agreement"),
            "reference_error": reference_errors[name],
            "num_test_images": num_test[name],
            "num_device_images": device.get("num_images"),
        }
    errors = {name: 1.0 - domains[name][S_SCORE_ACCURACY] for name in config.domains}
    score, terms = metrics.s_score(errors, reference_errors)
    for name, term in terms.items():
        domains[name]["s_score"] = term
    ratios = costs["union_ratio"]
    return {
        "report_version": REPORT_VERSION,
        "dataset": config.dataset,
        "backbone_name": config.backbone,
        # What training asked for: --budget_ms or an MCU budget set it, not --budget.
        "budget": next(iter(costs.get("budget_check", {}).values()), {}).get("budget", config.budget),
        "budget_metric": config.budget_metric,
        "sharing_loss": config.sharing_loss,
        "sharing_weight": "learnable" if config.sharing_weight is None else config.sharing_weight,
        "backbone": {"params": backbone["params"], "macs": backbone["macs"]},
        "pruned": {
            "params": union["params_with_masks"],
            "macs": union["macs"],
            "params_ratio": ratios["params"],
            "macs_ratio": ratios["macs"],
            "mask_bits": union["mask_bits"],
            "weight_params": union["params"],
        },
        "union_fraction": union_fraction,
        "domains": domains,
        "s_score": score,
        "s_score_max": metrics.POINTS_PER_DOMAIN * len(config.domains),
        "s_score_accuracy": S_SCORE_ACCURACY,
        "s_score_reference": reference,
        "baselines": _baselines(config, baselines or {}),
        "reference_errors": reference_errors,
        "efficiency": metrics.efficiency(score, ratios["params"], ratios["macs"]),
        "mean_accuracy_pruned": sum(d["accuracy_pruned"] for d in domains.values()) / len(domains),
        "android": manifest.get("android", {}),
        "promise": promise or {},
        "latency_budget": (latency_lib.report_entry(costs["latency"], config.android_layout, promise)
                           if "latency" in costs else None),
        "mcu": mcu,
        "mcu_estimate": costs.get("mcu_estimate"),
        "layers": layers,
        "training": _training_summary(history),
        "timings_s": timings,
        "config": config.to_dict(),
    }


def _baselines(config, measured):
    entry = {kind: measured.get(kind) for kind in ("feature_extractor", "finetune")}
    entry["skipped"] = None if entry["finetune"] else (
        "per-domain fine-tuning: not measured (--nobaselines)")
    return entry


def _dynamic_only(manifest, device_accuracy):
    """The Android accuracy when the dynamic file was the only Android file checked."""
    android = manifest.get("android", {})
    return device_accuracy.get("tflite_float") if "dynamic" in android and "float32" not in android else None


def _training_summary(history):
    if not history:
        return None
    logs = history.get("logs", {})
    last = {key: values[-1] for key, values in logs.items() if values}
    return {
        "epochs": history.get("model_epochs", history.get("epochs")),
        "seconds": sum(history.get("epoch_seconds", [])),
        "last_epoch": last,
    }


# -- writing ------------------------------------------------------------------------------
def write_report(report, directory):
    """Writes report.json, report.md and the plots under ``directory``; returns their paths."""
    paths = {"json": os.path.join(directory, "report.json"), "md": os.path.join(directory, "report.md")}
    for name, relative in PLOTS.items():
        paths[name] = os.path.join(directory, relative)
    plot_kept_channels(report, paths["kept_channels"])
    plot_accuracy_vs_cost(report, paths["accuracy_vs_cost"])
    write_text(paths["md"], markdown(report))
    write_json(paths["json"], report)
    return paths


def _save(figure, path):
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)


def plot_kept_channels(report, path):
    """Fraction of input channels kept per switched conv (in graph order), per domain and union."""
    layers = report["layers"]
    positions = list(range(len(layers)))
    figure, axis = plt.subplots(figsize=(max(7.0, min(18.0, 0.3 * len(layers))), 4.2))
    for index, name in enumerate(report["domains"]):
        axis.plot(positions, [layer["kept"][name] / layer["in_channels"] for layer in layers], marker="o",
                  markersize=3, linewidth=1, color=f"C{index % 10}", label=name)
    axis.plot(positions, [layer["union"] / layer["in_channels"] for layer in layers], color="black", linewidth=2.5,
              alpha=0.7, label="union (what pruning keeps)")
    axis.axhline(report["budget"], color="red", linestyle="--", linewidth=1, label=f"budget {report['budget']:g}")
    axis.set_xticks(positions)
    axis.set_xticklabels([_short(layer["name"]) for layer in layers], rotation=90, fontsize=6)
    axis.set_ylabel("input channels kept")
    axis.set_ylim(0, 1.05)
    axis.grid(alpha=0.3)
    axis.set_title(f"Channels kept per switched conv ({report['backbone_name']}, budget {report['budget']:g}, "
                   f"{report['sharing_loss']} sharing)")
    axis.legend(fontsize=7, ncol=3, loc="lower left")
    figure.tight_layout()
    _save(figure, path)


def _short(name):
    return name.replace("stage", "s").replace("_block", "b").replace("_conv", "")


def plot_accuracy_vs_cost(report, path):
    """Per domain: accuracy vs MACs relative to the backbone, reference -> pruned -> int8."""
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for index, (name, d) in enumerate(report["domains"].items()):
        colour = f"C{index % 10}"
        ratio = d["macs_ratio"] if d["macs_ratio"] is not None else report["pruned"]["macs_ratio"]
        reference = 1.0 - d["reference_error"]
        axis.plot([1.0, ratio], [reference, d["accuracy_pruned"]], color=colour, alpha=0.4)
        axis.scatter([1.0], [reference], color=colour, marker="x")
        axis.scatter([ratio], [d["accuracy_pruned"]], color=colour, marker="o", label=name)
        if d["accuracy_tflite_int8"] is not None:
            axis.scatter([ratio], [d["accuracy_tflite_int8"]], color=colour, marker="s", facecolors="none")
    axis.scatter([report["pruned"]["macs_ratio"]], [report["mean_accuracy_pruned"]], marker="*", s=160,
                 color="black", label="union model (mean)")
    save_accuracy_vs_cost(
        figure, axis, path, xlabel="MACs relative to the backbone (per-domain model; x = reference at 1.0)",
        ylabel="test accuracy (o Keras pruned, □ int8 file)",
        title=f"Accuracy vs cost (budget {report['budget']:g}, {report['sharing_loss']} sharing)",
    )


def save_accuracy_vs_cost(figure, axis, path, *, xlabel, ylabel, title, legend_loc="best"):
    """Labels, the [0, 1.1] x [0, 1.02] frame and the legend every accuracy-vs-cost plot shares,
    then an atomic PNG at ``path``."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_xlim(0, 1.1)
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.set_title(title)
    axis.legend(fontsize=7, loc=legend_loc)
    figure.tight_layout()
    _save(figure, path)


def fmt(value, spec=".3f", none="–"):
    """A number for a table: ``none`` for None or NaN (the report's and the benchmarks')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return none
    return format(value, spec)


def _count(value):
    if value is None:
        return "–"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.2f}{unit}"
    return f"{value:.0f}"


def _baseline_table(report):
    """The run next to the field's baselines, per domain (accuracy, params, MACs of the model
    that serves that domain), as Markdown lines."""
    baselines = report.get("baselines") or {}
    rows = [("feature extractor (frozen backbone + linear head)", baselines.get("feature_extractor")),
            ("per-domain fine-tuning (whole backbone, one per domain)", baselines.get("finetune"))]
    domains = report["domains"]
    lines = ["## The run next to the baselines", "",
             "| model | " + " | ".join(f"`{d}`" for d in domains) + " | mean | params | MACs |",
             "|---|" + "---:|" * (len(domains) + 3)]

    def add(label, accuracies, params, macs):
        values = [accuracies.get(d) for d in domains]
        mean = sum(values) / len(values) if None not in values else None
        lines.append(f"| {label} | " + " | ".join(fmt(v) for v in values) + f" | {fmt(mean)} | {params} | {macs} |")

    for label, entries in rows:
        if entries:
            add(label, {d: e["accuracy"] for d, e in entries.items()},
                _count(sum(e["params"] for e in entries.values())) + " (all domains)",
                _count(next(iter(entries.values()))["macs"]) + " per image")
    add("this run, masked (trained switches)", {d: v["accuracy_masked"] for d, v in domains.items()}, "–", "–")
    add("this run, union-pruned (Keras)", {d: v["accuracy_pruned"] for d, v in domains.items()},
        _count(report["pruned"]["params"]) + " (all domains)", _count(report["pruned"]["macs"]) + " (union)")
    if all(v.get("accuracy_own") is not None for v in domains.values()):
        params = [v["params"] for v in domains.values()]
        macs = [v["macs"] for v in domains.values()]
        add("this run, each domain's own pruned model (Keras)", {d: v["accuracy_own"] for d, v in domains.items()},
            _count(sum(params)) + " (all domains)" if None not in params else "–",
            f"{_count(min(macs))}–{_count(max(macs))}" if None not in macs else "–")
    for key, label in (("accuracy_tflite", "Android file"), ("accuracy_tflite_int8", "int8 file (LiteRT)"),
                       ("accuracy_tflm", "int8 file (TFLM)")):
        if any(v[key] is not None for v in domains.values()):
            add(f"this run, {label}", {d: v[key] for d, v in domains.items()}, "–", "–")
    lines.append("")
    if baselines.get("skipped"):
        lines += [f"Not measured: {baselines['skipped']}.", ""]
    chosen = _chosen_settings(baselines)
    if chosen:
        lines += [f"Settings each baseline chose on the held-back data: {chosen}.", ""]
    lines += ["Baselines trained and tested on the run's splits; the exported files run on the device subset "
              "of the test split. Params of the baselines: every domain's model together; MACs: one image.", ""]
    return lines


def _chosen_settings(baselines):
    """``"per-domain fine-tuning: digits Adam 0.001, augmentation off; ..."`` from the baselines'
    ``settings`` (those chosen on held-back data; "" when none was chosen)."""
    described = []
    for kind, label in (("feature_extractor", "feature extractor"), ("finetune", "per-domain fine-tuning")):
        entries = {d: e for d, e in (baselines.get(kind) or {}).items() if e.get("held_back") is not None}
        parts = []
        for domain, entry in entries.items():
            settings = entry["settings"]
            if "C" in settings:
                parts.append(f"`{domain}` C {settings['C']:g}")
            else:
                parts.append(f"`{domain}` Adam {settings['learning_rate']:g}, "
                             f"augmentation {'on' if settings['augment'] else 'off'}")
        if parts:
            described.append(f"{label}: " + "; ".join(parts))
    return "; ".join(described)


def markdown(report):
    """The human-readable report page."""
    config = report["config"]
    domains = report["domains"]
    lines = [
        f"# bap-tf report: {report['dataset']}, budget {report['budget']:g}, {report['sharing_loss']} sharing loss",
        "",
        f"Backbone `{report['backbone_name']}`"
        + (f" (width {config['width']})" if report["backbone_name"] == "resnet26" else "")
        + f", {config['image_size']} px, domains {', '.join(f'`{d}`' for d in domains)}; "
        f"budget metric {report['budget_metric']}, sharing weight {report['sharing_weight']}; "
        f"{config['epochs']} epochs, batch {config['batch_size']} per domain, seed {config['seed']}.",
        "",
        "## Cost",
        "",
        "| model | params | MACs | params / backbone | MACs / backbone |",
        "|---|---:|---:|---:|---:|",
        f"| backbone (single domain, no head) | {_count(report['backbone']['params'])} | "
        f"{_count(report['backbone']['macs'])} | 1 | 1 |",
        f"| union-pruned multi-domain model ({len(domains)} domains) | {_count(report['pruned']['params'])} | "
        f"{_count(report['pruned']['macs'])} | {fmt(report['pruned']['params_ratio'])} | "
        f"{fmt(report['pruned']['macs_ratio'])} |",
    ]
    for name, d in domains.items():
        lines.append(f"| `{name}` alone (pruned to its switches) | {_count(d['params'])} | {_count(d['macs'])} | "
                     f"{fmt(d['params_ratio'])} | {fmt(d['macs_ratio'])} |")
    lines += [
        "",
        f"The union of the domains keeps {report['union_fraction']:.1%} of the switchable {report['budget_metric']}. "
        f"Union-model params include {report['pruned']['mask_bits']} mask bits (32 bits = 1 parameter).",
        "",
        "## Accuracy (test split)",
        "",
        "| domain | kept | masked | pruned | TFLite | TFLite dynamic | int8 (LiteRT) | int8 (TFLM) | QAT | int8 file "
        "| TFLM arena | reference | S |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, d in domains.items():
        size = "–" if d["tflite_int8_bytes"] is None else f"{d['tflite_int8_bytes'] / 1024:.1f} KiB"
        arena = "–" if d["tflm_arena_bytes"] is None else f"{d['tflm_arena_bytes'] / 1024:.1f} KiB"
        lines.append(
            f"| `{name}` | {fmt(d['kept_fraction'], '.2f')} | {fmt(d['accuracy_masked'])} | "
            f"{fmt(d['accuracy_pruned'])} | "
            f"{fmt(d['accuracy_tflite'])} | {fmt(d['accuracy_tflite_dynamic'])} | {fmt(d['accuracy_tflite_int8'])} | "
            f"{fmt(d['accuracy_tflm'])} | {fmt(d['accuracy_qat'])} | {size} | {arena} | "
            f"{fmt(1 - d['reference_error'])} | {fmt(d['s_score'], '.0f')} |"
        )
    first = next(iter(domains.values()))
    lines += [
        "",
        f"Keras accuracies use the whole test split ({first['num_test_images']} images for `{next(iter(domains))}`); "
        f"the exported files run on {first['num_device_images'] or 0} images per domain. "
        "`kept`: the domain's kept fraction of the switchable cost (budget "
        f"{report['budget']:g}). `reference`: accuracy of the S-score reference.",
        "",
        *_baseline_table(report),
        "## Scores",
        "",
        f"- **S-score: {report['s_score']:.0f}** of {report['s_score_max']:.0f} "
        f"(over `{report['s_score_accuracy']}`; 250 per domain at the reference error, 1000 at error 0).",
        f"- S-score reference: {report['s_score_reference']}.",
        f"- **Efficiency: {report['efficiency']:.0f}** "
        "(S-score / sqrt(params ratio x MACs ratio of the union-pruned model)).",
        f"- Mean accuracy of the union-pruned model: {report['mean_accuracy_pruned']:.3f}.",
        "",
        "## Deployment",
        "",
    ]
    for variant, entry in report["android"].items():
        lines.append(f"- Android, {variant}: `{entry['path']}` ({entry['bytes'] / 1024:.1f} KiB, "
                     "one signature per domain)")
    lines += promise_lib.describe(report.get("promise") or {})
    lines += latency_lib.describe(report.get("latency_budget"))
    mcu = report["mcu"]
    if mcu:
        verdict = "every domain fits" if mcu["fits"] else "**some domains do not fit**"
        lines.append(f"- Microcontroller budget (flash {mcu['flash_kb']:g} KiB, RAM {mcu['ram_kb']:g} KiB): {verdict}.")
        estimates = report.get("mcu_estimate") or {}
        for name, entry in mcu["domains"].items():
            estimate = estimates.get(name)
            guess = ("" if estimate is None else f"; trained to the estimates {estimate['flash_bytes'] / 1024:.1f} "
                     f"and {estimate['ram_bytes'] / 1024:.1f} KiB")
            lines.append(f"  - `{name}`: model {entry['model_kb']:.1f} KiB (margin {entry['flash_margin_kb']:.1f}), "
                         f"arena {entry['arena_kb']:.1f} KiB (margin {entry['ram_margin_kb']:.1f}){guess}")
    if not report["android"] and not mcu:
        lines.append("- Nothing was exported (run bap-export).")
    training = report["training"]
    if training:
        lines += ["", "## Training", "", f"{training['epochs']} epochs in {training['seconds']:.0f} s."]
        last = training["last_epoch"]
        if "union" in last:
            lines.append(f"Last epoch: loss {fmt(last.get('loss'))}, union {fmt(last.get('union'))}, "
                         f"sharing weight {fmt(last.get('sharing_weight'))}.")
    if report["timings_s"]:
        lines += ["", "Stage wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in report["timings_s"].items()) + "."]
    lines += [
        "",
        "## Plots",
        "",
        f"![channels kept per layer]({PLOTS['kept_channels']})",
        "",
        f"![accuracy vs cost]({PLOTS['accuracy_vs_cost']})",
        "",
        "Replay this run: `bap-train --flagfile=WORKDIR/flags.cfg --workdir=WORKDIR`.",
        "",
    ]
    return "\n".join(lines)

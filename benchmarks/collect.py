"""Rewrites the "Latest results" section of ``benchmarks/README.md`` from ``results/*.md``.

For each benchmark, the full-mode page when there is one, else the quick-mode page, each with
the line that says when, where and how it was measured.

    python -m benchmarks.collect
"""

import re

from bap_tf.atomic import write_text
from benchmarks import common, frontier

README = common.RESULTS.parent / "README.md"
PLOTS = {"latency": "latency vs MACs"}
ORDER = ("main_job", "main_job_avx2", "quickstart", "cpu_isa", "recipes", "finetune_recipe", "frontier",
         "frontier_finetune_before", "export", "latency", "android_layouts", "latency_budget", "mcu_budget",
         "training_overhead", "decathlon_shape")
SECTION = "## Latest results"


def page(name):
    for quick in (False, True):
        path = common.results_path(name, quick, "md")
        if path.exists():
            text = path.read_text()
            text = re.sub(r"^<!--.*?-->\n", "", text)  # the "do not edit" comment
            # One level down: the README's section is "##", each benchmark's page a "###".
            text = re.sub(r"^## ", "### ", text, flags=re.MULTILINE)
            # A page's images sit beside it in results/, one folder below this README.
            text = re.sub(r"(!\[[^\]]*\]\()([^/():]+\))", rf"\1{path.parent.name}/\2", text)
            return text.strip(), path
    return None, None


def latest(name):
    """The full-mode results of ``name``, else the quick-mode ones, else None."""
    return common.read_results(name, False) or common.read_results(name, True)


def targets():
    """One row per target of the issue, from the latest results."""
    rows = []
    curves = latest("frontier")
    if curves and curves.get("comparison"):
        gaps = {loss: e for loss, e in curves["comparison"].items() if e}
        best = max(gaps, key=lambda loss: gaps[loss]["min_gap"]) if gaps else None
        rows.append([
            "frontier: the best sharing loss above `none` at every union-MACs level both reach", curves["mode"],
            f"`{best}`: smallest gap {gaps[best]['min_gap'] * 100:+.1f} points" if best else "no level in common",
            common.verdict(any(e["above"] for e in gaps.values())),
        ])
    if curves and curves.get("sharing"):
        met = [loss for loss, e in curves["sharing"].items() if e["met"]]
        rows.append([
            f"sharing at β {frontier.SHARING_BUDGET:g}: MACs ≤ {frontier.MACS_TARGET:g} × backbone, accuracy within "
            f"{frontier.ACCURACY_TOLERANCE * 100:g} points of `none`", curves["mode"],
            "; ".join(f"`{loss}` MACs {e['macs_ratio']:.3f}, Δacc {e['accuracy_gap'] * 100:+.1f}"
                      for loss, e in curves["sharing"].items()),
            common.verdict(bool(met)) + (f" (by {', '.join(met)})" if met else ""),
        ])
    latency = latest("latency")
    if latency:
        for shape, by_variant in latency["summary"].items():
            for variant, by_model in by_variant.items():
                if "threads" in by_model:  # a results file from before variants: not comparable
                    continue
                for model, entry in by_model.items():
                    worst = "; ".join(f"{t} thr {c['worst']:.2f}" for t, c in entry["threads"].items())
                    rows.append([f"latency ({shape}, `{variant}`, {model}): latency ratio ÷ MACs ratio "
                                 f"≤ {entry['target']}",
                                 latency["mode"], f"worst {worst}", common.verdict(entry["met"])])
    overhead = latest("training_overhead")
    if overhead:
        s = overhead["summary"]
        rows.append(["training overhead: time per image ≤ 1.5 × plain fine-tuning", overhead["mode"],
                     f"{s['time_ratio']:.2f}×", common.verdict(s["met"])])
    return common.markdown_table(["target", "mode", "measured", "verdict"], rows, align="llll") if rows else ""


def main():
    parts = [SECTION, "", "Targets (each from the latest results below):", "", targets(), ""]
    for name in ORDER:
        text, path = page(name)
        if text is None:
            parts += [f"### {name}", "", f"Not run yet: `python -m benchmarks.{name}`.", ""]
            continue
        parts += [text, "", f"(`{path.relative_to(common.ROOT)}`; JSON beside it.)", ""]
        if name in PLOTS:
            for quick in (False, True):
                plot = common.results_path(name, quick, "png")
                if plot.exists() and path.stem.endswith("-quick") == quick:
                    parts += [f"![{PLOTS[name]}]({plot.relative_to(README.parent)})", ""]
    readme = README.read_text()
    head = readme.split(SECTION)[0].rstrip() + "\n\n"
    write_text(README, head + "\n".join(parts).rstrip() + "\n")
    print(f"updated {README.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()

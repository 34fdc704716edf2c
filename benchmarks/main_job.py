"""The README's main job, timed: ``bap-train --flagfile=flags/pocket.cfg``, every stage.

Runs the command in a fresh ``runs/benchmarks/main_job`` (the pocket data already built;
``setup.sh`` on a fresh machine takes about 100 s more) and records its wall time, each
stage's, and the report's figures (accuracies of every model and file, costs, the baselines,
the S-score) in ``results/main_job.json`` and ``.md``. ``flags/pocket.cfg``'s header quotes this
record (``tests/cli/test_flagfiles.py`` checks that it does).

    python -m benchmarks.main_job     # about 10 minutes on 2 cores
"""

import os
import shutil
import subprocess
import sys
import time

from benchmarks import common, pocket_runs

NAME = "main_job"
WORKDIR = pocket_runs.RUNS / "main_job"


def measure(results_dir):
    """Runs the main job; returns its figures, recorded too as the pocket run they are (the
    recipes and frontier benchmarks find it by its flags)."""
    shutil.rmtree(WORKDIR, ignore_errors=True)
    load = [round(v, 2) for v in os.getloadavg()]
    command = [sys.executable, "-m", "bap_tf.cli.train", f"--flagfile={pocket_runs.FLAGFILE}", f"--workdir={WORKDIR}"]
    start = time.perf_counter()
    subprocess.run(command, cwd=common.ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - start
    report = pocket_runs._read(WORKDIR / "report.json")
    timings = pocket_runs._read(WORKDIR / "timings.json")
    values = pocket_runs.flagfile_values()
    flags = pocket_runs.run_flags(values["sharing_loss"], float(values["budget"]), int(values["seed"]), False)
    pocket_runs.write_record(flags, False, results_dir, report, timings, load, main_job=True)
    domains = report["domains"]
    return {
        "wall_s": round(wall, 1), "wall_min": round(wall / 60, 1),
        "effective_flags": pocket_runs.effective_flags({"flagfile": pocket_runs.FLAGFILE}),
        **pocket_runs.summarize_report(report, timings),
        "stage_min": {stage: round(seconds / 60, 1) for stage, seconds in timings.items()},
        "accuracy_tflite": {d: v["accuracy_tflite"] for d, v in domains.items()},
        "accuracy_tflite_int8": {d: v["accuracy_tflite_int8"] for d, v in domains.items()},
        "accuracy_tflm": {d: v["accuracy_tflm"] for d, v in domains.items()},
        "tflite_int8_kib": {d: round(v["tflite_int8_bytes"] / 1024, 1) for d, v in domains.items()},
        "tflm_arena_kib": {d: round(v["tflm_arena_bytes"] / 1024, 1) for d, v in domains.items()},
        "s_score_reference": report["s_score_reference"], "efficiency": report["efficiency"],
        "mcu_fits": (report["mcu"] or {}).get("fits"),
    }


def markdown(record):
    m = record["measured"]
    domains = list(m["accuracy"])
    baselines = m.get("baselines") or {}
    rows = []
    for label, kind in (("feature extractor", "feature_extractor"), ("per-domain fine-tuning", "finetune")):
        if baselines.get(kind):
            rows.append([label, *(common.fmt(baselines[kind][d]["accuracy"]) for d in domains), "1 per domain"])
    rows.append(["this run, union-pruned (Keras)", *(common.fmt(m["accuracy"][d]) for d in domains),
                 common.fmt(m["macs_ratio"])])
    rows.append(["this run, int8 file (TFLM)", *(common.fmt(m["accuracy_tflm"][d]) for d in domains), "–"])
    return "\n".join([
        "### The README's main job (`flags/pocket.cfg`, every stage)", "",
        f"Wall time {m['wall_s']:.0f} s ({m['wall_min']} min) with the pocket data built; stages: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in m["timings_s"].items()) + ".", "",
        common.markdown_table(["model", *domains, "MACs / backbone"], rows), "",
        f"Mean accuracy of the union-pruned model {m['mean_accuracy']:.3f}; S-score {m['s_score']:.0f} "
        f"({m['s_score_reference'].split(':')[0]} reference).",
    ])


def main():
    args = common.parser(__doc__).parse_args()
    record = common.start_record(NAME, args.quick, {"flagfile": pocket_runs.FLAGFILE})
    record["measured"] = measure(args.results_dir)
    common.write_results(record, markdown(record), args.results_dir)


if __name__ == "__main__":
    main()

"""The README's main job, timed: ``bap-train --flagfile=flags/pocket.cfg``, every stage.

Runs the command in a fresh ``runs/benchmarks/main_job`` with an empty baseline cache, as a
first run on a machine does (the pocket data already built;
``setup.sh`` on a fresh machine takes about 100 s more) and records its wall time, each
stage's, and the report's figures (accuracies of every model and file, costs, the baselines,
the S-score) in ``results/main_job.json`` and ``.md``. ``flags/pocket.cfg``'s header quotes this
record (``tests/cli/test_flagfiles.py`` checks that it does).

    python -m benchmarks.main_job                      # about 10 minutes on 2 cores
    python -m benchmarks.main_job --max_cpu_isa=AVX2   # the same as a CPU without AVX-512 runs it
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from bap_tf.export import promise as promise_lib
from benchmarks import common, pocket_runs

NAME = "main_job"
WORKDIR = pocket_runs.RUNS / "main_job"


def measure(results_dir, max_cpu_isa=""):
    """Runs the main job; returns its figures. On the machine's own instruction set they are
    recorded too as the pocket run they are (the recipes and frontier benchmarks find it by its
    flags); ``max_cpu_isa`` (oneDNN's ``ONEDNN_MAX_CPU_ISA``, e.g. ``AVX2``) runs it as a CPU
    with at most that instruction set would, in its own workdir."""
    workdir = WORKDIR.with_name(f"main_job_{max_cpu_isa.lower()}") if max_cpu_isa else WORKDIR
    shutil.rmtree(workdir, ignore_errors=True)
    load = [round(v, 2) for v in os.getloadavg()]
    command = [sys.executable, "-m", "bap_tf.cli.train", f"--flagfile={pocket_runs.FLAGFILE}", f"--workdir={workdir}"]
    # An empty baseline cache: the time is a first run's on a machine, baselines measured included.
    cache = tempfile.mkdtemp(prefix="bap_tf_baselines_")
    env = {**os.environ, "BAP_TF_BASELINE_CACHE": cache, **({"ONEDNN_MAX_CPU_ISA": max_cpu_isa} if max_cpu_isa else {})}
    start = time.perf_counter()
    try:
        subprocess.run(command, cwd=common.ROOT, check=True, capture_output=True, env=env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    wall = time.perf_counter() - start
    report = pocket_runs._read(workdir / "report.json")
    timings = pocket_runs._read(workdir / "timings.json")
    if not max_cpu_isa:
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
        # The Android file and the int8 files against the unpruned backbone's (export.promise).
        "promise": report.get("promise") or {},
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
        "### The README's main job (`flags/pocket.cfg`, every stage)"
        + (f", oneDNN limited to {record['settings']['max_cpu_isa']}"
           if record["settings"].get("max_cpu_isa") else ""), "",
        f"Wall time {m['wall_s']:.0f} s ({m['wall_min']} min) with the pocket data built; stages: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in m["timings_s"].items()) + ".", "",
        common.markdown_table(["model", *domains, "MACs / backbone"], rows), "",
        f"Mean accuracy of the union-pruned model {m['mean_accuracy']:.3f}; S-score {m['s_score']:.0f} "
        f"({m['s_score_reference'].split(':')[0]} reference).", "",
        *promise_lib.describe(m.get("promise") or {}),
    ])


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--max_cpu_isa", default="", help="oneDNN's ONEDNN_MAX_CPU_ISA for the run (e.g. AVX2: "
                        "what a CPU without AVX-512 computes); results go to main_job_<isa>.json")
    args = parser.parse_args()
    name = f"{NAME}_{args.max_cpu_isa.lower()}" if args.max_cpu_isa else NAME
    record = common.start_record(name, args.quick, {"flagfile": pocket_runs.FLAGFILE, "max_cpu_isa": args.max_cpu_isa},
                                 module=NAME)
    record["measured"] = measure(args.results_dir, args.max_cpu_isa)
    common.write_results(record, markdown(record), args.results_dir)


if __name__ == "__main__":
    main()

"""Pocket-benchmark runs that several benchmarks share: the ``bap-train`` chain, run once.

``run_pocket(sharing_loss, budget, seed, quick, stages)`` runs ``bap-train --stages=...`` (the
real command, in a child process, so every run starts from a fresh TensorFlow) into
``runs/benchmarks/<mode>/pocket_<loss>_b<budget>_s<seed>/`` and returns its ``report.json``.
A later benchmark asking for the same run finds it there and only runs the stages it still
lacks: the frontier trains the runs the recipes, export and latency benchmarks read again.
Delete ``runs/benchmarks`` (git ignores ``runs/``) to start over.

Settings: full mode is the README's main job, ``flags/pocket.cfg`` (8 epochs of one pass over
the largest domain, batch 32 per domain, the shipped pocket backbone) with the benchmark's
budget, sharing loss and seed; quick mode trains ``QUICK`` epochs x steps and checks the
exported files on fewer images. A run is redone when the flags it ran with (flagfile included) differ
from what the flags ask for now (the library's defaults included).
"""

import datetime
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bap_tf.config import SHARING_LOSSES
from benchmarks.common import ROOT

RUNS = ROOT / "runs" / "benchmarks"
STAGES = ("train", "prune", "export", "eval")
# Every run starts from the README's main job; quick mode trains and checks less.
FLAGFILE = "flags/pocket.cfg"
FULL = {}
QUICK = {"epochs": 2, "steps_per_epoch": 30, "eval_examples": 100, "calibration_examples": 64}
# The S-score reference (frozen backbone + logistic regression per domain, bap_tf.run.baseline_models)
# depends on neither the budget, the sharing loss nor the mode: measured once (about two minutes
# on 2 cores) and handed to every run with --reference_errors.
REFERENCE = "reference_errors.json"
# What a benchmark run leaves in its workdir: the flags and the stages that completed with them.
MARKER = "benchmark_run.json"
LOG = "benchmark_run.log"
# Files benchmarks derive from the reduced models (e.g. latency's .tflite), dropped on a new prune.
DERIVED = "benchmark_tflite"


# Flags that add to a run's report without changing its figures: a record or a finished stage
# made with other values still counts. Benchmark runs leave the baselines out (minutes per run,
# the same for every budget and loss): ``shared_baselines`` measures them once per seed.
REPORT_ONLY_FLAGS = frozenset({"reference_errors", "baselines"})


def run_flags(sharing_loss, budget, seed, quick, extra=None, runs_dir=RUNS):
    """The ``bap-train`` flags of one benchmark run, in order (``extra`` overrides).

    The README's main job (``flags/pocket.cfg``) first, then what the benchmark varies: absl
    lets the last value of a flag win.
    """
    flags = {"flagfile": FLAGFILE, **(QUICK if quick else FULL), "budget": budget,
             "sharing_loss": sharing_loss, "seed": seed,
             "reference_errors": os.path.relpath(Path(runs_dir) / REFERENCE, ROOT),
             "baselines": "false"}
    flags.update(extra or {})
    return flags


def run_name(flags, quick):
    """``pocket_<loss>_b<budget>_s<seed>``, then ``_<flag><value>`` for every other flag a
    benchmark sets beyond the mode's (``extra``), so each recipe gets its own workdir."""
    name = f"pocket_{flags['sharing_loss']}_b{flags['budget']:g}_s{flags['seed']}"
    base = run_flags(flags["sharing_loss"], flags["budget"], flags["seed"], quick)
    for flag in sorted(flags):
        if flag not in REPORT_ONLY_FLAGS | {"flagfile"} and base.get(flag) != flags[flag]:
            name += f"_{flag}{flags[flag]}"
    return name


def workdir_of(flags, quick, runs_dir=RUNS):
    return Path(runs_dir) / ("quick" if quick else "full") / run_name(flags, quick)


def _read(path):
    with open(path) as f:
        return json.load(f)


def flagfile_values(path=FLAGFILE):
    """``{flag: value string}`` of an absl flagfile (nested ``--flagfile`` lines read in place)."""
    values = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.lstrip("-").partition("=")
        if name == "flagfile":
            values.update(flagfile_values(value))
        elif not _:  # a boolean: --name or --noname
            values[name[2:] if name.startswith("no") else name] = "false" if name.startswith("no") else "true"
        else:
            values[name] = value
    return values


def effective_flags(flags):
    """What ``bap-train`` runs with: the flagfile's flags, then the benchmark's (the last wins),
    resolved by ``resolve_flags``."""
    values = flagfile_values(flags["flagfile"])
    values.update({name: str(value) for name, value in flags.items() if name != "flagfile"})
    return resolve_flags(values)


def resolve_flags(values):
    """``{flag: value}`` of every ``bap-train`` flag: each of ``values`` (strings, as on a command
    line) parsed as ``bap-train`` parses it, the library's default for every other. The defaults
    are part of a run's identity: when one changes, the runs and records that relied on it stop
    counting instead of standing for what the flags would do now."""
    from bap_tf.config import resolve_android_layout

    defined = _bap_train_flags()
    unknown = sorted(set(values) - set(defined))
    if unknown:
        raise ValueError(f"not bap-train flags: {', '.join(unknown)}. Received: {values}")
    resolved = {name: defined[name].parser.parse(values[name]) if name in values else defined[name].default
                for name in sorted(defined) if name != "workdir"}
    # What the run computes: "auto" is the layout it stands for.
    resolved["android_layout"] = resolve_android_layout(resolved["android_layout"], resolved["finetune_epochs"],
                                                        resolved["budget_metric"])
    return resolved


@functools.cache
def _bap_train_flags():
    from absl import flags as absl_flags

    from bap_tf.cli import flags as cli_flags

    values = absl_flags.FlagValues()
    cli_flags.define_experiment_flags(values)
    return {name: values[name] for name in values}


def _done_stages(workdir, flags):
    """Stages done in ``workdir`` for these flags. The marker keeps the flags as the flagfile
    read then, so an edit of the flagfile that changes what this run would do makes it stale,
    and one that does not (e.g. to a flag that quick mode overrides) does not; one that changes
    only ``POST_TRAIN_FLAGS`` keeps the training."""
    marker = workdir / MARKER
    if not marker.exists():
        return []
    saved = _read(marker)
    then, now = _without(with_new_flags(saved.get("effective_flags", {}))), _without(effective_flags(flags))
    stale = sorted(name for name in set(then) | set(now) if then.get(name) != now.get(name))
    if stale and set(stale) <= POST_TRAIN_FLAGS and "train" in saved["stages"]:
        print(f"  {workdir.name}: flags changed after training ({', '.join(stale)}): keeping its training", flush=True)
        return ["train"]
    if stale:
        print(f"  {workdir.name} is stale (flags changed: {', '.join(stale)}): redoing it", flush=True)
        return []
    return saved["stages"]


# Flags added to bap-train since runs were first recorded, with the value that does what the code
# did before they existed: a run recorded without one ran with that value.
ADDED_FLAGS = {"finetune_schedule": "constant", "distill_weight": 0.0, "finetune_augment": False,
               "latency_table": "", "budget_ms": 0.0, "read_runs": False}


def with_new_flags(saved):
    """A run's saved effective flags, plus each of ``ADDED_FLAGS`` it lacks at its former value."""
    if not saved:
        return saved
    return {**ADDED_FLAGS, **saved}


def _without(flags, names=REPORT_ONLY_FLAGS):
    return {k: v for k, v in flags.items() if k not in names}


def _needed(done, stages):
    """Stages to run: the requested ones not done, plus every stage after the first of them
    (a stage redone makes the later ones stale); ``eval`` follows a new export."""
    wanted = [s for s in STAGES if s in stages]
    missing = [s for s in wanted if s not in done]
    if not missing:
        return []
    first = STAGES.index(missing[0])
    rerun = [s for s in STAGES[first:] if s in wanted or s in done]
    if "export" in rerun and "eval" not in rerun:
        rerun.append("eval")
    return rerun


def run_pocket(sharing_loss, budget, seed, quick, stages=("train", "prune", "eval"), runs_dir=RUNS, extra=None):
    """Runs (or finds) one pocket run; returns ``{"workdir", "flags", "config", "report",
    "timings", "ran"}`` (``report`` is ``report.json`` when ``eval`` was among the stages,
    ``ran`` the stages this call ran)."""
    flags = run_flags(sharing_loss, budget, seed, quick, extra, runs_dir)
    shared_reference(runs_dir)
    workdir = workdir_of(flags, quick, runs_dir)
    done = _done_stages(workdir, flags)
    if not done and workdir.exists():
        # Another setting's (or an interrupted) run: bap-train would take its model as trained.
        shutil.rmtree(workdir)
    if not done and "train" in stages:
        done = _copy_same_run(workdir, flags, quick, runs_dir) or _share_training(workdir, flags, quick, runs_dir)
    needed = _needed(done, stages)
    if needed:
        if "prune" in needed and workdir.exists():
            # Files other benchmarks converted from the previous reduced models are stale now.
            shutil.rmtree(workdir / DERIVED, ignore_errors=True)
        # One stage per command, recorded as it completes: a later stage that fails (or is
        # interrupted) does not cost the earlier ones, which the next call finds done.
        for stage in needed:
            _bap_train(workdir, flags, [stage])
            done = sorted(set(done) | {stage}, key=STAGES.index)
            marker = {"flags": flags, "effective_flags": effective_flags(flags), "stages": done}
            (workdir / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    report = _read(workdir / "report.json") if "eval" in stages else None
    timings = _read(workdir / "timings.json") if (workdir / "timings.json").exists() else {}
    return {"workdir": workdir, "flags": flags, "config": _read(workdir / "config.json"), "report": report,
            "timings": timings, "ran": needed, "effective_flags": effective_flags(flags)}


# Flags that act only after training: runs that differ only in these train the same model.
POST_TRAIN_FLAGS = frozenset({
    "finetune_epochs", "finetune_learning_rate", "finetune_batch_size", "finetune_layers", "finetune_schedule",
    "finetune_augment", "distill_weight", "whole_union",
    "channel_multiple", "dense_reads", "read_runs", "android_layout", "quantize", "calibration_examples", "qat_epochs",
    "eval_examples", "reference_errors", "enforce_mcu_budget",
})  # not the board's flash and RAM: under --budget_metric=mcu they drive training
# What the train stage leaves in a workdir (model, history, resumable backup, its wall time).
TRAIN_FILES = ("model.keras", "history.json", "backup", "timings.json")


def _copy_same_run(workdir, flags, quick, runs_dir):
    """Copies whole into ``workdir`` a run of another name that ran with the same flags (e.g. one
    named before its benchmark spelled out a value the flagfile gives anyway); returns its stages,
    or ``[]`` when there is none."""
    wanted = _without(effective_flags(flags))
    for marker in sorted((Path(runs_dir) / ("quick" if quick else "full")).glob(f"*/{MARKER}")):
        saved = _read(marker)
        source = marker.parent
        if source == workdir or not saved.get("stages"):
            continue
        if _without(with_new_flags(saved.get("effective_flags", {}))) != wanted:
            continue
        shutil.copytree(source, workdir)
        copied = {**saved, "flags": flags, "effective_flags": effective_flags(flags), "copied_from": source.name}
        (workdir / MARKER).write_text(json.dumps(copied, indent=2) + "\n")
        print(f"  {workdir.name}: the same run as {source.name}, copied", flush=True)
        return saved["stages"]
    return []


def _share_training(workdir, flags, quick, runs_dir):
    """Copies the trained model of another run that differs only in ``POST_TRAIN_FLAGS`` (e.g.
    the same run without fine-tuning) into ``workdir``; returns ``["train"]``, or ``[]`` when
    no such run has trained."""
    wanted = _without(effective_flags(flags), POST_TRAIN_FLAGS | REPORT_ONLY_FLAGS)
    for marker in sorted((Path(runs_dir) / ("quick" if quick else "full")).glob(f"*/{MARKER}")):
        saved = _read(marker)
        source = marker.parent
        if source == workdir or "train" not in saved.get("stages", []):
            continue
        theirs = _without(with_new_flags(saved.get("effective_flags", {})), POST_TRAIN_FLAGS | REPORT_ONLY_FLAGS)
        if theirs != wanted:
            continue
        workdir.mkdir(parents=True, exist_ok=True)
        for name in TRAIN_FILES:
            path = source / name
            if path.is_dir():
                shutil.copytree(path, workdir / name)
            elif path.exists():
                if name == "timings.json":  # only the train stage's time is this run's too
                    (workdir / name).write_text(json.dumps({"train": _read(path).get("train")}) + "\n")
                else:
                    shutil.copy2(path, workdir / name)
        marker_data = {"flags": flags, "effective_flags": effective_flags(flags), "stages": ["train"],
                       "train_shared_from": source.name}
        (workdir / MARKER).write_text(json.dumps(marker_data, indent=2) + "\n")
        print(f"  {workdir.name}: training shared with {source.name}", flush=True)
        return ["train"]
    return []


def shared_reference(runs_dir=RUNS):
    """``RUNS/reference_errors.json``, measured first (in a child process) when missing."""
    path = Path(runs_dir) / REFERENCE
    if not path.exists():
        print(f"  measuring the S-score reference once: {path}", flush=True)
        code = f"from benchmarks.pocket_runs import write_reference; write_reference({str(path)!r})"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True)
    return path


def shared_baselines(seed, quick, runs_dir=RUNS, measure=True, extra=None):
    """The baselines (``bap_tf.run.baseline_models``) of the main job's settings at ``seed``, as its
    eval stage would measure them: ``RUNS/<mode>/baselines_s<seed>.json``, measured first (in a
    child process, a few minutes) when missing or made with other flags (``measure=False``:
    None then). Only the flags they depend on (``baselines.DEPENDS_ON``) can make them stale;
    ``extra`` overrides the main job's flags (e.g. a benchmark's fine-tuning schedule)."""
    from bap_tf.run.baseline_models import DEPENDS_ON

    flags = {**baseline_flags(seed, quick, runs_dir), **(extra or {})}
    path = Path(runs_dir) / ("quick" if quick else "full") / f"baselines_s{seed}.json"

    def identity(effective):
        return {name: effective.get(name) for name in DEPENDS_ON if name in _bap_train_flags()}

    if path.exists() and (identity(with_new_flags(_read(path).get("effective_flags", {})))
                          == identity(effective_flags(flags))):
        return _read(path)
    if not measure:
        return None
    print(f"  measuring the baselines of seed {seed}: {path}", flush=True)
    argv = [f"--{name}={value}" for name, value in flags.items()]
    code = f"from benchmarks.pocket_runs import write_baselines; write_baselines({str(path)!r}, {argv!r})"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True)
    record = _read(path)
    record["effective_flags"] = effective_flags(flags)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


# What the baselines (frozen backbone, per-domain fine-tuning) do not depend on either.
BASELINE_FREE = frozenset({"budget", "sharing_loss"})


def baseline_flags(seed, quick, runs_dir=RUNS):
    """The flags the baselines depend on: the main job's, without budget and sharing loss."""
    return {k: v for k, v in run_flags("none", 1.0, seed, quick, runs_dir=runs_dir).items()
            if k not in REPORT_ONLY_FLAGS | BASELINE_FREE}


def write_baselines(path, argv):
    """Both baselines of the config ``bap-train argv`` would run (child process of
    ``shared_baselines``), through the cross-run baseline cache (``bap_tf.run.baseline_cache``): the
    teachers a distilling run measured are these baselines, and are not measured again."""
    import dataclasses
    import tempfile

    from absl import flags as absl_flags

    from bap_tf.atomic import write_json
    from bap_tf.cli import flags as cli_flags
    from bap_tf.config import ExperimentConfig
    from bap_tf.run import baseline_cache
    from bap_tf.run.workdir import Workdir

    values = absl_flags.FlagValues()
    cli_flags.define_experiment_flags(values)
    values(["bap-train", "--workdir=unused", *argv])
    config = ExperimentConfig.from_dict(cli_flags.explicit_values(ExperimentConfig, values)).resolve()
    with tempfile.TemporaryDirectory() as folder:
        measured = baseline_cache.measured_baselines(dataclasses.replace(config, baselines=True),
                                                     Workdir(folder).create())
    write_json(path, measured)


def write_reference(path):
    """The feature-extractor reference of the pocket domains, as ``bap-train`` would measure it."""
    from bap_tf.atomic import write_json
    from bap_tf.config import ExperimentConfig
    from bap_tf.run import baseline_models

    config = ExperimentConfig(dataset="pocket").resolve()
    errors = {d: 1.0 - e["accuracy"] for d, e in baseline_models.feature_extractor(config).items()}
    write_json(path, {"kind": "feature_extractor", "description": baseline_models.DESCRIPTIONS["feature_extractor"],
                      "pretrained": config.pretrained, "errors": errors})


def _bap_train(workdir, flags, stages):
    command = [sys.executable, "-m", "bap_tf.cli.train", f"--workdir={workdir}", f"--stages={','.join(stages)}"]
    command += [f"--{name}={value}" for name, value in flags.items()]
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / LOG
    print(f"  running: {' '.join(command[1:])}  (log: {log.relative_to(ROOT)})", flush=True)
    start = time.perf_counter()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        status = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
        if status < 0:
            # Killed by a signal (TensorFlow has aborted with "double free or corruption" on a
            # busy machine): the stage starts over once from what the previous ones left.
            print(f"  stage killed by signal {-status}: running it again", flush=True)
            out.write(f"\n$ (again after signal {-status}) {' '.join(command)}\n")
            out.flush()
            status = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if status != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"bap-train failed (exit {status}) in {workdir}. Last lines of {log}:\n{tail}")
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)


# -- run records: each run's figures, committed, so a later session resumes without workdirs --
RECORDS = "pocket_runs"  # under the results directory: <mode>/<run name>.json


def record_path(flags, quick, results_dir):
    """``<run name>-<digest>.json``: the digest of the effective flags keeps the records of one
    run name made under different flagfiles (e.g. before and after a change of defaults)."""
    return (Path(results_dir) / RECORDS / ("quick" if quick else "full")
            / f"{run_name(flags, quick)}-{flags_digest(effective_flags(flags))}.json")


def flags_digest(effective):
    """8 hex digits naming a set of effective flags (report-only flags left out)."""
    text = json.dumps(_without(effective), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def summarize_report(report, timings):
    """The figures of ``report.json`` the benchmarks compare (small enough to commit)."""
    domains = report["domains"]
    summary = {
        "accuracy": {d: v["accuracy_pruned"] for d, v in domains.items()},
        "accuracy_masked": {d: v["accuracy_masked"] for d, v in domains.items()},
        # Each domain's own pruned model (reports from before it was measured lack it).
        "accuracy_own": {d: v.get("accuracy_own") for d, v in domains.items()},
        "mean_accuracy": report["mean_accuracy_pruned"],
        "mean_accuracy_masked": sum(v["accuracy_masked"] for v in domains.values()) / len(domains),
        "kept_fraction": {d: v["kept_fraction"] for d, v in domains.items()},
        "union_fraction": report["union_fraction"],
        "params_ratio": report["pruned"]["params_ratio"],
        "macs_ratio": report["pruned"]["macs_ratio"],
        "s_score": report["s_score"],
        "timings_s": timings,
        "wall_s": round(sum(v for v in timings.values() if v), 1),
    }
    if "baselines" in report:
        summary["baselines"] = report["baselines"]
    return summary


def find_record(sharing_loss, budget, seed, quick, results_dir, runs_dir=RUNS, extra=None):
    """The record of this run in ``results_dir`` when one was made with the same effective
    flags (the flagfile as it reads now included), else None."""
    flags = run_flags(sharing_loss, budget, seed, quick, extra, runs_dir)
    path = record_path(flags, quick, results_dir)
    if not path.exists():
        # The same run recorded under another name (another benchmark's, or before a default
        # changed): the digest of the effective flags says it is the same run.
        same = sorted(path.parent.glob(f"*-{path.stem.rsplit('-', 1)[1]}.json"))
        if not same:
            return None
        path = same[0]
    record = _read(path)
    if _without(record.get("effective_flags", {})) != _without(effective_flags(flags)):
        print(f"  {path.name} was recorded with other flags: it does not count", flush=True)
        return None
    return record


def pocket_record(sharing_loss, budget, seed, quick, results_dir, runs_dir=RUNS, extra=None):
    """One run's record: read from ``results_dir`` when a run with the same effective flags was
    recorded there, else run (``run_pocket``, stages train, prune, eval) and record it.

    A record keeps the flags, the commit, the machine (cores, load) and the figures of
    ``summarize_report``; it is written as soon as the run ends, so a long benchmark killed
    halfway loses only the run in progress.
    """
    record = find_record(sharing_loss, budget, seed, quick, results_dir, runs_dir, extra)
    if record is not None:
        return record
    flags = run_flags(sharing_loss, budget, seed, quick, extra, runs_dir)
    load = [round(v, 2) for v in os.getloadavg()]
    run = run_pocket(sharing_loss, budget, seed, quick, runs_dir=runs_dir, extra=extra)
    marker = _read(run["workdir"] / MARKER)
    return write_record(flags, quick, results_dir, run["report"], run["timings"], load,
                        train_shared_from=marker.get("train_shared_from"))


def write_record(flags, quick, results_dir, report, timings, load, **extra):
    """Writes (and returns) the record of a finished run of ``flags`` (see ``pocket_record``);
    ``load``: the load average when it started."""
    from bap_tf.atomic import write_json
    from benchmarks import common

    machine = common.machine_info()
    machine["load_average_1_5_15_at_start"] = load
    record = {
        "run": run_name(flags, quick), "mode": "quick" if quick else "full",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "code": common.code_version(), "machine": machine, "effective_flags": _without(effective_flags(flags)),
        **extra, **summarize_report(report, timings),
    }
    write_json(record_path(flags, quick, results_dir), record)
    return record


# -- the sharing loss export and latency measure -------------------------------------------
def main_job_loss():
    """The sharing loss of the README's main job (its flagfile, else the library default):
    export and latency measure the model a user gets."""
    return effective_flags({"flagfile": FLAGFILE})["sharing_loss"]


def parse_with_sharing_loss(parser):
    """Adds ``--sharing_loss`` to ``parser``, parses, and returns ``(args, loss, reason)``: the
    loss given, else ``main_job_loss()``."""
    parser.add_argument("--sharing_loss", choices=SHARING_LOSSES, default=None,
                        help=f"default: the main job's ({FLAGFILE})")
    args = parser.parse_args()
    if args.sharing_loss:
        return args, args.sharing_loss, "given with --sharing_loss"
    return args, main_job_loss(), f"the main job's ({FLAGFILE})"


def domain_names(report):
    return list(report["domains"]) if report else []

"""What every benchmark shares: the machine it ran on, its record, atomic result files, tables.

A benchmark builds one record with ``start_record`` (date, machine, command, settings), adds its
measurements, and hands it to ``write_results`` together with a Markdown page made of
``markdown_table``s: ``benchmarks/results/NAME.json`` and ``NAME.md`` (``NAME-quick.*`` in
``--quick`` mode, so a quick run never overwrites the full figures). Both land atomically.

Speed figures are ratios against a baseline measured in the same run: ``interleaved_medians``
times several candidates in alternating rounds, so that load from other processes on a shared
machine falls on every candidate alike.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

# Before bap_tf loads TensorFlow: no C++ info lines in a benchmark's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bap_tf.atomic import write_json, write_text  # noqa: E402
from bap_tf.run.report import fmt  # noqa: E402,F401  (benchmark tables format numbers as the report does)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("tensorflow", "keras", "ai-edge-litert", "tflite-micro", "numpy")


# -- the machine ------------------------------------------------------------------------------
def cpu_model():
    """``model name`` from /proc/cpuinfo (the first core's), or platform's guess elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def gpus():
    """GPUs TensorFlow sees ("none" when it sees none)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")] or "none"


def code_version():
    """The commit the benchmark ran on, and how many files differed from it (read-only git)."""
    import subprocess

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD") or None,
            "changed_files": len([line for line in git("status", "--porcelain").splitlines() if line])}


def machine_info():
    """Cores, CPU model, memory, GPU, load average and library versions of this machine."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu_model": cpu_model(),
        "memory_gib": memory_gib(),
        "gpu": gpus(),
        # The machine may be shared: a load above the core count slows every figure.
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


# -- the record -------------------------------------------------------------------------------
def command_line(module):
    """How this benchmark was invoked, as a command to paste."""
    return " ".join(["python", "-m", f"benchmarks.{module}", *map(shlex.quote, sys.argv[1:])])


def start_record(name, quick, settings, module=None):
    """The fields every results file starts with; the benchmark adds its measurements.
    ``module``: the benchmark's module when its results are not named after it."""
    return {
        "benchmark": name,
        "mode": "quick" if quick else "full",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "command": command_line(module or name),
        "code": code_version(),
        "settings": settings,
        "_started": time.perf_counter(),
    }


def results_path(name, quick, suffix, directory=RESULTS):
    return Path(directory) / f"{name}{'-quick' if quick else ''}.{suffix}"


def write_results(record, markdown, directory=RESULTS):
    """Writes ``NAME[-quick].json`` (the record) and ``NAME[-quick].md``; returns both paths."""
    record = dict(record)
    started = record.pop("_started", None)
    if started is not None:
        record["wall_s"] = round(time.perf_counter() - started, 1)
    quick = record["mode"] == "quick"
    header = (
        f"<!-- written by `{record['command']}`; do not edit -->\n"
        f"{describe_run(record)}\n\n"
    )
    json_path = write_json(results_path(record["benchmark"], quick, "json", directory), record)
    md_path = write_text(results_path(record["benchmark"], quick, "md", directory), header + markdown.rstrip() + "\n")
    print(f"wrote {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}")
    print(f"wrote {md_path.relative_to(ROOT) if md_path.is_relative_to(ROOT) else md_path}")
    return json_path, md_path


def read_results(name, quick, directory=RESULTS):
    """A results file written earlier, or None."""
    path = results_path(name, quick, "json", directory)
    if not path.exists():
        return None
    with open(path) as f:
        return json.load(f)


def describe_run(record):
    """One line: mode, date, machine and wall time, for the top of a Markdown page."""
    m = record["machine"]
    gpu = m["gpu"] if isinstance(m["gpu"], str) else ", ".join(m["gpu"])
    wall = f", {record['wall_s']:.0f} s" if "wall_s" in record else ""
    load = "/".join(f"{v:g}" for v in m["load_average_1_5_15"])
    return (
        f"*{record['mode']} mode, {record['date'][:10]}, {m['cores']} cores ({m['cpu_model']}), "
        f"GPU {gpu}, load average at start {load}{wall}; `{record['command']}`*"
    )


# -- tables -------------------------------------------------------------------------------
def markdown_table(headers, rows, align=None):
    """A GitHub Markdown table; ``align`` is a string of ``l``/``r`` per column (default: first
    column left, the rest right). Cells are written with ``str`` (format numbers first)."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def fmt_pm(values, spec=".3f"):
    """``mean ± std`` of a list (just the value when there is one)."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return format(values[0], spec)
    return f"{format(statistics.mean(values), spec)} ± {format(statistics.stdev(values), spec)}"


def fmt_summary_pm(summary, key):
    """``mean ± std`` of a summary over seeds (``summary[key]``, ``summary[key + "_std"]``), or the
    one seed's value."""
    if summary["seeds"] < 2:
        return fmt(summary[key])
    return f"{fmt(summary[key])} ± {fmt(summary[key + '_std'])}"


def fmt_bytes(value):
    if value is None:
        return "–"
    return f"{value / 1024:.1f} KiB" if value < 2**20 else f"{value / 2**20:.2f} MiB"


def verdict(met):
    return "**met**" if met else "**missed**"


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def std(values):
    values = [v for v in values if v is not None]
    return statistics.stdev(values) if len(values) > 1 else 0.0 if values else None


# -- timing ------------------------------------------------------------------------------
# -- command line -------------------------------------------------------------------------
def parser(doc):
    """An ``argparse`` parser with ``--quick`` and ``--results_dir``; the docstring is its help."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the few-minutes mode (fewer steps, seeds, runs)")
    p.add_argument("--results_dir", type=Path, default=RESULTS, help="where NAME.json and NAME.md go")
    return p


def step_timer():
    """A Keras callback whose ``times`` lists every training batch's wall time, in seconds.

    Keras is imported here, not at the top: the parent processes of some benchmarks never load it.
    """
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return StepTimer()


def peak_rss_mib():
    """This process's peak resident set size so far (``getrusage`` max RSS; KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

"""How much the CPU's instruction set moves a training run, and whether a setting pins it.

oneDNN picks its kernels by the CPU's instruction set at run time. This benchmark runs the main
job's train stage (``flags/pocket.cfg``, ``--stages=train``) once per oneDNN setting of
``SETTINGS`` on this machine and compares what they trained: the largest weight difference to
the machine's own run, the switches' kept fractions and the masked model's test accuracy per
domain. Two settings that train identical weights compute alike; a setting that makes a run
machine-independent would have to give identical weights whatever ``ONEDNN_MAX_CPU_ISA`` says.

    python -m benchmarks.cpu_isa            # 4 train stages: about 10 minutes on 2 cores
    python -m benchmarks.cpu_isa --quick    # 1 epoch of 20 steps each
"""

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np

from benchmarks import common, pocket_runs

NAME = "cpu_isa"
WORKDIRS = pocket_runs.RUNS / "cpu_isa"
# label -> the environment of the run.
SETTINGS = {
    "this machine": {},
    "ONEDNN_MAX_CPU_ISA=AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "TF_ENABLE_ONEDNN_OPTS=0": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "TF_ENABLE_ONEDNN_OPTS=0, ONEDNN_MAX_CPU_ISA=AVX2": {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}
QUICK = ["--epochs=1", "--steps_per_epoch=20"]


def weights(path):
    """``{name: array}`` of a ``.keras`` file's weights."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        found = {}
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
            h5.visititems(
                lambda name, item: found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return found


def max_difference(a, b):
    return max(float(np.max(np.abs(np.asarray(a[k], "float64") - np.asarray(b[k], "float64"))))
               for k in a if np.asarray(a[k]).dtype.kind == "f")


def masked_figures(workdir):
    """Kept fractions, union fraction and masked test accuracy per domain of a trained workdir."""
    from bap_tf import metrics
    from bap_tf.config import ExperimentConfig
    from bap_tf.data import eval_datasets
    from bap_tf.run import sources
    from bap_tf.run.workdir import Workdir

    config = ExperimentConfig.from_dict(json.loads((workdir / "config.json").read_text()))
    run = Workdir(workdir)
    masked = run.load_masked_model(config)
    accuracy = {}
    datasets = eval_datasets(sources.domain_sources(config, "test", run), batch_size=64, image_size=config.image_size)
    for index, (name, dataset) in enumerate(datasets.items()):
        labels = np.concatenate([y.numpy() for _, y in dataset])
        logits = masked.predict(dataset, verbose=0)[:, : masked.domains[index].num_classes]
        accuracy[name] = metrics.accuracy(logits, labels)
    return {"accuracy_masked": accuracy,
            "kept_fraction": dict(zip(masked.domain_names, map(float, masked.kept_fractions()))),
            "union_fraction": float(masked.union_fraction())}


def measure(quick):
    rows = {}
    for label, env in SETTINGS.items():
        workdir = WORKDIRS / ("quick" if quick else "full") / str(len(rows))
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"{label}: training in {workdir}", flush=True)
        command = [sys.executable, "-m", "bap_tf.cli.train", f"--flagfile={pocket_runs.FLAGFILE}",
                   f"--workdir={workdir}", "--stages=train", *(QUICK if quick else [])]
        subprocess.run(command, cwd=common.ROOT, check=True, capture_output=True, env={**os.environ, **env})
        rows[label] = {"env": env, "workdir": str(workdir), **masked_figures(workdir)}
    reference = weights(WORKDIRS / ("quick" if quick else "full") / "0" / "model.keras")
    for row in rows.values():
        row["max_weight_difference"] = max_difference(weights(os.path.join(row["workdir"], "model.keras")), reference)
    return rows


def markdown(record):
    rows = record["rows"]
    domains = list(next(iter(rows.values()))["accuracy_masked"])
    table = [[label, common.fmt(row["max_weight_difference"], ".3g"), common.fmt(row["union_fraction"]),
              *(common.fmt(row["accuracy_masked"][d]) for d in domains)] for label, row in rows.items()]
    return "\n".join([
        "### The main job's training under oneDNN settings (this machine)", "",
        common.markdown_table(["setting", "max weight difference to this machine's run", "union (MACs)",
                               *(f"`{d}` masked" for d in domains)], table), "",
        "Identical weights (difference 0) mean the two settings compute alike on this machine.",
    ])


def main():
    args = common.parser(__doc__).parse_args()
    record = common.start_record(NAME, args.quick, {"settings": SETTINGS, "flagfile": pocket_runs.FLAGFILE})
    record["rows"] = measure(args.quick)
    common.write_results(record, markdown(record), args.results_dir)


if __name__ == "__main__":
    main()

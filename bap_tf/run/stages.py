"""Runs the stages of a run in order and times them: train -> prune -> export -> eval."""

import time

from absl import logging

from bap_tf.atomic import read_json, write_json
from bap_tf.config import STAGES
from bap_tf.run.workdir import Workdir


def _stage(name):
    # Imported on use: a command that only evaluates need not load the trainer, and back.
    if name == "train":
        from bap_tf.run.train_stage import train
        return train
    if name == "prune":
        from bap_tf.run.prune_stage import prune
        return prune
    if name == "export":
        from bap_tf.run.export_stage import export
        return export
    from bap_tf.run.eval_stage import evaluate
    return evaluate


def check_run(config, workdir):
    """Checks what would otherwise stop the run after it started, before anything is written.

    The backbone's weights file, ``--quantize=qat``'s backbone and extra, and the folder
    domains, read once into records (every image decoded, two classes or more, a test folder's
    classes among its train folder's). Returns those records, ``{domain: record}``, for the
    caller to write once the workdir exists (``Workdir.write_splits``), so that no stage reads
    the folders again. Raises ``ValueError`` or ``OSError`` naming what is wrong.
    """
    # Imported on use: each loads TensorFlow, which a command loads only once its flags are checked.
    from bap_tf.run.backbone import pretrained_weights
    from bap_tf.run.sources import new_split_records

    pretrained_weights(config)
    if "qat" in config.quantize:
        from bap_tf.export.qat import check_qat

        check_qat(config.backbone)
    return new_split_records(config, workdir)


def run_stages(config, workdir, stages=STAGES):
    """Runs ``stages`` (in ``STAGES`` order) of ``config`` in ``workdir``; returns their results.

    ``config`` must be resolved (``ExperimentConfig.resolve``) and ``workdir`` created. Each
    stage's wall time is merged into ``WORKDIR/timings.json``.
    """
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ValueError(f"stages must be a non-empty list of {list(STAGES)}. Received: stages={list(stages)}")
    results = {}
    for name in (s for s in STAGES if s in stages):
        logging.info("Stage %s: starting in %s", name, workdir.root)
        start = time.perf_counter()
        results[name] = _stage(name)(config, workdir)
        seconds = time.perf_counter() - start
        timings = read_json(workdir.timings) if workdir.timings.exists() else {}
        write_json(workdir.timings, {**timings, name: round(seconds, 1)})
        logging.info("Stage %s: done in %.0f s", name, seconds)
    return results

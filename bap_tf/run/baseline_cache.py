"""The run's baselines, measured once per workdir and cached across runs, and the teachers.

``measured_baselines`` measures the baselines the run needs (``bap_tf.run.baseline_models``:
per-domain fine-tuning of the whole backbone and the cheaper feature extractor), for the report
and for the S-score reference when no ``--reference_errors`` file gives it
(``bap_tf.run.s_score_reference``). It keeps what it measured in ``WORKDIR/baselines.json`` with
the settings it depends on, so a stage run again reuses it, and in a cache shared by every run of
the machine (``cache_path``): the baselines depend on the data, backbone, seed and their own
settings, not on the budget or the sharing loss, so a run that differs only in those reuses
them instead of fine-tuning D backbones again. ``teacher_models`` loads the fine-tuning
baseline's models from that cache (measuring them first if needed), the distillation's teachers.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import keras

from bap_tf.atomic import read_json, write_json
from bap_tf.run import baseline_models as baselines_lib
from bap_tf.run import sources as data_sources

# Where measured baselines are cached across runs; default: ~/.cache/bap_tf/baselines.
CACHE_ENV = "BAP_TF_BASELINE_CACHE"


def cache_path(config):
    """The cross-run cache file of ``config``'s baselines, named by what they depend on (for
    folder domains, the files too: images changed under the same path are other data)."""
    root = os.environ.get(CACHE_ENV) or data_sources.user_cache_dir("baselines")
    identity = {"key": baselines_lib.key(config), "files": _files_fingerprint(config.folders_root)}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return Path(root) / f"{digest}.json"


def _files_fingerprint(root):
    """A digest of every file's path, size and modification time under ``root`` ("" if none)."""
    if not root or not os.path.isdir(root):
        return ""
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            stat = os.stat(path)
            digest.update(f"{os.path.relpath(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _saved(path, key):
    """What ``path`` holds for ``key`` (``{}`` when missing, unreadable or for other settings)."""
    try:
        saved = read_json(path)
    except (FileNotFoundError, ValueError):
        return {}
    return saved if isinstance(saved, dict) and saved.get("key") == key else {}


def models_dir(config):
    """Where the cache keeps the per-domain fine-tuning baseline's models (``<domain>.keras``)."""
    return cache_path(config).with_suffix("")


def measured_baselines(config, workdir, with_models=False):
    """``{"feature_extractor": {domain: entry}, "finetune": {domain: entry} or None}``, each
    entry ``{"accuracy", "params", "macs"}``. The fine-tuning baseline only with
    ``config.baselines``; the feature extractor whenever it is the S-score reference too.
    ``with_models``: the fine-tuning baseline's models must be in ``models_dir`` too (it is
    measured again when they are not)."""
    wanted = ["finetune"] if config.baselines else []
    if config.baselines or not config.reference_errors:
        wanted.insert(0, "feature_extractor")
    key = baselines_lib.key(config)
    shared = cache_path(config)
    saved = {**_saved(shared, key), **{k: v for k, v in _saved(workdir.baselines, key).items() if v is not None}}
    if with_models and not all((models_dir(config) / f"{d}.keras").exists() for d in config.domains):
        saved["finetune"] = None
    measure = {"feature_extractor": baselines_lib.feature_extractor,
               "finetune": lambda config, workdir: baselines_lib.finetune(config, workdir, models_dir(config))}
    changed = False
    for kind in wanted:
        if saved.get(kind) is None:
            saved[kind] = measure[kind](config, workdir)
            changed = True
    if changed or not workdir.baselines.exists():
        write_json(workdir.baselines, {**saved, "key": key})
    if changed:
        shared.parent.mkdir(parents=True, exist_ok=True)
        write_json(shared, {**_saved(shared, key), **saved, "key": key})
    return {kind: saved.get(kind) for kind in baselines_lib.KINDS}


def teacher_models(config, workdir):
    """``{domain: keras.Model}``: the per-domain fine-tuning baselines, measured first (and kept
    as the run's baselines) when the cache lacks them."""
    measured_baselines(dataclasses.replace(config, baselines=True), workdir, with_models=True)
    return {d: keras.saving.load_model(models_dir(config) / f"{d}.keras", compile=False) for d in config.domains}

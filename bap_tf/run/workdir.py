"""A run's working directory: where each stage writes, atomic writes, and the config it holds.

Layout (``Workdir(root)`` gives each path)::

    config.json            the resolved ExperimentConfig (a later command reads it back)
    flags.cfg              the same as a flagfile: replay with --flagfile=WORKDIR/flags.cfg
    folders_root.json      the real path of config.json's folders_root (kept there as typed),
                           resolved in the directory of the command that wrote it
    model.keras            the trained BudgetAwareModel (masked model)
    history.json           per-epoch training logs; backup/ resumable training state
    tensorboard/           TensorBoard logs of training
    pruned/                union.keras (union-pruned multi-domain model), <domain>.keras, costs.json
    export/                android_float32.tflite, android_dynamic.tflite, int8/<domain>.tflite,
                           qat/<domain>.tflite (each int8 file with <domain>_model_data.cc/.h and
                           <domain>_op_resolver.h beside it), manifest.json
    baselines.json         the baselines measured in the run (the S-score reference among them)
    splits/<domain>.json   train/test files of a folder domain, checked when first read (run.sources)
    report.json, report.md, plots/   what bap-eval writes
    timings.json           wall time of each stage

Every file is written to a temporary name in its own directory and renamed into place, so an
interrupted stage never leaves a half-written file for the next one to read. A stage reads what
an earlier one wrote through ``Workdir``'s loaders (``load_masked_model``, ``load_union``,
``load_domain_models``, ``read_manifest``), never through another stage's module.
"""

import dataclasses
import os
import uuid
from pathlib import Path

from bap_tf.atomic import read_json, remove_stale_temporaries, write_json, write_text
from bap_tf.config import ExperimentConfig


class WorkdirError(ValueError):
    """The workdir cannot be used: unwritable, or it holds a run with other settings."""


@dataclasses.dataclass(frozen=True)
class Workdir:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / "config.json")
    flags = property(lambda self: self.root / "flags.cfg")
    folders_root_record = property(lambda self: self.root / "folders_root.json")
    model = property(lambda self: self.root / "model.keras")
    history = property(lambda self: self.root / "history.json")
    tensorboard = property(lambda self: self.root / "tensorboard")
    backup = property(lambda self: self.root / "backup")
    pruned = property(lambda self: self.root / "pruned")
    union_model = property(lambda self: self.root / "pruned" / "union.keras")
    costs = property(lambda self: self.root / "pruned" / "costs.json")
    finetune = property(lambda self: self.root / "pruned" / "finetune.json")
    export = property(lambda self: self.root / "export")
    manifest = property(lambda self: self.root / "export" / "manifest.json")
    baselines = property(lambda self: self.root / "baselines.json")
    report_json = property(lambda self: self.root / "report.json")
    report_md = property(lambda self: self.root / "report.md")
    plots = property(lambda self: self.root / "plots")
    timings = property(lambda self: self.root / "timings.json")

    def domain_model(self, domain):
        return self.pruned / f"{domain}.keras"

    def android(self, variant):
        return self.export / f"android_{variant}.tflite"

    def int8(self, domain, variant="int8"):
        return self.export / variant / f"{domain}.tflite"

    def backbone_file(self, variant):
        """The unpruned backbone converted like the pruned files: what they are measured against."""
        return self.export / "backbone" / f"{variant}.tflite"

    def split(self, domain):
        return self.root / "splits" / f"{domain}.json"

    # -- creation and checks ----------------------------------------------------------------
    def create(self):
        """Creates the folder and proves it writable; raises ``WorkdirError`` naming it. Removes
        the temporary files that writers killed outright left (``atomic.remove_stale_temporaries``)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            probe.write_text("")
            probe.unlink()
            remove_stale_temporaries(self.root)
        except OSError as error:
            raise WorkdirError(
                f"Cannot write to the workdir. Expected a folder this user can create and write. "
                f"Received: workdir='{self.root}' ({type(error).__name__}: {error.strerror or error})"
            ) from None
        return self

    def require(self, path, stage):
        """Raises ``FileNotFoundError`` naming the stage that makes ``path`` when it is missing."""
        if not Path(path).exists():
            raise FileNotFoundError(
                f"{Path(path).relative_to(self.root)} is missing in workdir '{self.root}'. Expected "
                f"the {stage} stage to have run there first (bap-{stage} --workdir={self.root}, or "
                f"bap-train --stages=...). Received: no file {path}"
            )
        return Path(path)

    def saved_config(self):
        """The ``ExperimentConfig`` a previous command wrote here, or None."""
        if not self.config.exists():
            return None
        try:
            return ExperimentConfig.from_dict(read_json(self.config))
        except (ValueError, TypeError) as error:
            raise WorkdirError(
                f"The workdir's config.json cannot be read back. Expected a config written by "
                f"bap-tf. Received: {self.config} ({error})"
            ) from None

    def write_config(self, config, flags_text=None):
        """``config.json`` (``folders_root`` as typed) and ``flags.cfg``; beside them, the real
        path that ``folders_root`` names from this command's directory (``saved_folders_root``)."""
        if config.folders_root:
            write_json(self.folders_root_record, {"folders_root": config.folders_root,
                                                  "realpath": os.path.realpath(config.folders_root)})
        write_text(self.config, config.to_json() + "\n")
        if flags_text is not None:
            write_text(self.flags, flags_text)

    def saved_folders_root(self, saved):
        """The real path of the saved config's ``folders_root`` as resolved by the command that
        wrote it, or None when not recorded (a workdir from before ``folders_root.json``)."""
        if not saved.folders_root or not self.folders_root_record.exists():
            return None
        try:
            record = read_json(self.folders_root_record)
        except ValueError:
            return None
        return record.get("realpath") if record.get("folders_root") == saved.folders_root else None

    def write_splits(self, records):
        """Writes ``{domain: record}`` (``run.sources.new_split_records``) to ``splits/``."""
        for domain, record in records.items():
            write_json(self.split(domain), record)

    # -- what the stages wrote -----------------------------------------------------------
    # Keras is imported on use: a command builds its Workdir before a flag error is printed.
    def trained_epochs(self):
        """Epochs that ``model.keras`` was trained for (0 when there is none)."""
        if not self.model.exists() or not self.history.exists():
            return 0
        return int(read_json(self.history).get("model_epochs", 0))

    def load_masked_model(self, config):
        """``model.keras`` (the train stage's), checked to be a model of the config's domains."""
        import keras

        from bap_tf import model as _registers_model  # noqa: F401  (BudgetAwareModel for load_model)

        path = self.require(self.model, "train")
        model = keras.saving.load_model(path, compile=False)
        if tuple(model.domain_names) != tuple(config.domains):
            raise ValueError(
                f"{path} was trained for domains {model.domain_names}, not for the config's "
                f"{list(config.domains)}. Expected the model of this workdir's run. Received: {path}"
            )
        return model

    def load_union(self, config):
        """The prune stage's union-pruned model: ``{domain: model}`` in the config's order."""
        from bap_tf.prune.saving import load_union

        union = load_union(self.require(self.union_model, "prune"))
        if sorted(union) != sorted(config.domains):
            raise ValueError(
                f"{self.union_model} holds domains {list(union)}, not the config's {list(config.domains)}. "
                f"Expected the prune stage's output of this run. Received: {self.union_model}"
            )
        return {name: union[name] for name in config.domains}

    def load_domain_models(self, config):
        """The prune stage's per-domain models: ``{domain: model}``, without their training
        configuration (the fine-tuning's loss need not be importable in a later command)."""
        import keras

        from bap_tf import layers as _registers_layers  # noqa: F401  (ChannelGather, ChannelMask)

        return {name: keras.saving.load_model(self.require(self.domain_model(name), "prune"), compile=False)
                for name in config.domains}

    def read_manifest(self):
        """The export manifest, or an empty one when the export stage has not run."""
        if not self.manifest.exists():
            return {"android": {}, "int8": {}, "qat": {}}
        return read_json(self.manifest)


def config_for_workdir(saved, explicit, workdir):
    """The resolved config of a command on ``workdir``.

    ``saved``: the workdir's config (None for a new workdir); ``explicit``: ``{field: value}`` of
    the flags given on this command. A new run takes the defaults plus ``explicit``; a later
    command takes the saved run's settings plus ``explicit``, and is refused (``WorkdirError``)
    when ``explicit`` changes a field of ``IDENTITY_FIELDS`` (domains, backbone, budget...).
    """
    if saved is None:
        return ExperimentConfig.from_dict(explicit).resolve()
    if explicit.get("dataset", saved.dataset) != saved.dataset:
        # Checked first: the saved domains would not even be valid for another dataset.
        _refuse(workdir, [("dataset", saved.dataset, explicit["dataset"])])
    config = ExperimentConfig.from_dict({**saved.to_dict(), **explicit}).resolve()
    check_same_run(saved, config, workdir, Workdir(workdir).saved_folders_root(saved))
    return config


def check_same_run(saved, requested, workdir, saved_folders_root=None):
    """Refuses ``requested`` when it differs from the workdir's run in an identity field, or
    reads its folder domains from another folder (the trained model would meet other data).

    Folders are compared as real paths: ``saved_folders_root``, the saved ``folders_root``
    resolved where it was typed (``Workdir.saved_folders_root``; when None, resolved here),
    against the requested one resolved here. So a relative ``--folders_root`` names the same
    folder again from its own directory, however it is spelled, and not from another one."""
    if saved is None:
        return
    differences = [
        (name, value, requested.identity()[name])
        for name, value in saved.identity().items()
        if requested.identity()[name] != value
    ]
    if saved.folders_root:
        there = saved_folders_root or os.path.realpath(saved.folders_root)
        asked = os.path.realpath(requested.folders_root)
        if there != asked:
            differences.append(("folders_root", _Folder(saved.folders_root, there),
                                _Folder(requested.folders_root, asked)))
    if differences:
        _refuse(workdir, differences)


@dataclasses.dataclass(frozen=True)
class _Folder:
    """A folder as typed, shown with the real path it names when typed relative."""

    typed: str
    real: str

    def __repr__(self):
        return repr(self.typed) if os.path.isabs(self.typed) else f"{self.typed!r} (= {self.real})"


def _refuse(workdir, differences):
    if differences:
        name, there, asked = differences[0]
        more = f" (and {len(differences) - 1} more: {[d[0] for d in differences[1:]]})" if len(differences) > 1 else ""
        raise WorkdirError(
            f"Workdir '{workdir}' holds a run with {name}={_show(there)}, not {_show(asked)}{more}. "
            f"Expected the settings of that run (see its config.json), or a new --workdir. "
            f"Received: {name}={_show(asked)}"
        )


def _show(value):
    return ",".join(value) if isinstance(value, tuple) else repr(value)

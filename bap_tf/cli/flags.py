"""The flags of the bap-* commands, and their translation into configs.

bap-train, bap-prune, bap-export and bap-eval define the same experiment flags (so one flagfile
serves them all; absl rejects a flag a command does not define), bap-pretrain its own. Each
flag is a field of ``bap_tf.config.ExperimentConfig`` (or ``PretrainConfig``) of the same name,
defined from that field (``config.setting``): its default, help text, bounds and choices live
there, in one place. The flags that are no config field (--workdir, bap-train's --stages) are
defined here and in the commands.
"""

import dataclasses

from absl import flags

from bap_tf import config as config_lib

FLAGS = flags.FLAGS


def _positive(name, fv):
    flags.register_validator(name, lambda v: v is None or v > 0, message=f"--{name} must be > 0", flag_values=fv)


def _list_of(name, choices, fv):
    flags.register_validator(
        name, lambda values: all(v in choices for v in values),
        message=f"--{name} must be a comma list of {','.join(choices)}", flag_values=fv,
    )


def define_workdir_flag(what, fv=FLAGS):
    flags.DEFINE_string("workdir", None, f"Folder of the run: {what}. Created if needed. Required.", flag_values=fv)
    flags.mark_flag_as_required("workdir", flag_values=fv)


def flag_fields(config_class):
    """The fields of ``config_class`` that have a flag (all but ``setting(..., flag=False)``)."""
    return [field for field in dataclasses.fields(config_class) if field.metadata.get("flag", True)]


def define_config_flags(config_class, fv=FLAGS):
    """Defines a flag for every field of ``config_class`` that has one, from the field's
    ``config.setting`` metadata; a field without help text is an error."""
    for field in flag_fields(config_class):
        _define_field_flag(config_class.__name__, field, fv)


def _define_field_flag(owner, field, fv):
    meta = field.metadata
    where = f"{owner}.{field.name}"
    if not meta.get("help"):
        raise ValueError(
            f"{where} has no help text: declare it with config.setting(default, help, ...) "
            f"(or setting(..., flag=False) for a field without a flag). Received: metadata={dict(meta)}"
        )
    name, default, text = field.name, field.default, meta["help"]
    choices = meta.get("choices")
    bounds = {key: meta[key] for key in ("lower_bound", "upper_bound") if key in meta}
    numeric = field.type in (int, float)
    if (bounds or meta.get("positive")) and not numeric:
        raise ValueError(f"{where}: bounds are for int or float fields. Received: type {field.type!r}, {bounds}")
    if choices is not None and field.type not in (str, tuple, list):
        raise ValueError(f"{where}: choices are for str or tuple fields. Received: type {field.type!r}")
    if field.type is bool:
        flags.DEFINE_boolean(name, default, text, flag_values=fv)
    elif field.type is int:
        flags.DEFINE_integer(name, default, text, **bounds, flag_values=fv)
    elif field.type is float:
        flags.DEFINE_float(name, default, text, **bounds, flag_values=fv)
    elif field.type is str and choices is not None:
        flags.DEFINE_enum(name, default, choices, text, flag_values=fv)
    elif field.type is str:
        flags.DEFINE_string(name, default, text, flag_values=fv)
    elif field.type in (tuple, list):
        flags.DEFINE_list(name, list(default), text, flag_values=fv)
        if choices is not None:
            _list_of(name, choices, fv)
    else:
        raise ValueError(
            f"{where}: no flag type for this field type. Expected bool, int, float, str or tuple. "
            f"Received: {field.type!r}"
        )
    if meta.get("positive"):
        _positive(name, fv)


def define_experiment_flags(fv=FLAGS):
    """Defines every ``ExperimentConfig`` flag (plus --workdir) in ``fv``, once."""
    if "budget" in fv:
        return
    define_workdir_flag(
        "config.json, model.keras, pruned/, export/, report.md ... A command run again on it "
        "continues (training resumes from its last epoch) or redoes a later stage", fv,
    )
    define_config_flags(config_lib.ExperimentConfig, fv)


def define_pretrain_flags(fv=FLAGS):
    """Defines every ``PretrainConfig`` flag (plus --workdir) in ``fv``."""
    define_workdir_flag(
        "pretrain.json, pretrain_config.json, backbone.weights.h5 (unless --output), tensorboard/pretrain/", fv)
    define_config_flags(config_lib.PretrainConfig, fv)


def explicit_values(config_class, flag_values=FLAGS):
    """``{field: value}`` of the config fields whose flag was given (command line or flagfile)."""
    values = {}
    for field in flag_fields(config_class):
        flag = flag_values[field.name]
        if flag.present:
            value = flag.value
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return values


def flagfile_text(config, command):
    """The config as a flagfile that replays it (``--flagfile=WORKDIR/flags.cfg``)."""
    lines = [
        f"# Resolved flags of the run in this workdir, written by {command}.",
        "# Replay: bap-train --flagfile=WORKDIR/flags.cfg --workdir=WORKDIR (or any bap-* command)",
    ]
    for field in flag_fields(type(config)):
        value = getattr(config, field.name)
        if value is None:
            continue  # e.g. sharing_weight unset: the learnable weight
        if isinstance(value, bool):
            lines.append(f"--{'' if value else 'no'}{field.name}")
        elif isinstance(value, tuple):
            lines.append(f"--{field.name}={','.join(value)}")
        else:
            lines.append(f"--{field.name}={value}")
    return "\n".join(lines) + "\n"

"""The flags are made from the config fields' metadata (``config.setting``): one source for each
setting's default, help text, bounds and choices."""

import dataclasses

import pytest
from absl import flags

from bap_tf import config as config_lib
from bap_tf.cli import flags as cli_flags
from bap_tf.config import ExperimentConfig, PretrainConfig, setting

CONFIGS = [
    (ExperimentConfig, cli_flags.define_experiment_flags),
    (PretrainConfig, cli_flags.define_pretrain_flags),
]
FLAG_TYPES = {bool: "bool", int: "int", float: "float", str: "string", tuple: "comma separated list of strings"}


def _defined(define):
    values = flags.FlagValues()
    define(values)
    return values


def _accepts(values, *argv):
    try:
        values(["bap", "--workdir=w", *argv])
    except flags.Error:
        return False
    finally:
        values.unparse_flags()
    return True


@pytest.mark.parametrize("config_class, define", CONFIGS, ids=lambda c: getattr(c, "__name__", ""))
def test_every_field_has_its_flag_with_default_type_bounds_and_help(config_class, define):
    values = _defined(define)
    fields = dataclasses.fields(config_class)
    # Every field has a flag (none is marked flag=False today), and the only other flag is --workdir.
    assert cli_flags.flag_fields(config_class) == list(fields)
    assert set(values) == {f.name for f in fields} | {"workdir"}
    for field in fields:
        flag, meta = values[field.name], field.metadata
        assert meta["help"] and flag.help.endswith(meta["help"]), field.name
        default = list(field.default) if isinstance(field.default, tuple) else field.default
        assert flag.default == default and type(flag.default) is type(default), field.name
        choices = meta.get("choices")
        if field.type is str and choices is not None:
            assert flag.flag_type() == "string enum" and flag.parser.enum_values == list(choices), field.name
        else:
            assert flag.flag_type() == FLAG_TYPES[field.type], field.name
        if field.type in (int, float):
            assert flag.parser.lower_bound == meta.get("lower_bound"), field.name
            assert flag.parser.upper_bound == meta.get("upper_bound"), field.name
            zero_allowed = (not meta.get("positive") and meta.get("lower_bound", 0) <= 0
                            and meta.get("upper_bound", 0) >= 0)
            assert _accepts(values, f"--{field.name}=0") == zero_allowed, field.name
        if field.type is tuple and choices is not None:
            assert _accepts(values, f"--{field.name}={choices[0]}")
            assert not _accepts(values, f"--{field.name}={choices[0]},no_such_choice")


def test_bounds_and_choices_of_the_flags_as_before():
    experiment = _defined(cli_flags.define_experiment_flags)
    assert (experiment["budget"].parser.lower_bound, experiment["budget"].parser.upper_bound) == (None, 1.0)
    assert not _accepts(experiment, "--budget=0") and _accepts(experiment, "--budget=1")
    assert experiment["validation_fraction"].parser.upper_bound == 0.49
    assert experiment["sharing_weight"].default is None and experiment["sharing_weight"].parser.lower_bound == 0.0
    assert experiment["domains"].default == [] and _accepts(experiment, "--domains=anything")
    assert experiment["quantize"].value == ["float32", "dynamic", "int8"]
    assert not _accepts(experiment, "--quantize=float32,int4")
    assert experiment["android_layout"].parser.enum_values == list(config_lib.ANDROID_LAYOUTS)
    assert not _accepts(experiment, "--nobaselines", "--learning_rate=0")
    pretrain = _defined(cli_flags.define_pretrain_flags)
    assert pretrain["image_size"].parser.lower_bound == 8
    assert pretrain["source"].parser.enum_values == list(config_lib.PRETRAIN_SOURCES)


@dataclasses.dataclass(frozen=True)
class _Toy:
    rate: float = setting(0.5, "A rate.", lower_bound=0.0, upper_bound=1.0)
    names: tuple = setting(("a",), "Comma list of names.", choices=("a", "b"))
    kind: str = setting("x", "The kind.", choices=("x", "y"))
    internal: int = setting(3, "Set by the library, not by a flag.", flag=False)


def test_a_field_marked_flag_false_has_no_flag_and_is_not_replayed():
    values = flags.FlagValues()
    cli_flags.define_config_flags(_Toy, values)
    assert "internal" not in values and {"rate", "names", "kind"} <= set(values)
    assert values["rate"].parser.upper_bound == 1.0 and values["kind"].parser.enum_values == ["x", "y"]
    values(["toy", "--names=b,a", "--kind=y"])
    assert cli_flags.explicit_values(_Toy, values) == {"names": ("b", "a"), "kind": "y"}
    assert "internal" not in cli_flags.flagfile_text(_Toy(), "toy")


def test_a_field_without_help_text_fails():
    @dataclasses.dataclass(frozen=True)
    class Undocumented:
        documented: int = setting(1, "Documented.")
        plain: int = 2

    with pytest.raises(ValueError, match=r"Undocumented.plain has no help text"):
        cli_flags.define_config_flags(Undocumented, flags.FlagValues())

    @dataclasses.dataclass(frozen=True)
    class EmptyHelp:
        empty: str = setting("", "")

    with pytest.raises(ValueError, match=r"EmptyHelp.empty has no help text"):
        cli_flags.define_config_flags(EmptyHelp, flags.FlagValues())


def test_bounds_on_a_field_that_is_no_number_fail():
    @dataclasses.dataclass(frozen=True)
    class Bounded:
        name: str = setting("", "A name.", lower_bound=1)

    with pytest.raises(ValueError, match=r"Bounded.name: bounds are for int or float fields"):
        cli_flags.define_config_flags(Bounded, flags.FlagValues())

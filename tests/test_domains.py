"""Domain names: one rule, checked when the config is built, before any stage runs."""

import re

import pytest

from bap_tf import config as config_lib
from bap_tf.config import ExperimentConfig
from bap_tf.domains import as_domain_specs, check_domain_names, identifier


@pytest.mark.parametrize("name", ["café", "my domain", "3d_shapes", "_private", "a.b", "a/b"])
def test_names_outside_the_rule_are_refused_before_training(name):
    message = (re.escape(f"Domain name {name!r} cannot name layers")
               + r".*Expected ASCII letters, digits, '_' and '-', starting with a letter\. Received: domains=d1,"
               + re.escape(name))
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(dataset="folders", folders_root="data", domains=("d1", name))
    with pytest.raises(ValueError, match=message):
        as_domain_specs([("d1", 2), (name, 2)])  # the library's models follow the same rule


@pytest.mark.parametrize("first, second", [("a-b", "a_b"), ("A", "a"), ("aB", "a_b")])
def test_names_that_would_share_firmware_identifiers_are_refused(first, second):
    with pytest.raises(ValueError, match=rf"Domains '{first}' and '{second}' would share C identifiers.*"
                                         rf"differ in more than case, '-' and '_'\. "
                                         rf"Received: domains={first},{second}"):
        ExperimentConfig(dataset="folders", folders_root="data", domains=(first, second))


def _firmware_identifiers(name):
    """The C names a domain's firmware sources define, read from the generated text."""
    from bap_tf.export import firmware

    c_name = firmware.c_identifier(name)
    header, _ = firmware.model_data_sources(c_name, b"\x00", "int8/x.tflite", "x_model_data.h")
    resolver = firmware.op_resolver_source(c_name, ["CONV_2D"], 1024, "int8/x.tflite")
    return set(re.findall(r"\b(g_\w+_model_data|BAP_TF_\w+_H_|k\w+ArenaSize|\w+OpResolver(?=\(\)))", header + resolver))


def test_names_the_rule_lets_through_get_distinct_firmware_identifiers():
    names = ["a-b", "a_b", "ab", "aB", "A", "a", "cars", "carts", "vgg-flowers", "flowers", "x1", "x_1"]
    for first in names:
        for second in names[names.index(first) + 1:]:
            shared = _firmware_identifiers(first) & _firmware_identifiers(second)
            try:
                check_domain_names([first, second])
            except ValueError:
                continue
            assert not shared, (first, second, shared)
    # Identifiers that do collide are refused: the rule is not vacuous.
    assert _firmware_identifiers("aB") & _firmware_identifiers("a_b")


def test_every_dataset_domain_passes_and_maps_to_an_identifier():
    for names in (config_lib.POCKET_DOMAINS, config_lib.DECATHLON_DOMAINS,
                  config_lib.IMAGENET_TO_SKETCH + config_lib.IMAGENET_TO_SKETCH_FOLDERS):
        check_domain_names(names)
        assert all(identifier(n).isidentifier() for n in names)
    assert identifier("vgg-flowers") == "vgg_flowers"

"""Checks of converted files before they are moved into place."""

import pytest

from bap_tf.export.file_checks import ModelCheckError, check_android_model, check_int8_model


def test_int8_check_rejects_a_float_model(android_float):
    with pytest.raises(ModelCheckError, match="full-integer int8.*is float32"):
        check_int8_model(android_float.read_bytes())


def test_int8_check_accepts_the_micro_files_and_summarizes_them(micro_files):
    for path in micro_files.values():
        summary = check_int8_model(path.read_bytes())
        assert {"CONV_2D", "DEPTHWISE_CONV_2D", "GATHER", "MUL", "FULLY_CONNECTED"} <= set(summary["ops"])
        scale, zero_point = summary["input"]
        assert abs(scale - 1 / 255) < 1e-6 and zero_point == -128


def test_android_check_wants_exactly_the_domains(android_float):
    assert check_android_model(android_float.read_bytes(), ["cars", "birds"]) == ["birds", "cars"]
    with pytest.raises(ModelCheckError, match=r"signatures \['birds', 'cars'\] \(expected \['birds'\]\)"):
        check_android_model(android_float.read_bytes(), ["birds"])


def test_android_check_rejects_an_int8_file(micro_files):
    with pytest.raises(ModelCheckError, match="signatures"):
        check_android_model(micro_files["birds"].read_bytes(), ["birds"])


def test_unreadable_bytes_are_a_model_check_error():
    with pytest.raises(ModelCheckError, match="could not be loaded by LiteRT"):
        check_int8_model(b"not a model")

"""LiteRTModel: signature runners, batching and int8 handling."""

import numpy as np
import pytest

from bap_tf.export.litert import LiteRTModel, predict_logits
from bap_tf.export.quantization import dequantize, tensor_quantization


def test_signature_must_be_named_when_there_are_several(android_float):
    model = LiteRTModel(android_float)
    with pytest.raises(ValueError, match=r"name the one to run.*Received: signature=None"):
        model.logits(np.zeros((1, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match=r"Unknown signature.*Received: 'dogs'"):
        model.logits(np.zeros((1, 16, 16, 3), np.float32), "dogs")


def test_batch_size_does_not_change_results(android_float, eval_sets):
    model = LiteRTModel(android_float.read_bytes())
    images = eval_sets["cars"][0][:20]
    np.testing.assert_allclose(model.logits(images, "cars", batch_size=7),
                               model.logits(images, "cars", batch_size=20), atol=1e-6)


def test_int8_file_is_fed_floats_and_returns_dequantized_logits(micro_files, eval_sets):
    model = LiteRTModel(micro_files["birds"])
    assert model.signatures == ["serving_default"]
    images = eval_sets["birds"][0][:10]
    raw = model.raw_outputs(images)
    assert raw.dtype == np.int8 and raw.shape == (10, 5)
    scale, zero_point = tensor_quantization(model.output_details())
    np.testing.assert_array_equal(model.logits(images), dequantize(raw, scale, zero_point))


def test_predict_logits_runs_one_signature_of_a_file(android_float, eval_sets):
    images = eval_sets["birds"][0][:4]
    logits = predict_logits(android_float, images, "birds")
    assert logits.shape == (4, 5) and logits.dtype == np.float32
    np.testing.assert_array_equal(logits, LiteRTModel(android_float).logits(images, "birds"))

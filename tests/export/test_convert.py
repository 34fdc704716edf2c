"""Conversion: Keras equivalence, weight sharing, int8 form, sizes, atomic writes, errors."""

import keras
import numpy as np
import pytest

import tflite_file
import tiny_models
from bap_tf.export import convert
from bap_tf.export.file_checks import check_int8_model
from bap_tf.export.litert import LiteRTModel
from bap_tf.export.quantization import tensor_quantization
from bap_tf.export.sharing import shared_layers, shared_weight_bytes

FLOAT_AGREEMENT = 0.999
FLOAT_MAX_LOGIT_DIFF = 1e-3


def _assert_matches_keras(litert_model, signature, keras_model, images):
    expected = keras_model.predict(images, verbose=0)
    logits = litert_model.logits(images, signature)
    assert logits.shape == expected.shape
    agreement = np.mean(np.argmax(logits, -1) == np.argmax(expected, -1))
    assert agreement >= FLOAT_AGREEMENT, (signature, agreement)
    assert np.max(np.abs(logits - expected)) <= FLOAT_MAX_LOGIT_DIFF, signature


def test_android_float_matches_keras_on_every_signature(union_models, eval_sets, android_float):
    model = LiteRTModel(android_float)
    assert sorted(model.signatures) == sorted(union_models)
    for domain, keras_model in union_models.items():
        details = model.input_details(domain)
        assert details["dtype"] == np.float32
        assert list(details["shape_signature"]) == [-1, 16, 16, 3]
        _assert_matches_keras(model, domain, keras_model, eval_sets[domain][0])


def test_per_domain_float_file_matches_keras(union_models, eval_sets, per_domain_float):
    for domain, path in per_domain_float.items():
        model = LiteRTModel(path)
        assert model.signatures == [domain]
        _assert_matches_keras(model, domain, union_models[domain], eval_sets[domain][0])


def test_android_file_stores_each_shared_kernel_once_and_unfolded(union_models, android_float):
    data = android_float.read_bytes()
    convs = tflite_file.weight_buffers(data, "CONV_2D")
    assert len(convs) == len(union_models)
    # Same conv position in every signature -> the very same buffer.
    assert all([buffer for buffer, _ in ops] == [b for b, _ in convs[0]] for ops in convs)
    # And that buffer holds the Keras kernel itself (OHWI), not a BN-folded copy.
    conv_buffers = {buffer for buffer, _ in convs[0]}
    stored = {tflite_file.buffer_data(data, buffer) for buffer in conv_buffers}
    shared_convs = [layer for layer in shared_layers(union_models) if isinstance(layer, keras.layers.Conv2D)
                    and not isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert len(shared_convs) == 3
    for layer in shared_convs:
        kernel = np.transpose(layer.kernel.numpy(), (3, 0, 1, 2)).astype(np.float32)
        assert kernel.tobytes() in stored, layer.name
    # The shared 3x3 depthwise is shared too; the per-domain 1x1 BN affines are not.
    depthwise = tflite_file.weight_buffers(data, "DEPTHWISE_CONV_2D")
    shared_dw = [{b for b, shape in ops if shape[1:3] == (3, 3)} for ops in depthwise]
    affine = [{b for b, shape in ops if shape[1:3] == (1, 1)} for ops in depthwise]
    assert len(shared_dw[0]) == 1 and all(s == shared_dw[0] for s in shared_dw)
    assert not affine[0] & affine[1]


def test_android_file_is_much_smaller_than_per_domain_files(union_models, android_float,
                                                           per_domain_float):
    multi = android_float.stat().st_size
    separate = sum(path.stat().st_size for path in per_domain_float.values())
    shared = shared_weight_bytes(union_models)
    extra_domains = len(union_models) - 1
    assert multi < 0.7 * separate, (multi, separate)
    # Most of the shared weights are saved for each extra domain (the rest is the per-domain
    # BN kept as its own op, which the per-domain files fold away).
    assert separate - multi >= 0.75 * extra_domains * shared, (multi, separate, shared)


def test_dynamic_range_model_has_int8_shared_weights_and_float_io(union_models, eval_sets,
                                                                  android_dynamic, android_float):
    data = android_dynamic.read_bytes()
    assert len(data) < android_float.stat().st_size
    model = LiteRTModel(android_dynamic)
    assert sorted(model.signatures) == sorted(union_models)
    convs = tflite_file.weight_buffers(data, "CONV_2D")
    assert all([b for b, _ in ops] == [b for b, _ in convs[0]] for ops in convs)
    int8_weights = [t for t in model._interpreter.get_tensor_details() if t["dtype"] == np.int8]
    assert int8_weights, "dynamic-range quantization left every weight in float"
    for domain, keras_model in union_models.items():
        images = eval_sets[domain][0]
        assert model.input_details(domain)["dtype"] == np.float32
        assert model.output_details(domain)["dtype"] == np.float32
        expected = keras_model.predict(images, verbose=0)
        logits = model.logits(images, domain)
        assert np.mean(np.argmax(logits, -1) == np.argmax(expected, -1)) >= 0.9
        assert np.max(np.abs(logits - expected)) < 0.1 * np.max(np.abs(expected))


def test_int8_model_is_builtin_int8_with_sensible_quantization(union_models, micro_files,
                                                              train_images):
    allowed_ops = {"ADD", "MUL", "PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "GATHER",
                   "MEAN", "FULLY_CONNECTED"}
    for domain, path in micro_files.items():
        assert set(check_int8_model(path.read_bytes())["ops"]) <= allowed_ops
        model = LiteRTModel(path)
        ops = model._interpreter._get_ops_details()
        assert {op["op_name"] for op in ops} <= allowed_ops
        for op in ops:
            assert set(op["operand_types"]) | set(op["result_types"]) <= {np.int8, np.int32}, op
            assert op["result_types"] == [np.int8], op
        tensors = model._interpreter.get_tensor_details()
        assert not [t["name"] for t in tensors if t["dtype"] == np.float32]
        input_scale, input_zero = tensor_quantization(model.input_details())
        assert model.input_details()["dtype"] == np.int8
        # [0, 1] images: scale 1/255 and zero point -128 use all 256 levels.
        assert input_scale == pytest.approx(1 / 255, rel=1e-3) and input_zero == -128
        assert model.output_details()["dtype"] == np.int8
        scale, zero = tensor_quantization(model.output_details())
        assert 0 < scale < 1 and -128 <= zero <= 127
        # The output range covers the logits of the calibration images.
        logits = union_models[domain].predict(train_images[domain], verbose=0)
        low, high = scale * (-128 - zero), scale * (127 - zero)
        assert low - scale <= logits.min() and logits.max() <= high + scale


def test_pruned_int8_model_is_smaller_than_its_bigger_counterpart(micro_files, train_images,
                                                                  export_dir):
    pruned = tiny_models.build_single_model(width=tiny_models.WIDTH // 2, name="birds_pruned")
    path = convert.export_micro(pruned, export_dir / "birds_pruned_int8.tflite", train_images["birds"])
    full_size, pruned_size = micro_files["birds"].stat().st_size, path.stat().st_size
    assert pruned_size < 0.8 * full_size, (pruned_size, full_size)


class _Erfinv(keras.layers.Layer):
    """An op TFLite has no builtin for: the converter must fail on it."""

    def call(self, inputs):
        return keras.ops.erfinv(inputs)


def test_failed_conversion_leaves_existing_file_untouched(tmp_path):
    destination = tmp_path / "model.tflite"
    destination.write_bytes(b"the previous export")
    image = keras.Input((16, 16, 3), name="image")
    features = keras.layers.GlobalAveragePooling2D()(_Erfinv()(image))
    model = keras.Model(image, keras.layers.Dense(3)(features))
    with pytest.raises(convert.ConversionError, match="(?s)child process exited.*Erfinv"):
        convert.export_android({"bad": model}, destination)
    assert destination.read_bytes() == b"the previous export"
    assert list(tmp_path.iterdir()) == [destination]


def test_killed_conversion_leaves_no_file(union_models, train_images, tmp_path):
    destination = tmp_path / "out" / "birds_int8.tflite"
    with pytest.raises(convert.ConversionError, match="did not finish within 1 s"):
        convert.export_micro(union_models["birds"], destination, train_images["birds"], timeout_s=1)
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((4, 8, 8, 3), np.float32), r"\(N, 16, 16, 3\) array.*Received: shape=\(4, 8, 8, 3\)"),
        (np.full((4, 16, 16, 3), 255.0, np.float32), r"must lie in \[0, 1\].*Received: values in"),
        (np.zeros((4, 16, 16, 3), np.uint8), r"float images.*Received: dtype=uint8"),
    ],
)
def test_export_micro_rejects_bad_representative_images(union_models, tmp_path, images, message):
    destination = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match=message):
        convert.export_micro(union_models["birds"], destination, images)
    assert not destination.exists()


def test_export_android_rejects_bad_variant_and_domain_names(union_models, tmp_path):
    with pytest.raises(ValueError, match=r"variant must be one of.*Received: variant='int8'"):
        convert.export_android(union_models, tmp_path / "a.tflite", variant="int8")
    with pytest.raises(ValueError, match=r"identifiers.*Received: \['my-domain'\]"):
        convert.export_android({"my-domain": union_models["birds"]}, tmp_path / "a.tflite")
    assert list(tmp_path.iterdir()) == []


def test_calibration_images_subsamples_with_a_seed(union_models):
    images = tiny_models.make_images(20)
    first = convert.calibration_images(union_models["birds"], images, max_samples=8, seed=3)
    again = convert.calibration_images(union_models["birds"], images, max_samples=8, seed=3)
    assert first.shape == (8, 16, 16, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert all(any(np.array_equal(row, image) for image in images) for row in first)

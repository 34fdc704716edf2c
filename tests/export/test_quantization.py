"""int8 quantization helpers of the runners."""

import numpy as np
import pytest

from bap_tf.export.quantization import dequantize, quantize, tensor_quantization


def test_quantize_rounds_half_away_from_zero_and_clips_to_int8():
    # Exact halves (scale 0.5): TFLite's std::round goes away from zero, numpy's round to even.
    values = np.array([0.25, -0.25, 0.75, 0.1, 100.0, -100.0], np.float32)
    quantized = quantize(values, 0.5, -3)
    assert quantized.dtype == np.int8
    assert quantized.tolist() == [-2, -4, -1, -3, 127, -128]


def test_quantize_maps_unit_images_onto_all_int8_levels():
    scale, zero_point = np.float32(1 / 255), -128
    quantized = quantize(np.array([0.0, 1.0, 2.0, -1.0], np.float32), scale, zero_point)
    assert quantized.tolist() == [-128, 127, 127, -128]


def test_dequantize_inverts_quantize_within_half_a_step():
    scale, zero_point = 0.05, 3
    values = np.linspace(-6.0, 6.0, 101).astype(np.float32)
    restored = dequantize(quantize(values, scale, zero_point), scale, zero_point)
    assert restored.dtype == np.float32
    assert np.max(np.abs(restored - values)) <= scale / 2 + 1e-6


def test_tensor_quantization_reads_per_tensor_parameters_only():
    details = {"quantization_parameters": {"scales": np.array([0.5]), "zero_points": np.array([-2])}}
    assert tensor_quantization(details) == (0.5, -2)
    per_axis = {"quantization_parameters": {"scales": np.array([0.5, 0.2]),
                                            "zero_points": np.array([0, 0])}}
    with pytest.raises(ValueError, match=r"per-tensor.*Received: scales=\[0.5, 0.2\]"):
        tensor_quantization(per_axis)

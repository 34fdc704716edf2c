"""Affine int8 quantization of model inputs and outputs: ``real = scale * (q - zero_point)``."""

import numpy as np


def tensor_quantization(details):
    """``(scale, zero_point)`` of a per-tensor quantized tensor from LiteRT/TFLM tensor details.

    Both runtimes report ``quantization_parameters`` with ``scales`` and ``zero_points`` arrays;
    model inputs and outputs are quantized per tensor, so each holds exactly one value.
    """
    params = details["quantization_parameters"]
    scales, zero_points = np.asarray(params["scales"]), np.asarray(params["zero_points"])
    if scales.size != 1 or zero_points.size != 1:
        raise ValueError(
            "Expected a per-tensor quantized input/output (one scale and one zero point). "
            f"Received: scales={scales.tolist()}, zero_points={zero_points.tolist()}"
        )
    return float(scales[0]), int(zero_points[0])


def quantize(values, scale, zero_point, dtype=np.int8):
    """Float array -> integer array: ``round(x / scale + zero_point)`` clipped to ``dtype``."""
    info = np.iinfo(dtype)
    quantized = np.round(np.asarray(values, np.float32) / scale + zero_point)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def dequantize(values, scale, zero_point):
    """Integer array -> float32 array: ``scale * (q - zero_point)``."""
    return (scale * (np.asarray(values, np.float32) - zero_point)).astype(np.float32)

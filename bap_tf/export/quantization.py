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
    """Float array -> integer array: ``x / scale + zero_point`` rounded, clipped to ``dtype``.

    Rounds ``x / scale`` half away from zero before adding the zero point, as TFLite's own
    QUANTIZE kernel does (``std::round``), so values exactly halfway between two steps land
    where the runtime would put them (numpy's ``round`` would send them to the even one).
    """
    info = np.iinfo(dtype)
    steps = np.asarray(values, np.float32) / np.float32(scale)
    rounded = np.sign(steps) * np.floor(np.abs(steps) + 0.5)
    return np.clip(rounded + zero_point, info.min, info.max).astype(dtype)


def dequantize(values, scale, zero_point):
    """Integer array -> float32 array: ``scale * (q - zero_point)``."""
    return (scale * (np.asarray(values, np.float32) - zero_point)).astype(np.float32)

"""Checks of converted files, run on the bytes before they are moved into place.

An int8 microcontroller model must hold builtin ops only, int8 activations and weights (int32
only for biases, indices and shapes), int8 input and output, and sane quantization parameters;
an Android model must expose one ``image`` -> ``logits`` signature per domain. Both are read
with the LiteRT interpreter (op list from ``_get_ops_details``, tensors from
``get_tensor_details``), the same runtime that will execute them.
"""

import math

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from bap_tf.export.quantization import tensor_quantization
from bap_tf.export.signatures import DEFAULT_SIGNATURE, INPUT_NAME, OUTPUT_NAME

BUILTIN_OPS = frozenset(
    name for name in vars(schema.BuiltinOperator) if name.isupper() and name not in ("CUSTOM", "DELEGATE")
)
# int32 is legitimate in a full-integer model: biases, GATHER indices, PAD/MEAN/RESHAPE operands.
INT8_MODEL_DTYPES = (np.int8, np.int32)


class ModelCheckError(ValueError):
    """A converted model does not have the form its target requires."""


def load(model_bytes, what):
    try:
        return Interpreter(model_content=bytes(model_bytes))
    except (ValueError, RuntimeError) as error:
        raise ModelCheckError(f"The {what} could not be loaded by LiteRT: {error}") from error


def check_int8_model(model_bytes):
    """Raises ``ModelCheckError`` listing every way the model is not a full-int8 builtin model.

    Returns, for a model that passes: ``{"ops": sorted op names, "input": (scale, zero_point),
    "output": (scale, zero_point)}``.
    """
    interpreter = load(model_bytes, "int8 model")
    problems = []
    if interpreter.num_subgraphs() != 1:
        problems.append(f"{interpreter.num_subgraphs()} subgraphs (expected 1)")
    signatures = interpreter.get_signature_list()
    if list(signatures) != [DEFAULT_SIGNATURE]:
        problems.append(f"signatures {list(signatures)} (expected ['{DEFAULT_SIGNATURE}'])")
    elif signatures[DEFAULT_SIGNATURE] != {"inputs": [INPUT_NAME], "outputs": [OUTPUT_NAME]}:
        problems.append(
            f"signature maps {signatures[DEFAULT_SIGNATURE]['inputs']} -> "
            f"{signatures[DEFAULT_SIGNATURE]['outputs']} (expected ['{INPUT_NAME}'] -> ['{OUTPUT_NAME}'])"
        )
    for op in interpreter._get_ops_details():  # pylint: disable=protected-access
        if op["op_name"] not in BUILTIN_OPS:
            problems.append(f"op #{op['index']} {op['op_name']} is not a builtin op")
    for tensor in interpreter.get_tensor_details():
        problems.extend(_int8_tensor_problems(tensor))
    for role, tensors in (("input", interpreter.get_input_details()),
                          ("output", interpreter.get_output_details())):
        for tensor in tensors:
            if tensor["dtype"] != np.int8:
                problems.append(f"model {role} {tensor['name']!r} is {np.dtype(tensor['dtype']).name}")
            elif len(tensor["quantization_parameters"]["scales"]) != 1:
                problems.append(f"model {role} {tensor['name']!r} is not quantized per tensor")
    if problems:
        raise ModelCheckError(
            "The microcontroller model must be full-integer int8 with builtin ops only. Found: "
            + _summary(problems)
        )
    return {
        "ops": sorted({op["op_name"] for op in interpreter._get_ops_details()}),  # pylint: disable=protected-access
        "input": tensor_quantization(interpreter.get_input_details()[0]),
        "output": tensor_quantization(interpreter.get_output_details()[0]),
    }


def _summary(problems, limit=8):
    shown = "; ".join(problems[:limit])
    return shown + (f"; and {len(problems) - limit} more" if len(problems) > limit else "")


def _int8_tensor_problems(tensor):
    name, dtype = tensor["name"], tensor["dtype"]
    if dtype not in INT8_MODEL_DTYPES:
        return [f"tensor {name!r} is {np.dtype(dtype).name}"]
    if dtype != np.int8:
        return []
    params = tensor["quantization_parameters"]
    scales, zero_points = np.asarray(params["scales"]), np.asarray(params["zero_points"])
    if scales.size == 0:
        return [f"int8 tensor {name!r} has no quantization parameters"]
    problems = []
    if not all(math.isfinite(s) and s > 0 for s in scales.tolist()):
        problems.append(f"int8 tensor {name!r} has a scale that is not finite and positive")
    if zero_points.size and (zero_points.min() < -128 or zero_points.max() > 127):
        problems.append(f"int8 tensor {name!r} has a zero point outside [-128, 127]")
    if scales.size > 1 and np.any(zero_points != 0):
        problems.append(f"per-channel int8 tensor {name!r} has non-zero zero points")
    return problems


def check_android_model(model_bytes, domains):
    """Raises ``ModelCheckError`` unless each domain has an ``image`` -> ``logits`` signature.

    Returns the file's signature keys, sorted.
    """
    interpreter = load(model_bytes, "Android model")
    signatures = interpreter.get_signature_list()
    problems = []
    if sorted(signatures) != sorted(domains):
        problems.append(f"signatures {sorted(signatures)} (expected {sorted(domains)})")
    for key in set(signatures) & set(domains):
        runner = interpreter.get_signature_runner(key)
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        if list(inputs) != [INPUT_NAME] or list(outputs) != [OUTPUT_NAME]:
            problems.append(f"signature {key!r} maps {list(inputs)} -> {list(outputs)}")
            continue
        for role, details in (("input", inputs[INPUT_NAME]), ("output", outputs[OUTPUT_NAME])):
            if details["dtype"] != np.float32:
                problems.append(f"signature {key!r} {role} is {np.dtype(details['dtype']).name}")
    if problems:
        raise ModelCheckError(
            f"The Android model must have one '{INPUT_NAME}' -> '{OUTPUT_NAME}' float32 signature "
            "per domain. Found: " + _summary(problems)
        )
    return sorted(signatures)

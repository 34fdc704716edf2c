"""C++ sources that drop an int8 model into a TensorFlow Lite Micro firmware project.

For ``<dir>/<domain>.tflite`` this writes, beside it:

- ``<domain>_model_data.h`` / ``.cc``: the flatbuffer as
  ``alignas(16) const unsigned char g_<domain>_model_data[]`` and its size
  ``g_<domain>_model_data_size``, TFLM's own convention (its ``generate_cc_arrays.py``, and
  ``xxd -i`` before it). TFLM reads the flatbuffer in place, so the array must be aligned.
- ``<domain>_op_resolver.h``: ``<Domain>OpResolver()``, a ``tflite::MicroMutableOpResolver<N>``
  holding exactly the builtin ops the model uses (N = their count, so no slot is wasted), and
  ``k<Domain>ArenaSize``, the measured arena plus ``ARENA_MARGIN``.

The arena is measured by ``micro.find_arena_bytes`` with TFLM's reference kernels on a 64-bit
host. The margin covers what that measurement cannot see: optimized kernels (CMSIS-NN, ...)
that ask for scratch buffers, and other TFLM versions. 32-bit targets need less (smaller
pointers), so the margin is not eaten there.
"""

import hashlib
import math
import re
from pathlib import Path

from bap_tf.atomic import write_text
from bap_tf.export.file_checks import check_int8_model

ARENA_MARGIN = 0.25
ARENA_ALIGN_BYTES = 1024
_BYTES_PER_LINE = 12

# The builtin-op methods of tflite::MicroMutableOpResolver, spelled as in TFLM's
# tensorflow/lite/micro/micro_mutable_op_resolver.h. Each is "Add" + the op's schema name
# without underscores, case aside (AddConv2D: CONV_2D), which is how ops are matched to them.
TFLM_ADD_METHODS = (
    "AddAbs", "AddAdd", "AddAddN", "AddArgMax", "AddArgMin", "AddAssignVariable",
    "AddAveragePool2D", "AddBatchMatMul", "AddBatchToSpaceNd", "AddBroadcastArgs",
    "AddBroadcastTo", "AddCallOnce", "AddCast", "AddCeil", "AddConcatenation", "AddConv2D",
    "AddCos", "AddCumSum", "AddDepthToSpace", "AddDepthwiseConv2D", "AddDequantize", "AddDiv",
    "AddDynamicUpdateSlice", "AddEmbeddingLookup", "AddElu", "AddEqual", "AddExp",
    "AddExpandDims", "AddFill", "AddFloor", "AddFloorDiv", "AddFloorMod", "AddFullyConnected",
    "AddGather", "AddGatherNd", "AddGreater", "AddGreaterEqual", "AddHardSwish", "AddIf",
    "AddL2Normalization", "AddL2Pool2D", "AddLeakyRelu", "AddLess", "AddLessEqual", "AddLog",
    "AddLogicalAnd", "AddLogicalNot", "AddLogicalOr", "AddLogistic", "AddLogSoftmax",
    "AddMaximum", "AddMaxPool2D", "AddMirrorPad", "AddMean", "AddMinimum", "AddMul", "AddNeg",
    "AddNotEqual", "AddPack", "AddPad", "AddPadV2", "AddPrelu", "AddQuantize",
    "AddReadVariable", "AddReduceAll", "AddReduceMax", "AddReduceMin", "AddRelu", "AddRelu6",
    "AddReshape", "AddResizeBilinear", "AddResizeNearestNeighbor", "AddReverseV2", "AddRound",
    "AddRsqrt", "AddSelectV2", "AddShape", "AddSin", "AddSlice", "AddSoftmax",
    "AddSpaceToBatchNd", "AddSpaceToDepth", "AddSplit", "AddSplitV", "AddSqueeze", "AddSqrt",
    "AddSquare", "AddSquaredDifference", "AddStridedSlice", "AddSub", "AddSum", "AddSvdf",
    "AddTanh", "AddTransposeConv", "AddTranspose", "AddUnpack",
    "AddUnidirectionalSequenceLSTM", "AddVarHandle", "AddWhile", "AddZerosLike",
)


def op_key(name):
    """What an op name and its ``Add`` method share: ``CONV_2D`` and ``AddConv2D`` give ``CONV2D``."""
    name = name[3:] if name.startswith("Add") else name
    return name.replace("_", "").upper()


_METHOD_FOR_OP = {op_key(method): method for method in TFLM_ADD_METHODS}


def arena_size(measured_bytes):
    """The arena firmware should reserve: ``measured_bytes`` plus ``ARENA_MARGIN``, rounded up
    to a multiple of ``ARENA_ALIGN_BYTES``."""
    measured_bytes = int(measured_bytes)
    if measured_bytes <= 0:
        raise ValueError(
            f"The measured arena must be a positive number of bytes. Received: arena_bytes={measured_bytes}"
        )
    return math.ceil(measured_bytes * (1 + ARENA_MARGIN) / ARENA_ALIGN_BYTES) * ARENA_ALIGN_BYTES


def write_firmware_sources(model_path, arena_bytes):
    """Writes the three sources beside the int8 ``model_path``; returns ``{kind: Path}``.

    Args:
        model_path: an int8 ``.tflite`` (builtin ops only, as ``export_micro`` writes).
        arena_bytes: the smallest arena the model ran in (``micro.find_arena_bytes``).

    Returns:
        ``{"model_data_h", "model_data_cc", "op_resolver_h"}`` paths.

    Raises:
        ModelCheckError: not a full-int8 builtin model. ValueError: an op TFLM's resolver has
        no method for, or a bad ``arena_bytes``.
    """
    model_path = Path(model_path)
    content = model_path.read_bytes()
    name = c_identifier(model_path.stem)
    ops = check_int8_model(content)["ops"]
    source = f"{model_path.parent.name}/{model_path.name}"
    paths = {
        "model_data_h": model_path.with_name(f"{model_path.stem}_model_data.h"),
        "model_data_cc": model_path.with_name(f"{model_path.stem}_model_data.cc"),
        "op_resolver_h": model_path.with_name(f"{model_path.stem}_op_resolver.h"),
    }
    header, array = model_data_sources(name, content, source, paths["model_data_h"].name)
    resolver = op_resolver_source(name, ops, arena_bytes, source)
    write_text(paths["model_data_h"], header)
    write_text(paths["model_data_cc"], array)
    write_text(paths["op_resolver_h"], resolver)
    return paths


def model_data_sources(name, content, source, header_name):
    """``(header, cc)`` texts holding ``content`` as ``g_<name>_model_data``; the cc includes
    the header as ``header_name``."""
    symbol = f"g_{name}_model_data"
    digest = hashlib.sha256(content).hexdigest()
    banner = f"// Generated by bap-export from {source} ({len(content)} bytes, sha256 {digest}).\n"
    guard = f"BAP_TF_{name.upper()}_MODEL_DATA_H_"
    header = (
        f"{banner}#ifndef {guard}\n#define {guard}\n\n"
        f"constexpr unsigned int {symbol}_size = {len(content)};\n"
        f"extern const unsigned char {symbol}[];\n\n#endif  // {guard}\n"
    )
    lines = [
        "  " + ", ".join(f"0x{byte:02x}" for byte in content[start:start + _BYTES_PER_LINE]) + ","
        for start in range(0, len(content), _BYTES_PER_LINE)
    ]
    # The header comes first: it gives the const array external linkage.
    cc = (
        f'{banner}#include "{header_name}"\n\n'
        f"alignas(16) const unsigned char {symbol}[] = {{\n" + "\n".join(lines) + "\n};\n"
    )
    return header, cc


def op_resolver_source(name, ops, arena_bytes, source):
    """The ``<name>_op_resolver.h`` text: the resolver with ``ops`` and the arena constant."""
    unknown = sorted(op for op in ops if op_key(op) not in _METHOD_FOR_OP)
    if unknown:
        raise ValueError(
            "TFLM's MicroMutableOpResolver has no Add method for some ops of the model. "
            f"Expected builtin ops TFLM supports. Received: ops={unknown}"
        )
    methods = sorted(_METHOD_FOR_OP[op_key(op)] for op in set(ops))
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    count, guard = len(methods), f"BAP_TF_{name.upper()}_OP_RESOLVER_H_"
    adds = "".join(f"  resolver.{method}();\n" for method in methods)
    return (
        f"// Generated by bap-export for {source}.\n"
        f"#ifndef {guard}\n#define {guard}\n\n#include <cstddef>\n\n"
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
        f"// Smallest arena measured with TFLM's reference kernels: {int(arena_bytes)} bytes; plus\n"
        f"// {ARENA_MARGIN:.0%} for optimized kernels' scratch buffers and other TFLM versions, rounded\n"
        f"// up to {ARENA_ALIGN_BYTES} bytes.\n"
        f"constexpr std::size_t k{camel}ArenaSize = {arena_size(arena_bytes)};\n\n"
        f"// The {count} builtin ops the model uses. Keep the resolver alive as long as the\n"
        f"// interpreter: static auto resolver = {camel}OpResolver();\n"
        f"inline tflite::MicroMutableOpResolver<{count}> {camel}OpResolver() {{\n"
        f"  tflite::MicroMutableOpResolver<{count}> resolver;\n{adds}  return resolver;\n}}\n\n"
        f"#endif  // {guard}\n"
    )


def c_identifier(domain):
    """A C identifier for a domain name: other characters become ``_``; ``domain_`` goes before
    a leading digit."""
    name = re.sub(r"\W", "_", domain, flags=re.ASCII)
    return f"domain_{name}" if name[:1].isdigit() else name

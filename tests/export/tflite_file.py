"""Reads a .tflite flatbuffer's structure for the tests: which buffer each op's weights use."""

import numpy as np
from ai_edge_litert import schema_py_generated as schema

_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if name.isupper()}


def weight_buffers(model_bytes, op_name):
    """Per subgraph, ``[(buffer index, shape)]`` of input 1 (the filter/weights) of each op.

    Subgraphs come in signature order; ops in execution order.
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    result = []
    for subgraph in model.subgraphs:
        entries = []
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if _OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)] == op_name:
                tensor = subgraph.tensors[op.inputs[1]]
                entries.append((tensor.buffer, tuple(tensor.shape)))
        result.append(entries)
    return result


def buffer_data(model_bytes, index):
    """The raw bytes of buffer ``index``."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    data = model.buffers[index].data
    return b"" if data is None else np.asarray(data, np.uint8).tobytes()

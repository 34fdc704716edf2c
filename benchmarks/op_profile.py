"""Where a ``.tflite`` file's time goes: each operator timed alone, cut out of the file itself.

LiteRT's Python interpreter has no per-operator profiler, so each operator of a signature's
subgraph is copied into a one-operator model of its own (same options, same weights, same fused
activation, its non-constant inputs as the model's inputs) and timed with the same interpreter
settings as the whole file (XNNPACK delegate; an operator XNNPACK does not run, such as
``GATHER``, runs on LiteRT's kernels as it does in the whole file). The per-operator times are
reported with each operator's MACs, read from its tensors' shapes, and their sum is compared with
the whole signature's time measured in the same rounds: the gap is what running them in one graph
saves or costs (partition boundaries, cache reuse) plus one ``Invoke`` per operator.
"""

import numpy as np

# The operators that do multiply-accumulates; everything else counts zero.
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def op_names():
    schema = _schema()
    return {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}


def read_model(data):
    schema = _schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))


def subgraph_index(model, signature):
    """Index of the subgraph behind ``signature`` (the only one when the file has no signatures)."""
    for definition in model.signatureDefs or []:
        key = definition.signatureKey
        key = key.decode() if isinstance(key, bytes) else key
        if key == signature:
            return definition.subgraphIndex
    if len(model.subgraphs) == 1:
        return 0
    raise ValueError(f"No signature {signature!r} in the model.")


def _is_constant(model, tensor):
    data = model.buffers[tensor.buffer].data if tensor.buffer > 0 else None
    return data is not None and len(data) > 0


def single_op_model(model, graph_index, op_index):
    """``bytes`` of a model holding only operator ``op_index`` of subgraph ``graph_index``."""
    import copy

    import flatbuffers

    schema = _schema()
    graph = model.subgraphs[graph_index]
    op = copy.deepcopy(graph.operators[op_index])
    used = [t for t in list(op.inputs) + list(op.outputs) + list(op.intermediates or []) if t >= 0]
    tensor_map, buffers, tensors = {}, [schema.BufferT()], []
    for t in dict.fromkeys(used):
        tensor = copy.copy(graph.tensors[t])
        if _is_constant(model, tensor):
            buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        tensor_map[t] = len(tensors)
        tensors.append(tensor)
    remap = lambda indices: [tensor_map[i] if i >= 0 else -1 for i in indices]  # noqa: E731
    new_graph = schema.SubGraphT()
    new_graph.tensors = tensors
    new_graph.inputs = [tensor_map[t] for t in dict.fromkeys(t for t in op.inputs if t >= 0)
                        if not _is_constant(model, graph.tensors[t])]
    new_graph.outputs = remap(op.outputs)
    op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
    if op.intermediates is not None:
        op.intermediates = remap(op.intermediates)
    new_graph.operators = [op]
    new_graph.name = b"op"
    new = schema.ModelT()
    new.version = model.version
    new.operatorCodes = model.operatorCodes
    new.subgraphs = [new_graph]
    new.buffers = buffers
    new.description = b"single operator"
    builder = flatbuffers.Builder(1024)
    builder.Finish(new.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_macs(model, graph, op, name):
    """Multiply-accumulates of one operator from its tensors' shapes (0 for non-MAC ops)."""
    if name not in MAC_OPS:
        return 0
    weights = graph.tensors[op.inputs[1]].shape
    output = graph.tensors[op.outputs[0]].shape
    positions = int(np.prod(output[:-1]))
    if name == "CONV_2D":  # weights (C_out, kh, kw, C_in)
        return positions * int(np.prod(weights))
    if name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, C)
        return positions * int(np.prod(weights[1:]))
    return positions * int(np.prod(weights))  # FULLY_CONNECTED: (out, in)


def describe_op(graph, op, name):
    """Short text: the operator and its main shapes (``CONV_2D 3x3 30->36 @16x16``)."""
    output = list(graph.tensors[op.outputs[0]].shape)
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        weights = list(graph.tensors[op.inputs[1]].shape)
        source = list(graph.tensors[op.inputs[0]].shape)
        kernel = f"{weights[1]}x{weights[2]}"
        return f"{name} {kernel} {source[-1]}->{output[-1]} @{output[1]}x{output[2]}"
    return f"{name} ->{'x'.join(map(str, output[1:]))}"


def ops_of(data, signature):
    """``[(index, name, macs, description, single-op model bytes)]`` of one signature's operators."""
    model = read_model(data)
    names = op_names()
    index = subgraph_index(model, signature)
    graph = model.subgraphs[index]
    rows = []
    for i, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        name = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        rows.append((i, name, op_macs(model, graph, op, name), describe_op(graph, op, name),
                     single_op_model(model, index, i)))
    return rows


def invoker(data, threads, seed=0):
    """A zero-argument call that invokes a one-subgraph model on random inputs set once."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        dtype = detail["dtype"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -100), min(info.max, 100), size=detail["shape"], dtype=dtype)
        else:
            value = rng.random(detail["shape"], dtype=np.float32).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    wrapper = getattr(interpreter, "_interpreter", None)
    if wrapper is not None and hasattr(wrapper, "Invoke"):
        try:
            wrapper.Invoke(0)
            return lambda: wrapper.Invoke(0)
        except TypeError:
            pass
    return interpreter.invoke

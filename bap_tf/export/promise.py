"""Whether the written files keep the method's promise: every domain served with fewer
parameters and less time than one unpruned backbone.

The export stage writes the unpruned backbone beside the pruned files, converted the same way
(float32 for Android, full int8 for microcontrollers): every switch on, the first domain's
BatchNorms and head. The eval stage compares

- the Android file's stored parameters (the elements of its constant weight buffers, each
  buffer once, as the flatbuffer stores them) and bytes with the backbone file's plus the other
  domains' heads: one backbone that would serve every domain;
- each signature's latency with the backbone's (LiteRT, 1 thread, batch 1, alternating rounds,
  medians: ``export.timing``);
- the flash that every domain's int8 file takes together with the int8 backbone's.
"""

import os

import numpy as np
from ai_edge_litert import schema_py_generated as schema

# Constant tensors that hold weights (shapes, indices and int32 biases of int8 files aside).
_WEIGHT_TYPES = (schema.TensorType.FLOAT32, schema.TensorType.FLOAT16, schema.TensorType.INT8)


def stored_parameters(path):
    """Elements of the weight buffers of a ``.tflite`` file, each buffer counted once however
    many signatures read it."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(open(path, "rb").read()), 0)
    sizes = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer = model.buffers[tensor.buffer] if tensor.buffer else None
            stored = buffer is not None and (buffer.data is not None and len(buffer.data) or buffer.size)
            if stored and tensor.type in _WEIGHT_TYPES:
                sizes[tensor.buffer] = int(np.prod(tensor.shape)) if tensor.shape is not None else 1
    return sum(sizes.values())


def head_parameters(model):
    """Parameters of a domain model's classifier: its last Dense layer."""
    import keras

    (head,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1:]
    return int(sum(np.prod(weight.shape) for weight in head.weights))


def android_promise(android_path, backbone_path, backbone_domain, head_params, latency_ms, macs_ratio):
    """The Android file against one backbone that would serve every domain.

    Args:
      android_path, backbone_path: the float32 Android file and the unpruned backbone's.
      backbone_domain: the domain whose head the backbone file holds.
      head_params: ``{domain: parameters of its head}``.
      latency_ms: ``{domain: ms}`` of the file's signatures, and ``"backbone"``, timed together.
      macs_ratio: ``{domain: MACs of its signature / the backbone's}``.
    """
    other_heads = sum(p for d, p in head_params.items() if d != backbone_domain)
    params, backbone_params = stored_parameters(android_path), stored_parameters(backbone_path) + other_heads
    size, backbone_size = os.path.getsize(android_path), os.path.getsize(backbone_path) + 4 * other_heads
    backbone_ms = latency_ms["backbone"]
    signatures = {
        d: {"latency_ms": ms, "latency_ratio": ms / backbone_ms, "macs_ratio": macs_ratio[d],
            "latency_per_macs": (ms / backbone_ms) / macs_ratio[d]}
        for d, ms in latency_ms.items() if d != "backbone"
    }
    return {
        "params": params, "backbone_params": backbone_params, "params_ratio": params / backbone_params,
        "bytes": size, "backbone_bytes": backbone_size, "bytes_ratio": size / backbone_size,
        "backbone_latency_ms": backbone_ms, "signatures": signatures,
        "kept": params <= backbone_params and size <= backbone_size
        and all(s["latency_ratio"] < 1.0 for s in signatures.values()),
    }


def micro_promise(int8_paths, backbone_int8_path):
    """The flash of every domain's int8 file together against the int8 backbone's."""
    total, backbone = sum(os.path.getsize(p) for p in int8_paths.values()), os.path.getsize(backbone_int8_path)
    return {"bytes": total, "backbone_bytes": backbone, "bytes_ratio": total / backbone, "kept": total <= backbone}


def describe(promise):
    """Markdown lines: the promise, kept or not, for the files that were written."""
    lines = []
    android = promise.get("android")
    if android:
        ratios = [s["latency_ratio"] for s in android["signatures"].values()]
        lines.append(
            f"- The Android file ({promise['layout']} layout) **{'keeps' if android['kept'] else 'does not keep'}** "
            f"the promise: it stores {android['params']:,} parameters (x{android['params_ratio']:.2f} of one backbone "
            f"with every domain's head, {android['backbone_params']:,}) in {android['bytes'] / 1024:.1f} KiB "
            f"(x{android['bytes_ratio']:.2f}), and its signatures take x{min(ratios):.2f}-x{max(ratios):.2f} of the "
            f"backbone's {android['backbone_latency_ms']:.2f} ms (LiteRT, 1 thread).")
        for domain, entry in android["signatures"].items():
            lines.append(f"  - `{domain}`: {entry['latency_ms']:.2f} ms (x{entry['latency_ratio']:.2f} of the "
                         f"backbone's time at x{entry['macs_ratio']:.2f} of its MACs)")
    micro = promise.get("micro")
    if micro:
        lines.append(
            f"- The int8 files of every domain take {micro['bytes'] / 1024:.1f} KiB of flash together, "
            f"x{micro['bytes_ratio']:.2f} of one int8 backbone ({micro['backbone_bytes'] / 1024:.1f} KiB): "
            f"{'kept' if micro['kept'] else 'not kept'}.")
    return lines

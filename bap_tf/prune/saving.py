"""The union-pruned model as one Keras model, for training and for one ``.keras`` file.

The union model is ``{domain: keras.Model}`` whose models call the same conv layer objects.
``joint_model`` lays all domains side by side in one flat functional model (one image input
and one logits output per domain, keyed by domain name) that calls those same layers, so
fitting it trains the shared weights once and saving it stores them once. ``split_joint``
goes back: one ``image -> logits`` model per domain over the joint model's layers.

Both directions re-call layers by replaying a model's public config (``inbound_nodes`` /
``keras_history``), the same data ``Model.from_config`` reads; no private node objects, and no
nested models (whose shared layers Keras would save and load once per nesting model).
"""

import keras

# Imported for its side effect too: registers bap_tf's layers for ``load_model``.
from bap_tf import layers as bap_layers  # noqa: F401
from bap_tf.graph import endpoint_names, history_of, keras_histories, map_tensors


def replay(model, inputs, outputs=None):
    """Calls ``model``'s layers again on new ``inputs``; returns the new output tensors.

    Args:
      model: a functional model.
      inputs: ``{input layer name: tensor}`` standing for the model's inputs.
      outputs: ``keras_history`` triples ``[layer, node, tensor]`` to compute; by default the
        model's outputs (as its config lists them: one triple, or a list or dict of them).
    Returns the computed tensors in the structure of ``outputs``.
    """
    config = model.get_config()
    entries = {entry["name"]: entry for entry in config["layers"]}
    layers = {op.name: op for op in model.operations}
    outputs = config["output_layers"] if outputs is None else outputs
    computed = {}

    def tensor(reference):
        name, node_index, tensor_index = history_of(reference)
        return _pick(inputs[name] if name in inputs else computed[(name, node_index)], tensor_index)

    def node_inputs(key):
        node = entries[key[0]]["inbound_nodes"][key[1]]
        return [tuple(h[:2]) for h in keras_histories(node) if h[0] not in inputs]

    # Depth-first post-order without recursion: ResNet-50 is deeper than Python's stack.
    wanted = [tuple(h[:2]) for h in keras_histories(outputs, triples=True) if h[0] not in inputs]
    stack = [(key, False) for key in wanted]
    while stack:
        key, ready = stack.pop()
        if key in computed:
            continue
        pending = [k for k in node_inputs(key) if k not in computed]
        if ready or not pending:
            node = entries[key[0]]["inbound_nodes"][key[1]]
            args = map_tensors(node.get("args", []), tensor)
            kwargs = map_tensors(node.get("kwargs", {}), tensor)
            computed[key] = layers[key[0]](*args, **kwargs)
        else:
            stack.append((key, True))
            stack.extend((k, False) for k in pending)

    return map_tensors(outputs, tensor, triples=True)


def joint_model(models, name="union"):
    """One flat model over the union's per-domain models: inputs and outputs keyed by domain.

    Input ``{domain}`` takes that domain's images; output ``{domain}`` is its logits. The
    layers are the per-domain models' own objects, so training the joint model trains them.
    """
    inputs, outputs = {}, {}
    for domain, model in models.items():
        if len(model.inputs) != 1:
            raise ValueError(
                f"Each domain's model needs one image input. Received: {domain!r} has {len(model.inputs)}"
            )
        inputs[domain] = keras.Input(shape=model.inputs[0].shape[1:], name=domain)
        outputs[domain] = replay(model, {endpoint_names(model.get_config()["input_layers"])[0]: inputs[domain]})
    return keras.Model(inputs, outputs, name=name)


def split_joint(joint):
    """``{domain: keras.Model}`` (input ``image``) over the layers of a ``joint_model``."""
    config = joint.get_config()
    input_layers, output_layers = config["input_layers"], config["output_layers"]
    if not isinstance(input_layers, dict) or not isinstance(output_layers, dict):
        raise ValueError(
            f"Expected a joint model with inputs and outputs keyed by domain. Received: model {joint.name!r}"
        )
    models = {}
    for domain, output in output_layers.items():
        source = joint.get_layer(input_layers[domain][0])
        image = keras.Input(shape=source.output.shape[1:], name="image")
        logits = replay(joint, {input_layers[domain][0]: image}, output)
        models[domain] = keras.Model(image, logits, name=domain)
    return models


def save_union(models, path):
    """Saves the union model (``{domain: keras.Model}``) as one ``.keras`` file, shared weights once."""
    joint_model(models).save(path)


def load_union(path):
    """Loads ``save_union``'s file back as ``{domain: keras.Model}`` sharing their layers.

    Without its training configuration: a fine-tuned model's loss (e.g. ``DistillationLoss``)
    need not be importable where the model is only run."""
    return split_joint(keras.saving.load_model(path, compile=False))


def _pick(outputs, index):
    return outputs[index] if isinstance(outputs, (list, tuple)) else outputs

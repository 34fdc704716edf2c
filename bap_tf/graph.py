"""A read-only view of a Keras functional model as a list of nodes in topological order.

Built from the public ``get_config()`` of the model (each operation's ``inbound_nodes``), never
from Keras' private node objects, so the same code reads backbones, switched networks and
pruned models across Keras releases. Nodes are layers and Keras 3 operations on tensors
(``x + 3.0`` is an ``Add`` operation in ``model.operations``, not a layer). Nested functional
models are inlined, so a backbone wrapped with preprocessing layers reads as one flat graph.
"""

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class Node:
    """One call: the layer (or operation), the names of the nodes it reads, in order, and the
    serialized call (``{"args", "kwargs"}`` with tensors as ``keras_history`` references), which
    keeps constants such as the ``3.0`` of ``x + 3.0`` for calling a rebuilt layer the same way."""

    layer: keras.Operation
    inputs: tuple[str, ...]
    call: dict = dataclasses.field(default_factory=dict, compare=False)

    @property
    def name(self):
        return self.layer.name

    def arguments(self, tensors, skip=()):
        """``(args, kwargs)`` of this call with each tensor reference replaced by
        ``tensors[name]``; references to ``skip`` (e.g. the domain input) are left out."""

        def substitute(reference):
            name = history_of(reference)[0]
            return DROP if name in skip else tensors[name]

        return (map_tensors(list(self.call.get("args", [])), substitute),
                map_tensors(dict(self.call.get("kwargs", {})), substitute))


class LayerGraph:
    """Nodes of a functional model keyed by layer name, in topological order.

    Each layer may be called once and produce one tensor (true of the CNN backbones bap-tf
    supports); anything else is refused with an error naming the layer.
    """

    def __init__(self, model):
        if not isinstance(model, keras.Model) or not hasattr(model, "inputs") or model.inputs is None:
            raise ValueError(
                "bap_tf needs a Keras functional model (built with keras.Input). "
                f"Received: model={type(model).__name__}"
            )
        self.nodes = {}
        self.input_names = []
        # A nested model's name stands for its output layer when outer layers read it.
        self._aliases = {}
        self.output_names = self._add_model(model, renamed_inputs={})

    def _add_model(self, model, renamed_inputs):
        config = model.get_config()
        operations = {op.name: op for op in model.operations}
        input_names = endpoint_names(config["input_layers"])
        for entry in config["layers"]:
            name = entry["name"]
            layer = operations[name]
            if name in input_names:
                if name not in renamed_inputs:
                    self._add(Node(layer, ()))
                    self.input_names.append(name)
                continue
            if len(entry["inbound_nodes"]) != 1:
                raise ValueError(
                    "bap_tf supports layers called exactly once in the backbone. "
                    f"Received: layer '{name}' called {len(entry['inbound_nodes'])} times"
                )
            call = _rename(entry["inbound_nodes"][0], renamed_inputs)
            inputs = [history[0] for history in keras_histories(call.get("args", []))]
            if isinstance(layer, keras.Sequential):
                self._inline_sequential(layer, inputs)
            elif isinstance(layer, keras.Model):
                self._inline(layer, inputs)
            else:
                self._add(Node(layer, tuple(inputs), call))
        return [self._aliases.get(name, renamed_inputs.get(name, name))
                for name in endpoint_names(config["output_layers"])]

    def _inline(self, submodel, inputs):
        sub_inputs = endpoint_names(submodel.get_config()["input_layers"])
        if len(sub_inputs) != len(inputs):
            raise ValueError(f"Cannot inline nested model '{submodel.name}': input count mismatch.")
        outputs = self._add_model(submodel, renamed_inputs=dict(zip(sub_inputs, inputs)))
        if len(outputs) != 1:
            raise ValueError(f"Nested model '{submodel.name}' must have one output. Received: {outputs}")
        self._aliases[submodel.name] = outputs[0]

    def _inline_sequential(self, submodel, inputs):
        """A nested Sequential (its config has no graph): its layers called one after another."""
        if len(inputs) != 1:
            raise ValueError(f"Cannot inline nested Sequential '{submodel.name}': it takes one input.")
        previous = inputs[0]
        for layer in submodel.layers:
            self._add(Node(layer, (previous,), {"args": [_tensor_reference(previous)], "kwargs": {}}))
            previous = layer.name
        self._aliases[submodel.name] = previous

    def _add(self, node):
        if node.name in self.nodes:
            raise ValueError(f"Two layers are named '{node.name}'; bap_tf needs unique layer names.")
        call = _rename(node.call, self._aliases)
        self.nodes[node.name] = Node(node.layer, tuple(self._aliases.get(n, n) for n in node.inputs), call)

    def consumers(self, name):
        """Names of the nodes that read ``name``'s output."""
        return [node.name for node in self.nodes.values() if name in node.inputs]

    def __iter__(self):
        return iter(self.nodes.values())

    def __getitem__(self, name):
        return self.nodes[name]


def endpoint_names(layers_entry):
    """Layer names of a config's ``input_layers`` / ``output_layers``, in order."""
    return [entry[0] for entry in _as_list(layers_entry)]


def _as_list(layers_entry):
    """``input_layers``/``output_layers`` as a list of [name, node, tensor] triples.

    A model built with a dict of inputs stores a dict there, a single-input or single-output
    model one bare triple.
    """
    if isinstance(layers_entry, dict):
        return list(layers_entry.values())
    if layers_entry and isinstance(layers_entry[0], str):
        return [layers_entry]
    return layers_entry


# Returned by a ``map_tensors`` replacement: the reference leaves its list or dict.
DROP = object()


def map_tensors(structure, replace, triples=False):
    """A copy of a serialized structure with each tensor reference replaced by ``replace(it)``.

    ``structure`` is part of a functional config: an ``inbound_nodes`` entry (a call's
    ``{"args", "kwargs"}``), or with ``triples`` its ``output_layers``, where a bare
    ``[layer, node, tensor]`` counts as a reference too. A reference replaced by ``DROP`` is
    left out of its list or dict. The one walker of this config format: everything that reads
    or rewrites a model's config goes through it.
    """
    if is_keras_tensor(structure) or (triples and is_history_triple(structure)):
        return replace(structure)
    if isinstance(structure, dict):
        items = ((key, map_tensors(value, replace, triples)) for key, value in structure.items())
        return {key: value for key, value in items if value is not DROP}
    if isinstance(structure, (list, tuple)):
        values = (map_tensors(value, replace, triples) for value in structure)
        return type(structure)(value for value in values if value is not DROP)
    return structure


def history_of(reference):
    """The ``[layer, node, tensor]`` of a tensor reference (a ``__keras_tensor__`` or a triple)."""
    return reference["config"]["keras_history"] if is_keras_tensor(reference) else reference


def keras_histories(structure, triples=False):
    """Every ``keras_history`` (``[layer, node, tensor]``) in a serialized call, in order
    (``map_tensors``' ``structure`` and ``triples``)."""
    histories = []
    map_tensors(structure, lambda reference: histories.append(history_of(reference)), triples)
    return histories


def producer_names(config):
    """``{layer name: [names of the layers whose outputs it reads, in call order]}`` of a
    functional ``config`` (``model.get_config()``), every call of a layer included."""
    return {entry["name"]: [history[0] for history in keras_histories(entry["inbound_nodes"])]
            for entry in config["layers"]}


def is_keras_tensor(value):
    """Whether a serialized value stands for a tensor (``__keras_tensor__``)."""
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def is_history_triple(value):
    """Whether a value is a bare ``[layer, node, tensor]`` history, as in ``output_layers``."""
    return isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str)


def _rename(structure, names):
    """A copy of a serialized call whose tensor references to ``names`` keys point to their values."""

    def renamed(reference):
        name, *rest = history_of(reference)
        return {**reference, "config": {**reference["config"], "keras_history": [names.get(name, name), *rest]}}

    return map_tensors(structure, renamed)


def _tensor_reference(name):
    """The serialized form of layer ``name``'s output, as in ``inbound_nodes``."""
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}

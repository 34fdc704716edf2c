"""A read-only view of a Keras functional model as a list of nodes in topological order.

Built from the public ``get_config()`` of the model (each layer's ``inbound_nodes``), never
from Keras' private node objects, so the same code reads backbones, switched networks and
pruned models across Keras releases. Nested functional models are inlined, so a backbone
wrapped with preprocessing layers reads as one flat graph.
"""

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class Node:
    """One layer call: the layer and the names of the layers whose outputs it reads, in order."""

    layer: keras.layers.Layer
    inputs: tuple[str, ...]

    @property
    def name(self):
        return self.layer.name


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
        layers = {layer.name: layer for layer in model.layers}
        input_names = [entry[0] for entry in _as_list(config["input_layers"])]
        for entry in config["layers"]:
            name = entry["name"]
            layer = layers[name]
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
            inputs = tuple(renamed_inputs.get(n, n) for n in _producer_names(entry["inbound_nodes"][0]))
            if isinstance(layer, keras.Model):
                self._inline(layer, inputs)
            else:
                self._add(Node(layer, inputs))
        return [
            self._aliases.get(name, renamed_inputs.get(name, name))
            for name, _, _ in _as_list(config["output_layers"])
        ]

    def _inline(self, submodel, inputs):
        sub_inputs = [entry[0] for entry in _as_list(submodel.get_config()["input_layers"])]
        if len(sub_inputs) != len(inputs):
            raise ValueError(f"Cannot inline nested model '{submodel.name}': input count mismatch.")
        outputs = self._add_model(submodel, renamed_inputs=dict(zip(sub_inputs, inputs)))
        if len(outputs) != 1:
            raise ValueError(f"Nested model '{submodel.name}' must have one output. Received: {outputs}")
        self._aliases[submodel.name] = outputs[0]

    def _add(self, node):
        if node.name in self.nodes:
            raise ValueError(f"Two layers are named '{node.name}'; bap_tf needs unique layer names.")
        self.nodes[node.name] = Node(node.layer, tuple(self._aliases.get(n, n) for n in node.inputs))

    def consumers(self, name):
        """Names of the nodes that read ``name``'s output."""
        return [node.name for node in self.nodes.values() if name in node.inputs]

    def __iter__(self):
        return iter(self.nodes.values())

    def __getitem__(self, name):
        return self.nodes[name]


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


def _producer_names(inbound_node):
    names = []

    def visit(value):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            names.append(value["config"]["keras_history"][0])
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit(inbound_node.get("args", []))
    return names

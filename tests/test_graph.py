import keras
import pytest

from bap_tf.graph import LayerGraph


def test_nested_models_are_inlined_in_topological_order():
    inner_in = keras.Input((4, 4, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(2, 1, name="inner_conv")(inner_in), name="inner")
    image = keras.Input((4, 4, 3), name="image")
    x = keras.layers.Rescaling(2.0, name="scale")(image)
    y = keras.layers.ReLU(name="relu")(inner(x))
    graph = LayerGraph(keras.Model(image, y))
    assert list(graph.nodes) == ["image", "scale", "inner_conv", "relu"]
    assert graph["inner_conv"].inputs == ("scale",)
    assert graph["relu"].inputs == ("inner_conv",)
    assert graph.output_names == ["relu"]
    assert graph.consumers("scale") == ["inner_conv"]


def test_layers_called_twice_are_refused_by_name():
    image = keras.Input((4, 4, 3))
    shared = keras.layers.Conv2D(3, 1, name="shared")
    model = keras.Model(image, shared(shared(image)))
    with pytest.raises(ValueError, match="layer 'shared' called 2 times"):
        LayerGraph(model)


def test_subclassed_models_are_refused():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="functional model"):
        LayerGraph(Net())


def test_dict_inputs_are_read():
    image = keras.Input((4, 4, 3), name="image")
    scale = keras.Input((), name="scale")
    y = keras.layers.Conv2D(2, 1, name="conv")(image)
    graph = LayerGraph(keras.Model({"image": image, "scale": scale}, y))
    assert graph.input_names == ["image", "scale"]
    assert graph.output_names == ["conv"]


def test_nested_sequential_is_inlined_as_a_chain():
    stem = keras.Sequential([keras.layers.Conv2D(2, 1, name="stem_conv"), keras.layers.ReLU(name="stem_relu")],
                            name="stem")
    image = keras.Input((4, 4, 3), name="image")
    y = keras.layers.ReLU(name="out")(stem(image) + 1.0)
    graph = LayerGraph(keras.Model(image, y))
    names = list(graph.nodes)
    assert names[:3] == ["image", "stem_conv", "stem_relu"] and names[-1] == "out"
    add = graph[names[3]]  # the Keras 3 operation ``+ 1.0``, read from model.operations
    assert add.inputs == ("stem_relu",) and add.call["args"][1] == 1.0
    assert graph["out"].inputs == (add.name,)

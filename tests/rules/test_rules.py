"""The rule table: lookup, refusals by name, its description, and rules of your own."""

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf import costs, rules, switching
from bap_tf.prune import Rewriter
from bap_tf.prune.finetune import unfreeze
from bap_tf.rules import UnsupportedLayerError

DOMAINS = [("a", 3), ("b", 5)]


def test_rule_table_covers_every_layer_the_switched_network_holds():
    table = rules.describe_rules()
    for name in ("SwitchedConv2D", "Conv2D", "DepthwiseConv2D", "DomainBatchNormalization",
                 "BatchNormalization", "Add", "Concatenate", "DomainHeads", "ReLU", "ZeroPadding2D",
                 "SeparableConv2D", "Multiply", "operation Add", "Reshape", "Dropout", "Normalization",
                 "InputLayer", "ChannelGather", "ChannelMask"):
        assert name in table
    for aspect in rules.ASPECTS:
        assert table.count(f" {aspect}:") == len(rules.RULES)
    # Each line is the docstring of the method that does it.
    assert rules.ConvRule.couple.__doc__.split(".")[0] in table


def test_rules_by_layer_type():
    assert isinstance(rules.rule_for(keras.layers.ReLU()), rules.ChannelwiseRule)
    assert isinstance(rules.rule_for(keras.layers.Add()), rules.MergeRule)
    assert isinstance(rules.rule_for(keras.layers.Dropout(0.2)), rules.DropoutRule)
    assert rules.find_rule(keras.layers.LayerNormalization()) is None


def _refused(middle, message):
    network = prune_nets.tiny_network(middle)
    with pytest.raises(UnsupportedLayerError, match=message):
        Rewriter(network, prune_nets.domains_of(network))


def test_dense_in_the_middle_is_refused_by_name():
    _refused(
        lambda x, domain: keras.layers.Dense(4, name="mixer")(x),
        r"Layer 'mixer' \(Dense\) is not supported by bap_tf: a Dense layer inside the network",
    )


def test_grouped_conv_is_refused_by_name():
    _refused(
        lambda x, domain: keras.layers.Conv2D(4, 1, groups=2, name="grouped")(x),
        r"Layer 'grouped' \(Conv2D\) is not supported by bap_tf: grouped convolution \(groups=2\)",
    )


def test_unknown_layer_and_channel_mixing_activation_are_refused_by_name():
    _refused(
        lambda x, domain: keras.layers.LayerNormalization(name="ln")(x),
        r"Layer 'ln' \(LayerNormalization\) is not supported by bap_tf: it normalizes over the channels",
    )
    _refused(
        lambda x, domain: keras.layers.Activation("softmax", name="probs")(x),
        r"Layer 'probs' \(Activation\) is not supported by bap_tf: activation 'softmax' mixes channels",
    )


def _tiny_backbone(middle):
    image = keras.Input((8, 8, 4), name="image")
    x = keras.layers.Conv2D(4, 1, name="stem")(image)
    return keras.Model(image, keras.layers.GlobalAveragePooling2D(name="pool")(middle(x)))


@pytest.mark.parametrize(
    "middle, message",
    [
        (lambda x: keras.layers.Conv2D(4, 1, groups=2, name="bad")(x), r"'bad' \(Conv2D\).*grouped convolution"),
        (lambda x: keras.layers.LayerNormalization(name="bad")(x),
         r"'bad' \(LayerNormalization\).*normalizes over the channels"),
        (lambda x: keras.layers.DepthwiseConv2D(1, depth_multiplier=2, name="bad")(x),
         r"'bad' \(DepthwiseConv2D\).*depth_multiplier=2"),
        (lambda x: keras.layers.SeparableConv2D(4, 1, depth_multiplier=2, name="bad")(x),
         r"'bad' \(SeparableConv2D\).*depth_multiplier=2"),
        (lambda x: keras.layers.Dense(4, name="bad")(x), r"'bad' \(Dense\).*a Dense layer inside the network"),
        (lambda x: keras.layers.Activation("softmax", name="bad")(x), r"'bad' \(Activation\).*mixes channels"),
        (lambda x: keras.layers.Conv2D(4, 1, activation="softmax", name="bad")(x), r"'bad' \(Conv2D\).*mixes channels"),
        (lambda x: keras.layers.Reshape((8, 4, 8), name="bad")(x), r"'bad' \(Reshape\).*moves channels"),
        (lambda x: keras.layers.Concatenate(axis=1, name="bad")([x, x]), r"'bad' \(Concatenate\).*axis 1"),
        (lambda x: x * np.arange(4, dtype="float32"), r"\(Multiply\).*not a scalar"),
        (lambda x: keras.layers.UpSampling2D(name="bad")(x), r"'bad' \(UpSampling2D\).*no rule for this layer type"),
        (lambda x: keras.ops.transpose(x, (0, 2, 1, 3)), r"\(Transpose\).*no rule for this operation"),
    ],
    ids=["grouped", "layernorm", "depth_multiplier", "separable_multiplier", "dense", "softmax", "fused_softmax",
         "reshape", "concat_axis", "per_channel_constant", "unknown_layer", "unknown_operation"],
)
def test_unsupported_layers_are_refused_before_building_with_what_to_do(middle, message):
    backbone = _tiny_backbone(middle)
    with pytest.raises(UnsupportedLayerError, match=message) as error:
        switching.build_switched_network(backbone, DOMAINS)
    assert str(error.value).count(". ") >= 1  # why, then what to do


def test_channels_first_is_refused():
    image = keras.Input((4, 8, 8), name="image")
    x = keras.layers.Conv2D(4, 1, data_format="channels_first", name="stem")(image)
    backbone = keras.Model(image, keras.layers.GlobalAveragePooling2D(data_format="channels_first")(x))
    with pytest.raises(UnsupportedLayerError, match=r"'stem' \(Conv2D\).*data_format='channels_first'"):
        switching.build_switched_network(backbone, DOMAINS)


def test_a_layer_without_a_rule_is_refused_by_every_walker_of_models():
    image = keras.Input((8, 8, 3), name="image")
    model = keras.Model(image, keras.layers.UpSampling2D(name="up")(image))
    no_rule = r"Layer 'up' \(UpSampling2D\) is not supported by bap_tf: no rule for this layer type"
    with pytest.raises(UnsupportedLayerError, match=no_rule + r".*bap_tf.rules.register\(layer_class, rule\)"):
        costs.count_model(model)
    with pytest.raises(UnsupportedLayerError, match=no_rule):
        unfreeze(model, "batchnorm_heads")


def test_register_gives_a_layer_type_of_your_own_a_rule():
    # The rules package's docstring example, through switching, pruning and the cost model.
    class Swish(keras.layers.Layer):
        def call(self, x):
            return x * keras.ops.sigmoid(x)

    class SwishRule(rules.Rule):
        def keeps_zeros(self, layer):
            return True

    def backbone():
        image = keras.Input((8, 8, 3), name="image")
        x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(image)
        x = keras.layers.Conv2D(6, 3, padding="same", name="conv")(Swish(name="swish")(x))
        return keras.Model(image, keras.layers.GlobalAveragePooling2D(name="pool")(Swish(name="swish_2")(x)))

    with pytest.raises(UnsupportedLayerError, match=r"'swish' \(Swish\).*no rule for this layer type"):
        switching.build_switched_network(backbone(), prune_nets.DOMAINS[:2])
    rule = SwishRule()
    rules.register(Swish, rule)
    network = switching.build_switched_network(backbone(), prune_nets.DOMAINS[:2])
    assert rules.rule_for(network.get_layer("swish")) is rule and "Swish  [SwishRule]" in rules.describe_rules()
    prune_nets.set_gates(network, {"conv": np.array([[True, False, True, True], [False, True, True, False]])})
    prune_nets.randomize(network, np.random.default_rng(0), smooth=True)
    rewriter = Rewriter(network, prune_nets.DOMAINS[:2])
    union = rewriter.union_models()
    worst = prune_nets.max_difference(network, rewriter, union, prune_nets.images(network, seed=1, smooth=True))
    assert max(worst.values()) <= prune_nets.TOLERANCE
    swish = union["birds"].get_layer("swish")
    assert costs.layer_cost(swish) == costs.Cost() and rules.find_rule(swish).keeps_zeros(swish)


def test_register_takes_a_layer_class_and_a_rule():
    with pytest.raises(ValueError, match=r"layer_class must be a Keras layer class.*Received: layer_class='Swish'"):
        rules.register("Swish", rules.Rule())
    with pytest.raises(ValueError, match=r"rule must be an instance of bap_tf.rules.Rule.*Received: rule=<class"):
        rules.register(keras.layers.Layer, rules.Rule)

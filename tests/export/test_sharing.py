"""Shared layers are found, and the export clones keep them shared and unfolded."""

import keras
import numpy as np

import tiny_models
from bap_tf.export.sharing import (
    ChannelAffine,
    inbound_layer_names,
    keep_shared_kernels,
    shared_layers,
    shared_weight_bytes,
)


def test_shared_layers_are_the_backbone_convs(union_models):
    names = sorted(layer.name for layer in shared_layers(union_models))
    assert names == ["block_dwconv", "block_pwconv", "expand_conv", "stem_conv"]
    width = tiny_models.WIDTH
    params = (27 * width + width) + (9 * width + width) + (width * width + width) + (
        9 * width * 2 * width + 2 * width)
    assert shared_weight_bytes(union_models) == 4 * params
    assert shared_layers({"birds": union_models["birds"]}) == []


def test_inbound_layer_names_follow_the_graph(union_models):
    inbound = inbound_layer_names(union_models["birds"])
    assert inbound["birds_stem_bn"] == ["stem_conv"]
    assert inbound["birds_add"] == ["birds_stem_relu", "birds_pw_bn"]
    assert inbound["image"] == []


def test_export_clones_replace_only_the_bns_after_shared_layers(union_models, eval_sets):
    clones = keep_shared_kernels(union_models)
    for domain, clone in clones.items():
        original = union_models[domain]
        affines = [layer for layer in clone.layers if isinstance(layer, ChannelAffine)]
        assert sorted(layer.name for layer in affines) == sorted(
            f"{domain}_{bn}_affine" for bn in ("stem_bn", "dw_bn", "pw_bn", "expand_bn")
        )
        assert not [layer for layer in clone.layers if isinstance(layer, keras.layers.BatchNormalization)]
        # Shared layers are the very same objects, so their variables stay shared.
        shared = {id(layer) for layer in shared_layers(union_models)}
        assert shared <= {id(layer) for layer in clone.layers}
        # The originals are untouched and the clone computes the same function.
        assert len([layer for layer in original.layers if isinstance(layer, keras.layers.BatchNormalization)]) == 4
        images = eval_sets[domain][0][:32]
        np.testing.assert_allclose(
            clone.predict(images, verbose=0), original.predict(images, verbose=0), atol=1e-5
        )


def test_models_without_sharing_are_exported_as_they_are(union_models):
    single = {"birds": union_models["birds"]}
    assert keep_shared_kernels(single)["birds"] is union_models["birds"]


def test_masks_after_a_domain_batchnorm_fold_into_its_affine():
    """BN -> ReLU -> mask -> shared conv: the mask becomes part of the affine (one op fewer);
    a mask whose input something else reads too stays."""
    from bap_tf.layers import ChannelMask

    stem = keras.layers.Conv2D(4, 3, padding="same", name="stem")
    pointwise = keras.layers.Conv2D(4, 1, name="pointwise")
    models = {}
    for domain, mask in (("birds", [1, 0, 1, 0]), ("cars", [0, 1, 1, 1])):
        image = keras.Input((tiny_models.IMAGE_SIZE, tiny_models.IMAGE_SIZE, 3), name="image")
        features = stem(image)
        x = keras.layers.BatchNormalization(name=f"{domain}_bn")(features)
        x = keras.layers.ReLU(name=f"{domain}_relu")(x)
        y = pointwise(ChannelMask(mask, name=f"{domain}_mask")(x))
        y = ChannelMask(mask, name=f"{domain}_mask2")(keras.layers.Add(name=f"{domain}_add")([y, features]))
        pooled = keras.layers.GlobalAveragePooling2D(name=f"{domain}_gap")(y)
        logits = keras.layers.Dense(2, name=f"{domain}_head")(pooled)
        models[domain] = keras.Model(image, logits)
        tiny_models.randomize_batchnorm(models[domain], np.random.default_rng(len(domain)))
    images = tiny_models.make_images(8, seed=3)
    for domain, clone in keep_shared_kernels(models).items():
        masks = [layer.name for layer in clone.layers if isinstance(layer, ChannelMask)]
        assert masks == [f"{domain}_mask2"]  # the first folded; the second reads an Add
        np.testing.assert_allclose(clone.predict(images, verbose=0), models[domain].predict(images, verbose=0),
                                   atol=1e-5)

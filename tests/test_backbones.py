import keras
import numpy as np
import pytest

from bap_tf.backbones import (
    build_backbone,
    efficientnet_b0,
    features_of,
    mobilenet_v2,
    mobilenet_v3_small,
    resnet26,
    resnet50,
)


def test_resnet26_has_the_decathlon_shape():
    model = resnet26((64, 64, 3), width=64)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    # stem + 3 stages x 4 blocks x 2 convs + 3 projection shortcuts
    assert len(convs) == 1 + 24 + 3
    assert [model.get_layer(f"stage{s}_block1_1_conv").filters for s in (1, 2, 3)] == [64, 128, 256]
    assert model.output.shape == (None, 256)
    assert model.get_layer("stage3_block4_out").output.shape == (None, 8, 8, 256)


def test_resnet26_classifier_and_its_features():
    classifier = resnet26((16, 16, 3), width=4, num_classes=7, blocks_per_stage=1)
    assert classifier.output.shape == (None, 7)
    features = features_of(classifier)
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(
        classifier.get_layer("classifier")(features(x)), classifier(x), atol=1e-5
    )


def test_resnet50_wrapper_equals_keras_preprocessing_with_the_same_weights(tmp_path):
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    path = str(tmp_path / "resnet50.weights.h5")
    reference.save_weights(path)
    ours = resnet50((32, 32, 3), weights=path)
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    expected = reference(keras.applications.resnet50.preprocess_input(images * 255.0))
    np.testing.assert_allclose(ours(images), expected, rtol=1e-4, atol=1e-3)


def test_mobilenet_v2_wrapper_maps_unit_range_to_minus_one_one(tmp_path):
    reference = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35, pooling="avg"
    )
    path = str(tmp_path / "mobilenet.weights.h5")
    reference.save_weights(path)
    ours = mobilenet_v2((32, 32, 3), alpha=0.35, weights=path)
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(ours(images), reference(images * 2.0 - 1.0), rtol=1e-4, atol=1e-4)


def test_missing_weights_file_is_named():
    with pytest.raises(FileNotFoundError, match="Received: weights='/nowhere.h5'"):
        resnet50((32, 32, 3), weights="/nowhere.h5")


def test_unknown_backbone_is_named():
    with pytest.raises(ValueError, match="Received: backbone='vgg'"):
        build_backbone("vgg", (32, 32, 3))


def test_mobilenet_v3_small_wrapper_equals_keras_preprocessing_with_the_same_weights(tmp_path):
    reference = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    path = str(tmp_path / "mobilenet_v3.weights.h5")
    reference.save_weights(path)
    ours = mobilenet_v3_small((32, 32, 3), weights=path)
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(ours(images), reference(images * 255.0), rtol=1e-4, atol=1e-4)


def test_efficientnet_b0_wrapper_equals_keras_preprocessing_with_the_same_weights(tmp_path):
    reference = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3),
                                                  pooling="avg")
    normalization = next(layer for layer in reference.layers if isinstance(layer, keras.layers.Normalization))
    normalization.set_weights([np.array([0.4, 0.5, 0.6]), np.array([0.05, 0.06, 0.07]), np.array(0)])
    path = str(tmp_path / "efficientnet.weights.h5")
    reference.save_weights(path)
    ours = efficientnet_b0((32, 32, 3), weights=path)
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(ours(images), reference(images * 255.0), rtol=1e-4, atol=1e-4)

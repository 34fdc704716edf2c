"""Float RGB conversion and square resizing shared by all loaders."""

import numpy as np
import tensorflow as tf

from bap_tf.data import images


def test_to_float_rgb_scales_uint8_and_repeats_grey():
    grey = np.full((4, 5), 255, np.uint8)
    for image in (grey, grey[..., None]):
        out = images.to_float_rgb(image)
        assert out.shape == (4, 5, 3) and out.dtype == tf.float32
        np.testing.assert_allclose(out.numpy(), 1.0)
    colour = np.zeros((2, 2, 3), np.float32) + [0.1, 0.5, 0.9]
    np.testing.assert_allclose(images.to_float_rgb(colour).numpy(), colour)


def test_to_float_rgb_with_unknown_channels_in_a_graph():
    @tf.function(input_signature=[tf.TensorSpec((None, None, None), tf.uint8)])
    def convert(image):
        return images.to_float_rgb(image)

    assert convert(np.zeros((3, 3, 1), np.uint8)).shape == (3, 3, 3)
    assert convert(np.zeros((3, 3, 3), np.uint8)).shape == (3, 3, 3)


def test_resize_square_keeps_aspect_and_centre_crops():
    # Left third red, middle third green, right third blue: a 2:1 crop keeps only the middle.
    image = np.zeros((20, 60, 3), np.float32)
    image[:, :20, 0], image[:, 20:40, 1], image[:, 40:, 2] = 1.0, 1.0, 1.0
    out = images.resize_square(tf.constant(image), 10).numpy()
    assert out.shape == (10, 10, 3)
    np.testing.assert_allclose(out[:, 2:8].mean(axis=(0, 1)), [0.0, 1.0, 0.0], atol=1e-6)


def test_resize_square_leaves_right_sized_images_untouched():
    image = tf.random.uniform((8, 8, 3))
    assert images.resize_square(image, 8) is image

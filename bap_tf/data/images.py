"""Image conversion shared by every loader: dtype to float in [0, 1], grey to RGB, square resize.

The tfds loader, the folder loader and the multi-domain pipeline all go through these two
functions, so every domain reaches the model in the same form: ``float32 (S, S, 3)`` in [0, 1].
"""

import tensorflow as tf


def to_float_rgb(image):
    """One image ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` -> ``float32 (H, W, 3)`` in [0, 1].

    Integer images are scaled by their dtype's maximum (uint8: / 255); float images are taken
    to be in [0, 1] already and only cast. Grey images are repeated over three channels, the
    same thing ``tf.image.grayscale_to_rgb`` does.
    """
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., tf.newaxis]
    image = tf.image.convert_image_dtype(image, tf.float32)
    channels = image.shape[-1]
    if channels == 1:
        return tf.tile(image, (1, 1, 3))
    if channels is None:
        image = tf.cond(
            tf.equal(tf.shape(image)[-1], 1), lambda: tf.tile(image, (1, 1, 3)), lambda: image
        )
        return tf.ensure_shape(image, (None, None, 3))
    return image


def resize_square(image, size):
    """``(H, W, C)`` -> ``(size, size, C)``: shorter side resized to ``size``, then centre crop.

    Keeps the aspect ratio (the Visual Decathlon images are stored with a shorter side of 72 px,
    so at ``size=72`` this is only a centre crop). An image that is already ``size x size`` is
    returned untouched.
    """
    if tuple(image.shape[:2]) == (size, size):
        return image
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = size / tf.minimum(height, width)
    # ceil so that rounding never leaves the shorter side one pixel short of the crop.
    new_size = tf.cast(tf.math.ceil(tf.stack([height * scale, width * scale])), tf.int32)
    new_size = tf.maximum(new_size, size)
    image = tf.image.resize(image, new_size, antialias=True)
    return tf.image.resize_with_crop_or_pad(image, size, size)

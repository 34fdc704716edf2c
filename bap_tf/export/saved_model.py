"""The SavedModel handed to the converter: one signature per domain, shared variables once.

Written in the parent process from the in-memory models, because only they know which layer
objects are shared; the SavedModel's object graph then keeps each shared variable once, and the
child process converts it without needing Keras or bap_tf's layers.
"""

import keras
import tensorflow as tf

from bap_tf.export.signatures import INPUT_NAME, OUTPUT_NAME, check_signature_keys


def write_saved_model(models, directory):
    """Writes ``{signature key: keras.Model}`` as a SavedModel with one signature per key.

    Each signature takes ``image`` float32 ``(None, H, W, C)`` (the model's own input shape)
    and returns ``{"logits": (None, num_classes)}``. Models must have one input and one output.
    """
    check_signature_keys(models)
    archive = keras.export.ExportArchive()
    for key, model in models.items():
        _check_single_io(key, model)
        archive.track(model)
        spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), tf.float32, name=INPUT_NAME)
        archive.add_endpoint(key, _logits_fn(model), input_signature=[spec])
    archive.write_out(str(directory), verbose=False)


def _logits_fn(model):
    # A factory, not a lambda with a default argument: tf.function would trace the default
    # as an extra input.
    def logits(image):
        return {OUTPUT_NAME: model(image, training=False)}

    return logits


def _check_single_io(key, model):
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"Each exported model must have one image input and one logits output. Received: "
            f"{key!r} with {len(model.inputs)} inputs and {len(model.outputs)} outputs"
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ValueError(
            f"Each exported model needs a fixed (None, H, W, C) image input. "
            f"Received: {key!r} with input shape {shape}"
        )

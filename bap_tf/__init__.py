"""bap-tf: Budget-Aware Pruning for multi-domain learning in Keras 3, with TFLite export.

Importing the package loads nothing else, so a command parses its flags and reports a bad one
before TensorFlow loads (``bap-train --help``: 0.1 s rather than 5 s on 2 CPU cores). Import the module
you use: ``bap_tf.model`` (or ``bap_tf.layers``) registers bap-tf's Keras classes, after which
``keras.saving.load_model`` reads every ``.keras`` file bap-tf writes.
"""

__version__ = "0.1.0"

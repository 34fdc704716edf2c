"""bap-tf: Budget-Aware Pruning for multi-domain learning in Keras 3, with TFLite export.

Importing the package registers its Keras classes, so ``keras.saving.load_model`` reads every
``.keras`` file bap-tf writes (masked models and pruned models) after ``import bap_tf``.
"""

from bap_tf import layers, model  # noqa: F401  (registration)

__version__ = "0.1.0"

"""The Visual Decathlon ResNet-26 (Rebuffi et al. 2017): 3 stages of 4 basic blocks.

A flat functional graph of standard layers with readable names
(``stage2_block1_conv1``...), blocks written as ``apply_*`` functions, so the switching
converter and the pruner read it mechanically. Widths are ``width, 2*width, 4*width``
(64/128/256 at full size); every stage halves the resolution in its first block, whose
shortcut is a 1x1 convolution + BN.
"""

import keras

BLOCKS_PER_STAGE = 4
FEATURES_LAYER = "pool"


def apply_conv_bn(x, filters, kernel_size, strides, name, relu=True):
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def apply_basic_block(x, filters, strides, name):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the (projected when shapes change) input, then ReLU."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = apply_conv_bn(x, filters, 1, strides, f"{name}_shortcut", relu=False)
    y = apply_conv_bn(x, filters, 3, strides, f"{name}_1")
    y = apply_conv_bn(y, filters, 3, 1, f"{name}_2", relu=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnet26(input_shape=(72, 72, 3), width=64, num_classes=None, blocks_per_stage=BLOCKS_PER_STAGE, name="resnet26"):
    """ResNet-26 from ``image`` to features (``num_classes=None``) or to source-domain logits.

    Args:
      input_shape: image shape, channels last.
      width: channels of the stem and first stage (64 in the paper; 4-8 in tests).
      num_classes: if given, a ``classifier`` Dense head is added (for pre-training).
      blocks_per_stage: 4 is ResNet-26; fewer gives a shallower graph that traces faster
        (tests use 1).
    """
    image = keras.Input(shape=input_shape, name="image")
    x = apply_conv_bn(image, width, 3, 1, "stem")
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks_per_stage):
            strides = 2 if block == 0 else 1
            x = apply_basic_block(x, filters, strides, f"stage{stage + 1}_block{block + 1}")
    x = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x)
    if num_classes is not None:
        x = keras.layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(image, x, name=name)

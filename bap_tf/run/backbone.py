"""The frozen backbone of a run: architecture from the config, weights from a file.

``--pretrained`` is a weights file; empty means the backbone shipped in ``bap_tf/assets``
(a ResNet-26 pre-trained on the pocket source domain, for the pocket benchmark; see
``assets/backbones.json`` for how it was made and its accuracy); ``none`` means random weights
(only useful to test the machinery: a frozen random backbone learns little).
"""

import json
import os
from pathlib import Path

from bap_tf.backbones import build_backbone

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ASSET_INDEX = ASSETS / "backbones.json"
RANDOM = "none"


def shipped_backbones():
    """``{file name: description}`` of the backbones in ``bap_tf/assets``."""
    if not ASSET_INDEX.exists():
        return {}
    with open(ASSET_INDEX) as f:
        return json.load(f)


def find_shipped(backbone, width, image_size):
    """Path of the shipped weights for this architecture, or None."""
    for name, entry in shipped_backbones().items():
        if (entry["backbone"], entry["width"], entry["image_size"]) == (backbone, width, image_size):
            return ASSETS / name
    return None


def pretrained_weights(config):
    """The weights file the config asks for, or None for a random backbone."""
    if config.pretrained == RANDOM:
        return None
    if config.pretrained:
        if not os.path.isfile(config.pretrained):
            raise FileNotFoundError(
                f"pretrained must be a weights file (or 'none' for a random backbone). "
                f"Received: pretrained={config.pretrained!r}, which does not exist"
            )
        return config.pretrained
    path = find_shipped(config.backbone, config.width, config.image_size)
    if path is None:
        shipped = [f"{e['backbone']} width={e['width']} image_size={e['image_size']}"
                   for e in shipped_backbones().values()]
        raise ValueError(
            f"No shipped backbone for backbone={config.backbone!r}, width={config.width}, "
            f"image_size={config.image_size}. Expected --pretrained=PATH (made with bap-pretrain, "
            f"or a Keras Applications notop .h5), --pretrained=none for random weights, or one of "
            f"the shipped backbones {shipped}. Received: pretrained=''"
        )
    return str(path)


def load_backbone(config):
    """The backbone as a functional ``image -> features`` model with the config's weights."""
    shape = (config.image_size, config.image_size, 3)
    return build_backbone(config.backbone, shape, width=config.width, weights=pretrained_weights(config))

"""Names that the exported files promise to their users (Android app, firmware, checks).

Android file: one signature per domain, keyed by the domain name, taking ``image`` float32
``(N, H, W, 3)`` in [0, 1] and returning ``logits`` ``(N, num_classes)``. Microcontroller files:
one signature, ``serving_default``, with the same names, int8 tensors and batch size 1.
"""

import re

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
DEFAULT_SIGNATURE = "serving_default"

_SIGNATURE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_signature_keys(keys):
    """Signature keys become TFLite subgraph and function names: identifiers only."""
    keys = list(keys)
    if not keys:
        raise ValueError("Expected at least one domain to export. Received: domains=[]")
    bad = [key for key in keys if not isinstance(key, str) or not _SIGNATURE_KEY.match(key)]
    if bad:
        raise ValueError(
            "Domain names are used as TFLite signature keys and must be identifiers "
            f"(letters, digits, underscores, not starting with a digit). Received: {bad}"
        )
    return keys

"""Runs exported ``.tflite`` files with LiteRT (``ai_edge_litert``), the runtime Android uses.

``LiteRTModel`` wraps one file and gives a signature runner per signature: the Android file
has one per domain, a microcontroller file has ``serving_default``. Inputs are float images in
[0, 1] whatever the file's input type: int8 inputs are quantized with the input tensor's scale
and zero point, int8 outputs dequantized with the output tensor's.
"""

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from bap_tf.export.quantization import dequantize, quantize, tensor_quantization
from bap_tf.export.signatures import INPUT_NAME, OUTPUT_NAME


class LiteRTModel:
    """One ``.tflite`` file (path or bytes) and a LiteRT signature runner per signature."""

    def __init__(self, model, num_threads=None):
        content = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
        self.model_bytes = len(content)
        self._interpreter = Interpreter(model_content=content, num_threads=num_threads)
        self.signatures = list(self._interpreter.get_signature_list())
        self._runners = {key: self._interpreter.get_signature_runner(key) for key in self.signatures}

    def runner(self, signature=None):
        """The signature runner of ``signature`` (may be omitted when the file has only one)."""
        if signature is None:
            if len(self.signatures) != 1:
                raise ValueError(
                    f"This model has signatures {self.signatures}; name the one to run. "
                    "Received: signature=None"
                )
            signature = self.signatures[0]
        if signature not in self._runners:
            raise ValueError(
                f"Unknown signature; expected one of {self.signatures}. Received: {signature!r}"
            )
        return self._runners[signature]

    def input_details(self, signature=None):
        return self.runner(signature).get_input_details()[INPUT_NAME]

    def output_details(self, signature=None):
        return self.runner(signature).get_output_details()[OUTPUT_NAME]

    def raw_outputs(self, images, signature=None, batch_size=64):
        """Outputs in the file's own output dtype (int8 for microcontroller files), ``(N, K)``.

        ``images``: float ``(N, H, W, C)`` in [0, 1]. Batches of ``batch_size``; a file with a
        fixed batch size of 1 (int8 files) is run one image at a time.
        """
        runner = self.runner(signature)
        details = self.input_details(signature)
        images = np.asarray(images, np.float32)
        if details["dtype"] != np.float32:
            scale, zero_point = tensor_quantization(details)
            images = quantize(images, scale, zero_point, details["dtype"])
        if list(details["shape_signature"][:1]) != [-1]:
            batch_size = int(details["shape"][0])
        outputs = [
            runner(**{INPUT_NAME: images[start : start + batch_size]})[OUTPUT_NAME].copy()
            for start in range(0, images.shape[0], batch_size)
        ]
        return np.concatenate(outputs, axis=0)

    def logits(self, images, signature=None, batch_size=64):
        """float32 logits ``(N, K)``, dequantized when the file's output is integer."""
        raw = self.raw_outputs(images, signature, batch_size)
        details = self.output_details(signature)
        if details["dtype"] == np.float32:
            return raw
        scale, zero_point = tensor_quantization(details)
        return dequantize(raw, scale, zero_point)


def predict_logits(model, images, signature=None, batch_size=64):
    """float32 logits of a ``.tflite`` (path or bytes) for float images in [0, 1]."""
    return LiteRTModel(model).logits(images, signature, batch_size)

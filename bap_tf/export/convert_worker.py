"""Child process of ``convert.py``: one SavedModel in, one .tflite file out, then exit.

    python -m bap_tf.export.convert_worker --saved-model DIR --output FILE --mode android \
        --signature birds --signature cars --variant float32
    python -m bap_tf.export.convert_worker --saved-model DIR --output FILE --mode micro \
        --representative images.npy

Runs in its own process because TF 2.21's converter keeps memory after each call. Writes the
flatbuffer to ``--output`` (a temporary file chosen by the parent, which checks the result and
renames it into place). Any failure is a traceback on stderr and a non-zero exit code.
"""

import argparse

import numpy as np
import tensorflow as tf

from bap_tf.export.signatures import DEFAULT_SIGNATURE, INPUT_NAME


def convert_android(saved_model, signatures, variant):
    """float32 or dynamic-range model with the given signatures; shared constants stored once."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=signatures)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant != "float32":
        raise ValueError(f"variant must be 'float32' or 'dynamic'. Received: variant={variant!r}")
    return converter.convert()


def convert_micro(saved_model, representative):
    """Full-integer int8 model: int8 input/output, TFLITE_BUILTINS_INT8 only."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model, signature_keys=[DEFAULT_SIGNATURE]
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8

    def samples():
        # One image per step: calibration records min/max per tensor, batch size is irrelevant
        # and the int8 model's batch dimension is then 1, as on a microcontroller.
        for index in range(representative.shape[0]):
            yield {INPUT_NAME: representative[index : index + 1].astype(np.float32)}

    converter.representative_dataset = samples
    return converter.convert()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saved-model", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--mode", required=True, choices=("android", "micro"))
    parser.add_argument("--signature", action="append", default=[])
    parser.add_argument("--variant", default="float32")
    parser.add_argument("--representative")
    args = parser.parse_args(argv)
    if args.mode == "android":
        model = convert_android(args.saved_model, args.signature, args.variant)
    else:
        model = convert_micro(args.saved_model, np.load(args.representative))
    with open(args.output, "wb") as file:
        file.write(model)


if __name__ == "__main__":
    main()

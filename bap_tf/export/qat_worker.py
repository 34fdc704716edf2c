"""Child process of ``qat.py``: quantization-aware fine-tuning and int8 conversion of one model.

    python -m bap_tf.export.qat_worker --work DIR --output FILE --epochs 3 --batch-size 32 \
        --learning-rate 1e-4

``DIR`` holds what the parent wrote: ``model.json`` (the Keras 3 functional config),
``weights.npz`` (``<layer>::<i>`` arrays), ``train_x.npy`` / ``train_y.npy``, and optionally
``eval_x.npy`` / ``eval_y.npy`` / ``reference.npy`` (the Keras 3 model's logits on the eval
images, to check the rebuild). Writes the int8 flatbuffer to ``FILE`` and ``summary.json`` to
``DIR``.

tensorflow-model-optimization works on Keras 2 only and switches TF to legacy Keras when
imported, so it lives here, never in the library's own process. Quantization of the layers the
default 8-bit scheme does not know:
- ``Rescaling`` and ``Normalization`` are rebuilt as 1x1 DepthwiseConv2D (their rule's
  ``keras2``), which it knows.
- ``ChannelMask`` (a MUL by a 0/1 constant), hard-swish, an operation with a scalar
  (``x + 3.0``) and the merges other than Add and Concatenate (the squeeze-and-excitation
  gate's Multiply): output-only config, a fake-quant on the output, which the converter needs
  for the int8 op.
- ``ChannelGather``: no-op config. GATHER only picks channels, so the converter gives its output
  the input's scale; no fake-quant is needed.
"""

import os

# Before TensorFlow is imported: tf.keras must be tf_keras for tfmot and the converter.
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras  # noqa: E402

from bap_tf.export.convert_worker import convert_micro  # noqa: E402
from bap_tf.export.qat_rebuild import CUSTOM_OBJECTS, rebuild  # noqa: E402
from bap_tf.export.signatures import DEFAULT_SIGNATURE, INPUT_NAME, OUTPUT_NAME  # noqa: E402
from bap_tf.metrics import accuracy  # noqa: E402

quantize = tfmot.quantization.keras


class OutputQuantizeConfig(quantize.QuantizeConfig):
    """Fake-quantizes a layer's output only (8 bits, asymmetric, per tensor)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [quantize.quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


class NoOpQuantizeConfig(OutputQuantizeConfig):
    """Leaves a layer unquantized (its output keeps its input's quantization)."""

    def get_output_quantizers(self, layer):
        return []


_CONFIGS = {
    **{CUSTOM_OBJECTS[name]: OutputQuantizeConfig for name in ("ChannelMask", "HardSwish", "ScalarOperation")},
    **{getattr(tf_keras.layers, name): OutputQuantizeConfig
       for name in ("Multiply", "Subtract", "Maximum", "Minimum", "Average")},
    CUSTOM_OBJECTS["ChannelGather"]: NoOpQuantizeConfig,
}
_SCOPE = {**CUSTOM_OBJECTS, "OutputQuantizeConfig": OutputQuantizeConfig,
          "NoOpQuantizeConfig": NoOpQuantizeConfig}


def quantization_aware(model):
    """The tfmot QAT model: default 8-bit scheme plus the configs above.

    This is ``quantize_model`` (``quantize_annotate_model`` then ``quantize_apply``) with the
    annotation done here, because ``quantize_model`` cannot be given QuantizeConfigs for
    layers outside its registry.
    """

    def annotate(layer):
        config = _CONFIGS.get(type(layer))
        return quantize.quantize_annotate_layer(layer, config() if config else None)

    annotated = tf_keras.models.clone_model(model, clone_function=annotate)
    with quantize.quantize_scope(_SCOPE):
        return quantize.quantize_apply(annotated)


def convert_int8(model, representative, directory):
    """Full-int8 flatbuffer with the microcontroller signature: ``image`` -> ``logits``.

    Goes through a SavedModel with an explicit ``serving_default`` signature, as
    ``convert_worker`` does, so the names match the other int8 files.
    """
    spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(image):
        return {OUTPUT_NAME: model(image, training=False)}

    saved_model = str(Path(directory) / "qat_saved_model")
    tf.saved_model.save(model, saved_model, signatures={DEFAULT_SIGNATURE: serve})
    # TFLITE_BUILTINS_INT8 requires a representative dataset even for a QAT model; the
    # fake-quant ranges learnt in training take precedence where they exist.
    return convert_micro(saved_model, representative)


def _load_weights(path):
    weights = {}
    with np.load(path) as archive:
        for key in sorted(archive.files, key=lambda k: (k.split("::")[0], int(k.split("::")[1]))):
            weights.setdefault(key.split("::")[0], []).append(archive[key])
    return weights


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--calibration-samples", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    work = Path(args.work)
    tf_keras.utils.set_random_seed(args.seed)

    config = json.loads((work / "model.json").read_text())
    model = rebuild(config, _load_weights(work / "weights.npz"))
    train_x, train_y = np.load(work / "train_x.npy"), np.load(work / "train_y.npy")
    summary = {}
    has_eval = (work / "eval_x.npy").exists()
    if has_eval:
        eval_x, eval_y = np.load(work / "eval_x.npy"), np.load(work / "eval_y.npy")
        rebuilt = model.predict(eval_x, verbose=0)
        summary["rebuild_max_abs_logit_diff"] = float(np.max(np.abs(rebuilt - np.load(work / "reference.npy"))))

    qat_model = quantization_aware(model)
    qat_model.compile(
        optimizer=tf_keras.optimizers.Adam(args.learning_rate),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = qat_model.fit(train_x, train_y, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    summary["loss"] = [float(v) for v in history.history["loss"]]
    if has_eval:
        summary["qat_keras_accuracy"] = accuracy(qat_model.predict(eval_x, verbose=0), eval_y)

    model_bytes = convert_int8(qat_model, train_x[: args.calibration_samples].astype(np.float32), work)
    with open(args.output, "wb") as file:
        file.write(model_bytes)
    (work / "summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()

"""The chain after training on a tiny MobileNetV3-Small (hard-swish, squeeze-and-excitation):
switched network, prune, the Android file and an int8 file, run in LiteRT and TFLM with the
fidelity checks of ``export.runtime_checks`` (the ones ``bap-train`` reports for ResNet-26)."""

import keras
import numpy as np
import pytest

import prune_nets
from bap_tf import backbones, switching
from bap_tf.export import convert, runtime_checks
from bap_tf.export.file_checks import check_int8_model
from bap_tf.export.litert import LiteRTModel
from bap_tf.export.micro import MicroModel
from bap_tf.prune import Rewriter


@pytest.mark.slow
def test_pruned_mobilenet_v3_runs_in_litert_and_tflm_like_keras(tmp_path):
    keras.utils.set_random_seed(0)  # the application's random initial weights
    backbone = backbones.mobilenet_v3_small((32, 32, 3), alpha=0.75)
    network = switching.build_switched_network(backbone, prune_nets.DOMAINS[:2])
    rng = np.random.default_rng(0)
    prune_nets.set_switches(network, 0.5, rng)
    prune_nets.randomize(network, rng, smooth=True)
    rewriter = Rewriter(network, prune_nets.DOMAINS[:2])
    union = rewriter.union_models()
    images = prune_nets.images(network, count=32, seed=3, smooth=True)
    eval_sets = {name: (images[:16], np.argmax(model.predict(images[:16], verbose=0), -1))
                 for name, model in union.items()}
    android = convert.export_android(union, tmp_path / "android.tflite")
    micro = {"birds": convert.export_micro(union["birds"], tmp_path / "birds_int8.tflite", images[16:])}

    result = runtime_checks.run_checks(union, eval_sets, android_path=android, micro_paths=micro)
    for name, domain in result["domains"].items():
        assert domain["tflite_float_vs_keras"]["max_abs_logit_diff"] < 1e-4, name
        assert domain["tflite_float_vs_keras"]["argmax_agreement"] == 1.0, name
    # Full int8 of builtin ops: hard-swish becomes TFLite's own int8 HARD_SWISH, the SE gate's
    # hard-sigmoid an ADD with a fused RELU6 and a MUL.
    ops = check_int8_model(micro["birds"].read_bytes())["ops"]
    assert "HARD_SWISH" in ops and {"ADD", "MUL", "CONV_2D", "DEPTHWISE_CONV_2D"} <= set(ops)
    # LiteRT and TFLM each follow Keras within int8 rounding (per-tensor activations of a
    # random backbone: up to ~20% of the logit spread). Their kernels round differently
    # (reference vs optimized), which over MobileNetV3's 40 convs, hard-swishes and SE blocks
    # adds up to several output steps between them (2 on the 5-layer export test models), so
    # both are held to Keras rather than to each other.
    keras_logits = union["birds"].predict(images[:16], verbose=0)
    spread = float(np.ptp(keras_logits))
    int8 = LiteRTModel(micro["birds"])
    tflm = MicroModel(micro["birds"], arena_bytes=result["domains"]["birds"]["arena_bytes"])
    assert np.abs(int8.logits(images[:16]) - keras_logits).max() < 0.25 * spread
    assert np.abs(tflm.logits(images[:16]) - keras_logits).max() < 0.25 * spread

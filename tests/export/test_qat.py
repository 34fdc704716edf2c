"""Quantization-aware fine-tuning in its own process.

Needs the [qat] extra: ``bash setup.sh test`` puts it in ``.venv/qat-site`` for the QAT worker,
so CI runs these tests; without it they skip, naming what is missing.
"""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

import tiny_models
from bap_tf.export import qat
from bap_tf.export.file_checks import check_int8_model
from bap_tf.export.litert import LiteRTModel

# Looked up in a child process: importing tfmot here would switch this process to Keras 2.
_AVAILABLE, _REASON = qat.qat_available()
needs_qat = pytest.mark.skipif(not _AVAILABLE, reason=_REASON or "the [qat] extra is installed")

EPOCHS = 2


@pytest.mark.slow
@needs_qat
def test_qat_writes_a_full_int8_model_without_touching_this_process(union_models, train_images,
                                                                    eval_sets, tmp_path):
    model = union_models["birds"]
    images = train_images["birds"]
    eval_images, eval_labels = eval_sets["birds"]
    path = tmp_path / "birds_qat_int8.tflite"
    result = qat.quantization_aware_int8(
        model, path, images, tiny_models.labels_from(model, images), eval_images, eval_labels,
        epochs=EPOCHS,
    )
    assert result["path"] == str(path) and path.exists()
    summary = check_int8_model(path.read_bytes())
    # Fully int8 from the input on: no DEQUANTIZE/QUANTIZE pair, the Rescaling became a conv.
    assert not {"DEQUANTIZE", "QUANTIZE"} & set(summary["ops"])
    assert summary["input"][1] == -128
    assert LiteRTModel(path).signatures == ["serving_default"]
    # The tf_keras rebuild computes the same function as the Keras 3 model before QAT.
    assert result["rebuild_max_abs_logit_diff"] <= 1e-4
    assert len(result["loss"]) == EPOCHS and all(np.isfinite(result["loss"]))
    assert result["accuracy"] >= 0.9 and result["qat_keras_accuracy"] >= 0.9
    # tfmot never came into this process, which still runs Keras 3.
    assert "tensorflow_model_optimization" not in sys.modules and "tf_keras" not in sys.modules
    assert "TF_USE_LEGACY_KERAS" not in os.environ
    assert keras.__version__.startswith("3.")


@pytest.mark.slow
@needs_qat
def test_qat_rebuilds_the_layers_of_mobilenet_v3_and_efficientnet(train_images, tmp_path):
    model = tiny_models.build_mobile_model()
    images, eval_images = train_images["birds"], tiny_models.make_images(128, seed=300)
    path = tmp_path / "mobile_qat_int8.tflite"
    result = qat.quantization_aware_int8(
        model, path, images, tiny_models.labels_from(model, images), eval_images,
        tiny_models.labels_from(model, eval_images), epochs=EPOCHS,
    )
    # Normalization, hard-swish, the operations, Multiply, Reshape, Dropout and Concatenate
    # have Keras 2 stand-ins computing what the Keras 3 layers compute.
    assert result["rebuild_max_abs_logit_diff"] <= 1e-4
    # It converts (the gather after a pooling over one position too) to full int8, every tensor:
    # hard-swish is TFLite's int8 HARD_SWISH, the input's Rescaling and Normalization int8 convs.
    # (A QUANTIZE is int8 to int8: the concatenation's operands brought to one scale.)
    ops = set(check_int8_model(path.read_bytes())["ops"])
    assert {"HARD_SWISH", "MUL", "CONCATENATION", "GATHER"} <= ops and "DEQUANTIZE" not in ops


@needs_qat
def test_qat_rejects_labels_that_do_not_match(union_models, train_images, tmp_path):
    images = train_images["birds"]
    with pytest.raises(ValueError, match="Labels must be integers, one per image"):
        qat.quantization_aware_int8(union_models["birds"], tmp_path / "m.tflite", images,
                                    np.zeros(3, np.int64), images, np.zeros(len(images), np.int64))
    assert not (tmp_path / "m.tflite").exists()


# Rebuilds each model folder under argv[1] as the worker does; prints {folder: error or None}.
_REBUILD_EACH = """
import json, sys
from pathlib import Path
from bap_tf.export import qat_worker  # first: it puts TensorFlow on legacy Keras
from bap_tf.export.qat_rebuild import rebuild
errors = {}
for folder in sorted(Path(sys.argv[1]).iterdir()):
    try:
        rebuild(json.loads((folder / "model.json").read_text()), qat_worker._load_weights(folder / "weights.npz"))
        errors[folder.name] = None
    except ValueError as error:
        errors[folder.name] = str(error)
print(json.dumps(errors))
"""


def _model(middle, outputs=1):
    image = keras.Input((8, 8, 3), name="image")
    features = keras.layers.GlobalAveragePooling2D(name="pool")(middle(image))
    logits = [keras.layers.Dense(2, name=f"head_{index}")(features) for index in range(outputs)]
    return keras.Model(image, logits if outputs > 1 else logits[0])


@needs_qat
def test_the_qat_rebuild_refuses_by_name_what_it_has_no_keras2_stand_in_for(tmp_path):
    models = {
        "gelu": _model(lambda x: keras.layers.Conv2D(4, 1, activation="gelu", name="conv")(x)),
        "separable": _model(lambda x: keras.layers.SeparableConv2D(4, 3, name="separable")(x)),
        "divide": _model(lambda x: x / keras.layers.Conv2D(3, 1, name="conv")(x)),
        "normalization_axis": _model(lambda x: keras.layers.Normalization(axis=1, mean=np.arange(8.0),
                                                                          variance=np.ones(8), name="rows")(x)),
        "two_outputs": _model(lambda x: x, outputs=2),
    }
    for name, model in models.items():
        (tmp_path / name).mkdir()
        qat._write_model(model, tmp_path / name)
    result = subprocess.run([sys.executable, "-c", _REBUILD_EACH, str(tmp_path)], capture_output=True, text=True,
                            env={**os.environ, **qat.worker_env()}, check=True)
    errors = json.loads(result.stdout.strip().splitlines()[-1])
    no_stand_in = ("is not supported by bap_tf: quantization-aware training has no Keras 2 (tf_keras) stand-in "
                   "for it. Export it with --quantize=int8")
    assert errors["gelu"].startswith("Layer 'conv' (Conv2D) is not supported by bap_tf: activation 'gelu' has no "
                                     "tf_keras equivalent for quantization-aware training. Use one of ")
    assert errors["separable"].startswith(f"Layer 'separable' (SeparableConv2D) {no_stand_in}")
    assert re.match(rf"Layer 'true_divide\w*' \(TrueDivide\) {re.escape(no_stand_in)}", errors["divide"])
    assert errors["normalization_axis"].startswith(
        "Layer 'rows' (Normalization) is not supported by bap_tf: Normalization over axis (1,) in a quantized model")
    assert errors["two_outputs"] == ("The QAT rebuild takes a model with one image input and one logits output. "
                                     "Received: inputs=['image'], outputs=['head_0', 'head_1']")


def test_missing_qat_extra_is_named_with_the_install_command(monkeypatch, union_models, tmp_path):
    monkeypatch.setattr(qat, "QAT_MODULES", ("no_such_module_for_bap_tf",))
    available, reason = qat.qat_available()
    assert not available
    assert "no_such_module_for_bap_tf" in reason and "pip install 'bap-tf[qat]'" in reason
    images = np.zeros((2, 16, 16, 3), np.float32)
    labels = np.zeros(2, np.int64)
    with pytest.raises(RuntimeError, match=r"needs no_such_module_for_bap_tf"):
        qat.quantization_aware_int8(union_models["birds"], tmp_path / "m.tflite", images, labels,
                                    images, labels)


def test_check_qat_names_an_unsupported_backbone_and_a_missing_extra(monkeypatch):
    with pytest.raises(ValueError, match=r"quantize='qat' needs a backbone whose layers the QAT rebuild knows\. "
                                         r"Expected one of \['resnet26', 'mobilenet_v2', 'mobilenet_v3_small', "
                                         r"'efficientnet_b0'\].*Received: backbone='resnet50'"):
        qat.check_qat("resnet50")
    monkeypatch.setattr(qat, "QAT_MODULES", ("no_such_module_for_bap_tf",))
    with pytest.raises(ValueError, match=r"cannot run here: quantization-aware training needs "
                                         r"no_such_module_for_bap_tf: pip install 'bap-tf\[qat\]'.*"
                                         r"Received: quantize='qat'"):
        qat.check_qat("resnet26")

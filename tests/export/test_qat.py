"""Quantization-aware fine-tuning in its own process.

Needs the [qat] extra: ``bash setup.sh test`` puts it in ``.venv/qat-site`` for the QAT worker,
so CI runs these tests; without it they skip, naming what is missing.
"""

import os
import sys

import keras
import numpy as np
import pytest

import tiny_models
from bap_tf.export import qat
from bap_tf.export.litert import LiteRTModel
from bap_tf.export.validate import check_int8_model

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


@needs_qat
def test_qat_rejects_labels_that_do_not_match(union_models, train_images, tmp_path):
    images = train_images["birds"]
    with pytest.raises(ValueError, match="Labels must be integers, one per image"):
        qat.quantization_aware_int8(union_models["birds"], tmp_path / "m.tflite", images,
                                    np.zeros(3, np.int64), images, np.zeros(len(images), np.int64))
    assert not (tmp_path / "m.tflite").exists()


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
                                         r"Expected one of \['resnet26', 'mobilenet_v2'\].*Received: backbone='efficientnet_b0'"):
        qat.check_qat("efficientnet_b0")
    monkeypatch.setattr(qat, "QAT_MODULES", ("no_such_module_for_bap_tf",))
    with pytest.raises(ValueError, match=r"cannot run here: quantization-aware training needs no_such_module_for_bap_tf: "
                                         r"pip install 'bap-tf\[qat\]'.*Received: quantize='qat'"):
        qat.check_qat("resnet26")

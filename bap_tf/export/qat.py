"""Quantization-aware fine-tuning of a per-domain model into an int8 microcontroller file.

Optional: needs the ``[qat]`` extra (tensorflow-model-optimization and tf-keras). tfmot works
on Keras 2 only and sets ``TF_USE_LEGACY_KERAS`` when imported, which would break every Keras 3
model in the process, so it is never imported here: the work happens in a child process
(``qat_worker``) that rebuilds the Keras 3 model as a tf_keras model layer by layer from its
public config and weights (``qat_rebuild``), applies ``quantize_model``-style QAT, fine-tunes it
with ``fit`` and converts it to full int8. The result lands atomically, like every export.

Where the extra lives: either installed in this environment (``pip install 'bap-tf[qat]'``,
which also downgrades absl-py to tfmot's 1.x pin), or, as ``setup.sh test`` does, in a separate
package folder that only the worker sees (``qat_site``): tfmot, tf-keras and absl-py 1.x there,
prepended to the worker's ``PYTHONPATH``, everything else from this environment. That keeps
absl-py 2 and Keras 3 in the library's own process.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from bap_tf.atomic import atomic_path
from bap_tf.export.child import WorkerError, run_python, run_worker
from bap_tf.export.convert import DEFAULT_TIMEOUT_S, calibration_images
from bap_tf.export.file_checks import check_int8_model
from bap_tf.export.litert import LiteRTModel
from bap_tf.metrics import accuracy

QAT_MODULES = ("tensorflow_model_optimization", "tf_keras")
# The backbones whose pruned models the QAT rebuild (each rule's ``keras2``) has been run on to
# a full-int8 file; resnet50 is left out: at 32 px the TFLite converter crashed on one of them.
QAT_BACKBONES = ("resnet26", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0")
# A folder of [qat] packages for the worker alone (see the module docstring); setup.sh installs
# it as ``.venv/qat-site``.
QAT_SITE_ENV = "BAP_TF_QAT_SITE"
_WORKER = "bap_tf.export.qat_worker"


def qat_site():
    """The worker-only package folder: ``$BAP_TF_QAT_SITE``, else ``<venv>/qat-site`` if present."""
    if os.environ.get(QAT_SITE_ENV):
        return Path(os.environ[QAT_SITE_ENV])
    default = Path(sys.prefix) / "qat-site"
    return default if default.is_dir() else None


def worker_env():
    """Environment of the QAT child: legacy Keras, no GPU, and ``qat_site()`` first on the path."""
    env = {"TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    site = qat_site()
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return env


class QatError(WorkerError):
    """The QAT child process failed or timed out; the message holds its stderr tail."""


def qat_available():
    """``(True, "")`` when the ``[qat]`` extra is installed, else ``(False, reason)``.

    Looked up in a child process with the worker's path (``importlib.util.find_spec``, which
    imports nothing), so this process never loads tfmot.
    """
    probe = (
        "import importlib.util, sys; "
        f"missing = [m for m in {QAT_MODULES!r} if importlib.util.find_spec(m) is None]; "
        "print(' '.join(missing)); sys.exit(1 if missing else 0)"
    )
    # Any exit answers: 0 found, else not available (stdout names what is missing).
    result = run_python(
        ["-c", probe], timeout_s=None, what="lookup of the [qat] extra", env=worker_env(),
        accept=lambda code: True,
    )
    if result.returncode == 0:
        return True, ""
    return False, (
        f"quantization-aware training needs {result.stdout.strip() or 'the [qat] extra'}: "
        f"pip install 'bap-tf[qat]', or bash setup.sh test (a worker-only folder, ${QAT_SITE_ENV})"
    )


def check_qat(backbone):
    """Raises ``ValueError`` unless quantization-aware training can run for ``backbone``: one the
    rebuild knows, and the ``[qat]`` extra found. A second of work: commands check it before
    training rather than let the export stage find it."""
    if backbone not in QAT_BACKBONES:
        raise ValueError(
            f"quantize='qat' needs a backbone whose layers the QAT rebuild knows. Expected one of "
            f"{list(QAT_BACKBONES)}, or --quantize=int8 (post-training). Received: backbone={backbone!r}"
        )
    available, reason = qat_available()
    if not available:
        raise ValueError(
            f"quantize='qat' cannot run here: {reason}. Expected the [qat] extra, or --quantize=int8 "
            "(post-training). Received: quantize='qat'"
        )


def quantization_aware_int8(
    model,
    path,
    train_images,
    train_labels,
    eval_images,
    eval_labels,
    *,
    epochs=3,
    batch_size=32,
    learning_rate=1e-4,
    seed=0,
    timeout_s=DEFAULT_TIMEOUT_S,
):
    """Fine-tunes ``model`` with QAT, writes its full-int8 ``.tflite`` to ``path``.

    Args:
        model: the domain's reduced ``keras.Model`` (Keras 3, functional, ``image -> logits``).
        path: destination of the int8 file; replaced atomically after the int8 checks pass.
        train_images, train_labels: float images ``(N, H, W, C)`` in [0, 1], integer labels.
        eval_images, eval_labels: the set the returned accuracy is measured on.
        epochs, batch_size, learning_rate: of the fine-tuning (Adam, cross-entropy on logits).
        seed: seeds tf_keras in the child.
        timeout_s: seconds before the child is killed.

    Returns:
        ``{"path", "accuracy", "qat_keras_accuracy", "rebuild_max_abs_logit_diff", "loss"}``:
        ``accuracy`` is the written int8 file's (run with LiteRT) on the eval set;
        ``rebuild_max_abs_logit_diff`` compares the tf_keras rebuild with ``model`` before QAT.

    Raises:
        RuntimeError: the ``[qat]`` extra is missing. QatError: the child failed.
        ModelCheckError: the result is not a full-int8 builtin model.
    """
    available, reason = qat_available()
    if not available:
        raise RuntimeError(reason)
    train_images = calibration_images(model, train_images, max_samples=len(train_images))
    eval_images = calibration_images(model, eval_images, max_samples=len(eval_images))
    train_labels, eval_labels = _labels(train_labels, train_images), _labels(eval_labels, eval_images)
    with tempfile.TemporaryDirectory(prefix="bap_tf_qat_") as work:
        work = Path(work)
        _write_model(model, work)
        np.save(work / "train_x.npy", train_images)
        np.save(work / "train_y.npy", train_labels)
        np.save(work / "eval_x.npy", eval_images)
        np.save(work / "eval_y.npy", eval_labels)
        np.save(work / "reference.npy", np.asarray(model.predict(eval_images, verbose=0), np.float32))
        args = ["--work", work, "--epochs", epochs, "--batch-size", batch_size,
                "--learning-rate", learning_rate, "--seed", seed]
        with atomic_path(path) as temporary:
            run_worker(
                _WORKER, [*args, "--output", temporary], timeout_s=timeout_s,
                what=f"quantization-aware training of {model.name!r}",
                env=worker_env(),
                error_class=QatError,
            )
            check_int8_model(temporary.read_bytes())
            logits = LiteRTModel(temporary).logits(eval_images)
        summary = json.loads((work / "summary.json").read_text())
    return {
        "path": str(path),
        "accuracy": accuracy(logits, eval_labels),
        "qat_keras_accuracy": summary.get("qat_keras_accuracy"),
        "rebuild_max_abs_logit_diff": summary.get("rebuild_max_abs_logit_diff"),
        "loss": summary.get("loss"),
    }


def _write_model(model, directory):
    """The Keras 3 functional config as JSON and every layer's weights, keyed ``layer::index``."""
    (directory / "model.json").write_text(json.dumps(model.get_config()))
    arrays = {
        f"{layer.name}::{index}": np.asarray(weight)
        for layer in model.layers
        for index, weight in enumerate(layer.get_weights())
    }
    np.savez(directory / "weights.npz", **arrays)


def _labels(labels, images):
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "Labels must be integers, one per image. "
            f"Received: labels of shape {labels.shape} and dtype {labels.dtype} "
            f"for {images.shape[0]} images"
        )
    return labels.astype(np.int64)

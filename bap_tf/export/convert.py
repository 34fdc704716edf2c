"""TFLite conversion: the Android multi-signature model and the per-domain int8 MCU models.

Both follow the same path: the parent writes a SavedModel with one signature per model
(``saved_model.py``), a child process (``convert_worker.py``) converts it with TF's
``TFLiteConverter`` into a temporary file beside the destination, the parent checks the file
with LiteRT (``file_checks.py``) and only then renames it into place (``atomic.py``). A failed,
crashed or killed conversion therefore never leaves a partial or unchecked ``.tflite``, and an
existing file at the destination survives it unchanged.

Conversions run in a child process because TF 2.21's converter keeps memory after every call;
a long export (many domains, several variants) would otherwise grow without bound.
"""

import tempfile
from pathlib import Path

import numpy as np

from bap_tf.atomic import atomic_path
from bap_tf.export.child import WorkerError, run_worker
from bap_tf.export.file_checks import check_android_model, check_int8_model
from bap_tf.export.saved_model import write_saved_model
from bap_tf.export.sharing import keep_shared_kernels
from bap_tf.export.signatures import DEFAULT_SIGNATURE, check_signature_keys

VARIANTS = ("float32", "dynamic")
DEFAULT_TIMEOUT_S = 1800
DEFAULT_CALIBRATION_SAMPLES = 256
_WORKER = "bap_tf.export.convert_worker"
# The converter needs no accelerator; keep the child off the GPU the parent may be using.
_WORKER_ENV = {"CUDA_VISIBLE_DEVICES": ""}


class ConversionError(WorkerError):
    """The converter child process failed or timed out; the message holds its stderr tail."""


def export_android(models, path, *, variant="float32", timeout_s=DEFAULT_TIMEOUT_S):
    """Writes one ``.tflite`` for Android with one signature per domain; returns its ``Path``.

    Args:
        models: ``{domain: keras.Model}``, each ``image (None, H, W, 3) -> logits``. Models may
            share layer objects (the union-pruned model): shared weights are stored once, and
            per-domain BatchNorms after shared layers are kept as a separate 1x1 depthwise op
            so that they cannot be folded into (and duplicate) the shared kernels.
        path: destination file; replaced atomically, only after the result has been checked.
        variant: ``"float32"``, or ``"dynamic"`` for dynamic-range quantization (int8 weights,
            float activations, float input and output).
        timeout_s: seconds the converter child may run before it is killed.

    Signature keys are the domain names; each takes ``image`` and returns ``logits``.

    Raises:
        ValueError: bad variant or domain names. ConversionError: the converter failed.
        ModelCheckError: the converted file lacks the expected signatures.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}. Received: variant={variant!r}")
    domains = check_signature_keys(models)
    with tempfile.TemporaryDirectory(prefix="bap_tf_export_") as work:
        saved_model = Path(work) / "saved_model"
        write_saved_model(keep_shared_kernels(models), saved_model)
        args = ["--saved-model", saved_model, "--mode", "android", "--variant", variant]
        for domain in domains:
            args += ["--signature", domain]
        with atomic_path(path) as temporary:
            _convert(args, temporary, timeout_s, f"{variant} Android conversion of {domains}")
            check_android_model(temporary.read_bytes(), domains)
    return Path(path)


def export_micro(
    model,
    path,
    representative_images,
    *,
    max_samples=DEFAULT_CALIBRATION_SAMPLES,
    seed=0,
    timeout_s=DEFAULT_TIMEOUT_S,
):
    """Writes a full-integer int8 ``.tflite`` of one domain's model; returns its ``Path``.

    Input and output are int8 (batch size 1); only ``TFLITE_BUILTINS_INT8`` ops are allowed,
    and the result is checked for builtin ops, int8 tensors and sane quantization parameters
    before it is moved to ``path``.

    Args:
        model: the domain's ``keras.Model``, ``image (None, H, W, C) -> logits``.
        path: destination file; replaced atomically.
        representative_images: float array ``(N, H, W, C)`` in [0, 1] from this domain's
            training set; activation ranges are calibrated on it.
        max_samples: calibration uses at most this many images (a seeded random subset).
        seed: seed of that subset.
        timeout_s: seconds the converter child may run before it is killed.

    Raises:
        ValueError: bad representative images. ConversionError: the converter failed.
        ModelCheckError: the result is not a full-int8 builtin model.
    """
    images = calibration_images(model, representative_images, max_samples, seed)
    with tempfile.TemporaryDirectory(prefix="bap_tf_export_") as work:
        saved_model = Path(work) / "saved_model"
        write_saved_model({DEFAULT_SIGNATURE: model}, saved_model)
        representative = Path(work) / "representative.npy"
        np.save(representative, images)
        args = ["--saved-model", saved_model, "--mode", "micro", "--representative", representative]
        with atomic_path(path) as temporary:
            _convert(args, temporary, timeout_s, f"int8 conversion of {model.name!r}")
            check_int8_model(temporary.read_bytes())
    return Path(path)


def calibration_images(model, images, max_samples=DEFAULT_CALIBRATION_SAMPLES, seed=0):
    """Validates representative images against ``model`` and subsamples them to ``max_samples``."""
    images = np.asarray(images)
    expected = tuple(model.inputs[0].shape[1:])
    if images.ndim != 4 or tuple(images.shape[1:]) != expected or images.shape[0] == 0:
        raise ValueError(
            f"representative_images must be a non-empty (N, {', '.join(map(str, expected))}) "
            f"array for model {model.name!r}. Received: shape={images.shape}"
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            "representative_images must be float images in [0, 1], as the model receives them. "
            f"Received: dtype={images.dtype}"
        )
    low, high = float(np.min(images)), float(np.max(images))
    if not (np.isfinite(low) and np.isfinite(high)) or low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(
            "representative_images must lie in [0, 1]; the int8 input scale is calibrated on "
            f"them. Received: values in [{low}, {high}]"
        )
    if images.shape[0] > max_samples:
        picks = np.random.default_rng(seed).choice(images.shape[0], max_samples, replace=False)
        images = images[np.sort(picks)]
    return images.astype(np.float32)


def _convert(args, output, timeout_s, what):
    run_worker(
        _WORKER,
        [*args, "--output", output],
        timeout_s=timeout_s,
        what=what,
        env=_WORKER_ENV,
        error_class=ConversionError,
    )

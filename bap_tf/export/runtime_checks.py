"""On-device checks: run the exported files on an eval set and compare them with Keras.

Per domain: accuracy of Keras, the Android file (LiteRT), the int8 file (LiteRT) and the int8
file in TFLM; argmax agreement and max |logit difference| between Keras and the Android file;
argmax agreement and max difference in output quantization steps between TFLM and LiteRT on the
int8 file; file sizes and the smallest TFLM arena. Everything returned is plain ``dict`` /
``list`` / ``int`` / ``float`` / ``str``, ready for ``json.dump``.
"""

from pathlib import Path

import numpy as np

from bap_tf.domains import identifier
from bap_tf.export.litert import LiteRTModel
from bap_tf.export.micro import DEFAULT_STEP, MicroModel, find_arena_bytes
from bap_tf.metrics import accuracy


def run_checks(models, eval_sets, *, android_path=None, micro_paths=None, micro_models=None, arenas=None,
               arena_step=DEFAULT_STEP, batch_size=64):
    """Checks every domain of ``models`` against the exported files.

    Args:
        models: ``{domain: keras.Model}``.
        eval_sets: ``{domain: (images, labels)}``: float images ``(N, H, W, C)`` in [0, 1] and
            integer labels ``(N,)``.
        android_path: the float32 Android file with a signature per domain (keyed by
            ``domains.identifier``), or None to skip.
        micro_paths: ``{domain: int8 .tflite path}``, or None to skip the int8 checks.
        micro_models: ``{domain: keras.Model}`` the int8 files were converted from, when not
            ``models`` (the Android file's shared layout holds the union models, the int8 files
            each domain's own).
        arenas: ``{domain: find_arena_bytes result}`` already measured (bap-export does), to run
            TFLM in instead of searching again; a domain without one is searched.
        arena_step: resolution of the TFLM arena search, bytes.

    Returns:
        ``{"android": {"path", "bytes", "signatures"} or None, "domains": {domain: {...}}}``,
        see ``check_domain`` for a domain's entry.
    """
    missing = [domain for domain in models if domain not in eval_sets]
    if missing:
        raise ValueError(f"Every domain needs an eval set. Received no eval set for: {missing}")
    android = LiteRTModel(android_path) if android_path is not None else None
    result = {"android": None, "domains": {}}
    if android is not None:
        result["android"] = {
            "path": str(android_path), "bytes": android.model_bytes, "signatures": android.signatures,
        }
    for domain, model in models.items():
        images, labels = eval_sets[domain]
        micro_path = None if micro_paths is None else micro_paths.get(domain)
        result["domains"][domain] = check_domain(
            model, images, labels, android=android, signature=identifier(domain), micro_path=micro_path,
            micro_model=(micro_models or {}).get(domain), arena=(arenas or {}).get(domain), arena_step=arena_step,
            batch_size=batch_size,
        )
    return result


def check_domain(model, images, labels, *, android=None, signature=None, micro_path=None, micro_model=None,
                 arena=None, arena_step=DEFAULT_STEP, batch_size=64):
    """One domain's checks; ``android`` is a ``LiteRTModel`` (or path) run with ``signature``,
    compared with ``model``; the int8 file at ``micro_path`` with ``micro_model`` (default ``model``).

    Returns ``{"num_images", "accuracy": {"keras", "tflite_float", "tflite_int8", "tflm"},
    "tflite_float_vs_keras": {"argmax_agreement", "max_abs_logit_diff"},
    "tflm_vs_tflite_int8": {"argmax_agreement", "max_step_diff"},
    "tflite_int8_vs_keras": {"argmax_agreement", "max_abs_logit_diff"}, "micro_model_bytes",
    "arena_bytes", "arena_reported_bytes"}``; entries whose file was not given are None.
    """
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels).reshape(-1)
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(
            "images and labels must be non-empty and of the same length. "
            f"Received: {images.shape[0]} images, {labels.shape[0]} labels"
        )
    keras_logits = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float32)
    result = {
        "num_images": int(images.shape[0]),
        "accuracy": {"keras": accuracy(keras_logits, labels), "tflite_float": None,
                     "tflite_int8": None, "tflm": None},
        "tflite_float_vs_keras": None,
        "tflm_vs_tflite_int8": None,
        "tflite_int8_vs_keras": None,
        "micro_model_bytes": None,
        "arena_bytes": None,
        "arena_reported_bytes": None,
    }
    if android is not None:
        if not isinstance(android, LiteRTModel):
            android = LiteRTModel(android)
        float_logits = android.logits(images, signature, batch_size)
        result["accuracy"]["tflite_float"] = accuracy(float_logits, labels)
        result["tflite_float_vs_keras"] = {
            "argmax_agreement": argmax_agreement(float_logits, keras_logits),
            "max_abs_logit_diff": float(np.max(np.abs(float_logits - keras_logits))),
        }
    if micro_path is not None:
        if micro_model is not None and micro_model is not model:
            keras_logits = np.asarray(micro_model.predict(images, batch_size=batch_size, verbose=0), np.float32)
        _add_int8_checks(result, Path(micro_path), images, labels, keras_logits, arena, arena_step,
                         batch_size)
    return result


def _add_int8_checks(result, path, images, labels, keras_logits, arena, arena_step, batch_size):
    litert = LiteRTModel(path)
    arena = arena or find_arena_bytes(path, step=arena_step)
    # Run TFLM in exactly the arena found: the probe showed that it allocates, this shows that
    # it serves the whole eval set.
    micro = MicroModel(path, arena_bytes=arena["arena_bytes"])
    litert_raw = litert.raw_outputs(images, batch_size=batch_size)
    micro_raw = micro.raw_outputs(images)
    steps = np.abs(micro_raw.astype(np.int32) - litert_raw.astype(np.int32))
    # argmax of the raw int8 outputs is the argmax of the logits: dequantizing is increasing.
    result["accuracy"]["tflite_int8"] = accuracy(litert_raw, labels)
    result["accuracy"]["tflm"] = accuracy(micro_raw, labels)
    int8_logits = litert.logits(images, batch_size=batch_size)
    result["tflite_int8_vs_keras"] = {
        "argmax_agreement": argmax_agreement(int8_logits, keras_logits),
        "max_abs_logit_diff": float(np.max(np.abs(int8_logits - keras_logits))),
    }
    result["tflm_vs_tflite_int8"] = {
        "argmax_agreement": argmax_agreement(micro_raw, litert_raw),
        "max_step_diff": int(steps.max()),
    }
    result["micro_model_bytes"] = litert.model_bytes
    result["arena_bytes"] = arena["arena_bytes"]
    result["arena_reported_bytes"] = arena["reported_bytes"]


def argmax_agreement(first, second):
    """Fraction of rows whose argmax is the same in two ``(N, K)`` arrays."""
    return float(np.mean(np.argmax(first, axis=-1) == np.argmax(second, axis=-1)))

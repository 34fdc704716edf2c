"""TFLM inference against LiteRT on the same int8 files, and the arena search."""

import numpy as np
import pytest

from bap_tf.export.litert import LiteRTModel
from bap_tf.export.micro import MicroModel, arena_runs, find_arena_bytes
from bap_tf.export.quantization import dequantize, tensor_quantization


def test_tflm_agrees_with_litert_on_int8_outputs(micro_files, eval_sets):
    for domain, path in micro_files.items():
        images = eval_sets[domain][0]
        micro, litert = MicroModel(path), LiteRTModel(path)
        tflm_raw, litert_raw = micro.raw_outputs(images), litert.raw_outputs(images)
        assert tflm_raw.dtype == np.int8 and tflm_raw.shape == litert_raw.shape == (len(images), 5 if domain == "birds" else 3)
        agreement = np.mean(np.argmax(tflm_raw, -1) == np.argmax(litert_raw, -1))
        steps = np.abs(tflm_raw.astype(int) - litert_raw.astype(int)).max()
        assert agreement >= 0.99, (domain, agreement)
        # Reference (TFLM) and optimized (LiteRT) kernels round differently now and then; the
        # differences add up over layers to a step or two (2 measured on these models).
        assert steps <= 3, (domain, steps)
        scale, zero_point = tensor_quantization(micro.output_details)
        np.testing.assert_array_equal(micro.logits(images), dequantize(tflm_raw, scale, zero_point))


def test_arena_search_finds_the_smallest_running_arena(micro_files, eval_sets):
    path = micro_files["cars"]
    found = find_arena_bytes(path, step=256)
    arena = found["arena_bytes"]
    assert arena % 256 == 0 and found["step"] == 256
    # TFLM's own report is a lower bound, not a size that works.
    assert 0 < found["reported_bytes"] <= arena
    assert arena_runs(path, arena)
    assert not arena_runs(path, arena - 256)
    logits = MicroModel(path, arena_bytes=arena).logits(eval_sets["cars"][0][:8])
    assert logits.shape == (8, 3) and np.all(np.isfinite(logits))


def test_find_arena_bytes_rejects_a_file_tflm_cannot_run():
    with pytest.raises(RuntimeError, match="TFLM cannot run this model"):
        find_arena_bytes(b"this is not a flatbuffer", ceiling=64 * 1024)


def test_micro_model_rejects_images_of_the_wrong_shape(micro_files):
    with pytest.raises(ValueError, match=r"\(N, 16, 16, 3\).*Received: shape=\(2, 8, 8, 3\)"):
        MicroModel(micro_files["birds"]).raw_outputs(np.zeros((2, 8, 8, 3), np.float32))

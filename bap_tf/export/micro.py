"""Runs int8 models with TensorFlow Lite Micro and finds the smallest tensor arena they need.

Inference uses ``tflite_micro.runtime.Interpreter`` (reference kernels, the recording
allocator) one image at a time, as firmware does. The arena search runs each candidate size in
a child process (``micro_probe.py``) because TFLM's Python binding can crash, not raise, when
the arena is much too small. The child runs that file as a script, so it loads numpy and TFLM
only, not TensorFlow: a probe takes a fraction of a second.

Arena size: we use both sources TFLM offers. The recording allocator's report ("Arena
allocation total") is read first; it is a lower bound but not a size that works, because the
memory planner needs scratch space while it plans (a tiny test model reported at 5408 bytes
fails in 5408 and runs in 5632). It only seeds the bracket; the answer is a binary search on real probes, to
``step`` bytes: ``arena_bytes`` runs, ``arena_bytes - step`` does not. The figure holds for
TFLM's reference kernels on a 64-bit host; optimized kernels (CMSIS-NN, ...) may want scratch
buffers and 32-bit targets have smaller structs, so keep a margin on the device.
"""

import math
import re
import tempfile
from pathlib import Path

import numpy as np
from tflite_micro import runtime

from bap_tf.export.child import run_python, stderr_tail
from bap_tf.export.micro_probe import ARENA_TOO_SMALL
from bap_tf.export.quantization import dequantize, quantize, tensor_quantization

# Arena used for inference when the caller gives none: generous, because a too-small arena can
# crash the process instead of raising.
DEFAULT_ARENA_BYTES = 16 * 1024 * 1024
DEFAULT_STEP = 256
_PROBE = Path(__file__).with_name("micro_probe.py")
_REPORTED_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


class MicroModel:
    """An int8 ``.tflite`` (path or bytes) in a TFLM interpreter with a fixed arena."""

    def __init__(self, model, arena_bytes=DEFAULT_ARENA_BYTES):
        content = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
        self.model_bytes = len(content)
        self.arena_bytes = int(arena_bytes)
        self._interpreter = runtime.Interpreter.from_bytes(content, arena_size=self.arena_bytes)
        self.input_details = self._interpreter.get_input_details(0)
        self.output_details = self._interpreter.get_output_details(0)

    def raw_outputs(self, images):
        """int8 outputs ``(N, K)`` for float images ``(N, H, W, C)`` in [0, 1], one at a time."""
        images = np.asarray(images, np.float32)
        dtype, shape = self.input_details["dtype"], tuple(self.input_details["shape"])
        if tuple(images.shape[1:]) != shape[1:]:
            raise ValueError(
                f"Images must have shape (N, {', '.join(map(str, shape[1:]))}) for this model. "
                f"Received: shape={images.shape}"
            )
        if dtype == np.float32:
            inputs = images
        else:
            scale, zero_point = tensor_quantization(self.input_details)
            inputs = quantize(images, scale, zero_point, dtype)
        outputs = []
        for image in inputs:
            self._interpreter.set_input(image[None], 0)
            self._interpreter.invoke()
            outputs.append(np.array(self._interpreter.get_output(0)).reshape(-1))
        return np.stack(outputs)

    def logits(self, images):
        """float32 logits ``(N, K)``, dequantized with the output tensor's parameters."""
        raw = self.raw_outputs(images)
        if self.output_details["dtype"] == np.float32:
            return raw
        scale, zero_point = tensor_quantization(self.output_details)
        return dequantize(raw, scale, zero_point)


def arena_runs(model_path, arena_bytes, timeout_s=120):
    """True when the model allocates and runs one inference in ``arena_bytes`` (child process)."""
    return _probe(model_path, arena_bytes, timeout_s)[0]


def find_arena_bytes(model, step=DEFAULT_STEP, ceiling=DEFAULT_ARENA_BYTES, timeout_s=120):
    """Smallest TFLM arena, in multiples of ``step`` bytes, in which the model runs.

    Args:
        model: path of an int8 ``.tflite``, or its bytes.
        step: resolution of the search in bytes (256 by default).
        ceiling: largest arena tried; the model must run in it.
        timeout_s: per probe.

    Returns:
        ``{"arena_bytes", "reported_bytes", "step", "probes"}``: the arena found (runs; one
        step less does not), TFLM's own allocation report at ``ceiling`` (None if TFLM printed
        none), the step, and how many probe processes the search took.

    Raises:
        RuntimeError: the model does not run in TFLM even with ``ceiling`` bytes.
    """
    step = int(step)
    if step <= 0:
        raise ValueError(f"step must be a positive number of bytes. Received: step={step}")
    with tempfile.TemporaryDirectory(prefix="bap_tf_arena_") as work:
        if isinstance(model, (str, Path)):
            path = Path(model)
        else:
            path = Path(work) / "model.tflite"
            path.write_bytes(bytes(model))
        probes = 0

        def runs(units):
            nonlocal probes
            probes += 1
            return arena_runs(path, units * step, timeout_s)

        # Any failure here, a Python error included (an unreadable file), means TFLM cannot run it.
        ok, stderr = _probe(path, ceiling, timeout_s, report=True, strict=False)
        probes += 1
        if not ok:
            raise RuntimeError(
                f"TFLM cannot run this model even with a {ceiling}-byte arena: an unsupported op "
                f"or a model that needs more memory. Received: model={str(model)[:200]!r}\n"
                f"--- probe stderr (tail) ---\n{stderr_tail(stderr)}"
            )
        match = _REPORTED_TOTAL.search(stderr)
        reported = int(match.group(1)) if match else None
        high_limit = ceiling // step
        # Bracket: ``low`` fails (0 always does), ``high`` runs. The report is a lower bound,
        # so start just under it and a quarter above it, widening when that guess is off.
        low, high = (0, high_limit) if reported is None else (reported // step, None)
        while low > 0 and runs(low):
            high, low = low, low // 2
        if high is None:
            high = min(max(math.ceil(reported * 1.25 / step), low + 1), high_limit)
            while not runs(high):
                low, high = high, min(high * 2, high_limit)
                if low == high_limit:
                    raise RuntimeError(
                        f"The arena search found no working size up to {ceiling} bytes, although "
                        f"the model ran with {ceiling} bytes: TFLM's arena need is not monotonic."
                    )
        while high - low > 1:
            middle = (low + high) // 2
            if runs(middle):
                high = middle
            else:
                low = middle
        return {"arena_bytes": high * step, "reported_bytes": reported, "step": step, "probes": probes}


def _probe(model_path, arena_bytes, timeout_s, report=False, strict=True):
    """(ran, stderr) of one probe child; a crash or a too-small report both count as not ran.

    With ``strict``, any other failure of the child (a Python error: bad file, import) raises
    ``WorkerError`` instead.
    """
    # -P: the script's own directory stays off sys.path (its siblings are package modules).
    args = ["-P", _PROBE, model_path, int(arena_bytes), *(["--report"] if report else [])]

    def answered(code):  # ran, too small, or crashed in TFLM (a signal)
        return not strict or code in (0, ARENA_TOO_SMALL) or code < 0

    result = run_python(
        args, timeout_s=timeout_s, what=f"TFLM arena probe of {int(arena_bytes)} bytes", accept=answered
    )
    return result.returncode == 0, result.stderr

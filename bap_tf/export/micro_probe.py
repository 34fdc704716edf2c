"""Child process of ``micro.py``: does a model allocate and run in a given TFLM arena?

    python -P bap_tf/export/micro_probe.py MODEL.tflite ARENA_BYTES [--report]

Exit code 0: the interpreter was created with that arena and one inference ran; with
``--report`` TFLM's recording allocator then prints its arena usage to stderr. Exit code
``ARENA_TOO_SMALL``: TFLM reported that the arena is too small. TFLM's Python binding can also
crash outright (SIGSEGV) when the arena is far too small, which is why each probe is its own
process.
"""

import sys

import numpy as np
from tflite_micro import runtime

# The one definition: micro.py imports it to tell "too small" from a failed probe.
ARENA_TOO_SMALL = 3


def probe(model_bytes, arena_bytes, report=False):
    interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_bytes)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
    interpreter.invoke()
    interpreter.get_output(0)
    if report:
        interpreter.print_allocations()


def main(argv):
    model_path, arena_bytes = argv[0], int(argv[1])
    with open(model_path, "rb") as file:
        model_bytes = file.read()
    try:
        probe(model_bytes, arena_bytes, report="--report" in argv[2:])
    except RuntimeError as error:
        print(f"TFLM could not run the model in {arena_bytes} bytes: {error}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        return ARENA_TOO_SMALL
    sys.stdout.flush()
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

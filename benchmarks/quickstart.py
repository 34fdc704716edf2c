"""The README's Python quickstart as written: how long it takes and what it prints.

The README's ``python`` block is run unchanged in a fresh folder (a child process, so its
``runs/quickstart`` and data cache start empty), timed, and its printed lines recorded: each
domain's kept fraction and the union's, the union model's parameters and MACs, its test
accuracy after fine-tuning and the Android file's. ``tests/test_readme.py`` runs the same block
at tiny sizes; this is the one at the sizes a reader runs.

    python -m benchmarks.quickstart           # the block as written: about 9 min on 2 busy cores
    python -m benchmarks.quickstart --quick   # its tiny sizes (those of tests/test_readme.py)
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

NAME = "quickstart"
README = common.ROOT / "README.md"
SIZES = re.compile(r"^WIDTH, EPOCHS, FINETUNE_EPOCHS, STEPS = .*$", re.MULTILINE)
TINY = "WIDTH, EPOCHS, FINETUNE_EPOCHS, STEPS = 4, 1, 1, 2"
# The lines the block prints that the page keeps (progress bars and warnings are dropped).
KEPT = ("kept per domain:", "union model", "runs/quickstart/android_float32.tflite")


def quickstart_code(quick):
    """The README's one ``python`` block, at its tiny sizes in quick mode."""
    (code,) = re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)
    return SIZES.sub(TINY, code) if quick else code


def run(code):
    """``(seconds, printed lines kept)`` of the block run in a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="bap_tf_quickstart_") as folder:
        script = Path(folder) / "quickstart.py"
        script.write_text(code)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True, text=True,
                                env=env, check=True)
        seconds = time.perf_counter() - start
    return seconds, [line for line in result.stdout.splitlines() if line.startswith(KEPT)]


def markdown(record):
    sizes = SIZES.search(quickstart_code(record["mode"] == "quick"))[0]
    return "\n".join([
        "### The README's Python quickstart, as written", "",
        f"`{sizes}`; {record['seconds'] / 60:.1f} min on this machine, load average "
        f"{'/'.join(map(str, record['machine']['load_average_1_5_15']))} at the start. It printed:", "",
        "```", *record["printed"], "```",
    ])


def main():
    args = common.parser(__doc__).parse_args()
    record = common.start_record(NAME, args.quick, {"sizes": SIZES.search(quickstart_code(args.quick))[0]})
    record["seconds"], record["printed"] = run(quickstart_code(args.quick))
    common.write_results(record, markdown(record), args.results_dir)
    print(markdown(record))


if __name__ == "__main__":
    main()

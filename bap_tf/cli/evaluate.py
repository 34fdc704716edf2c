"""bap-eval: on-device accuracy checks and the report of the run in --workdir.

    bap-eval --workdir=runs/pocket [--reference_errors=refs.json] [--mcu_ram_kb=128]

Runs the exported files in LiteRT and TensorFlow Lite Micro, checks the microcontroller
budget and writes WORKDIR/report.json, report.md and plots/ (see ``bap_tf.run.eval_stage``).
"""

from bap_tf.cli import app, flags

flags.define_experiment_flags()
main = app.stage_main("bap-eval", lambda: ["eval"])


def run():
    app.run_app("bap-eval", main)


if __name__ == "__main__":
    run()

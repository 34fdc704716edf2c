"""bap-export: writes the .tflite files of the run in --workdir (WORKDIR/export); see ``bap_tf.run.export_stage``.

    bap-export --workdir=runs/pocket

Reads the workdir's config.json; flags given here override its settings, except the ones
that define the run (dataset, domains, backbone, budget...), which must match.
"""

from bap_tf.cli import app, flags

flags.define_experiment_flags()
main = app.stage_main("bap-export", lambda: ["export"])


def run():
    app.run_app("bap-export", main)


if __name__ == "__main__":
    run()

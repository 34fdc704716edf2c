"""bap-prune: builds the reduced models of the run in --workdir (WORKDIR/pruned); see ``bap_tf.run.prune_stage``.

    bap-prune --workdir=runs/pocket

Reads the workdir's config.json; flags given here override its settings, except the ones
that define the run (dataset, domains, backbone, budget...), which must match.
"""

from bap_tf.cli import app, flags

flags.define_experiment_flags()
main = app.stage_main("bap-prune", lambda: ["prune"])


def run():
    app.run_app("bap-prune", main)


if __name__ == "__main__":
    run()

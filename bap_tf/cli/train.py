"""bap-train: multi-domain budget-aware training, and by default the whole chain after it.

    bap-train --flagfile=flags/pocket.cfg --workdir=runs/pocket

``--stages=all`` (the default) runs train, prune, export and eval; a comma list runs some of
them, in that order. Running it again on the same workdir continues: training resumes from the
last finished epoch (or is skipped when done), later stages are redone.
"""

from absl import flags as absl_flags

from bap_tf.cli import app, flags
from bap_tf.config import STAGES

flags.define_experiment_flags()
absl_flags.DEFINE_list("stages", ["all"], f"Comma list of stages to run, in this order: {','.join(STAGES)}; "
                       "'all' runs every one.")
absl_flags.register_validator(
    "stages", lambda values: bool(values) and all(v in (*STAGES, "all") for v in values),
    message=f"--stages must be 'all' or a comma list of {','.join(STAGES)}",
)


def stages():
    requested = absl_flags.FLAGS.stages
    return list(STAGES) if "all" in requested else [s for s in STAGES if s in requested]


main = app.stage_main("bap-train", stages)


def run():
    app.run_app("bap-train", main)


if __name__ == "__main__":
    run()

"""bap-pretrain: pre-trains a backbone on a source domain and saves its weights.

    bap-pretrain --flagfile=flags/pretrain_pocket.cfg --workdir=runs/pretrain

The offline default (fashion_mnist, resnet26 width 16, 32 px) reproduces the backbone shipped
in bap_tf/assets; --source=imagenet pre-trains on tfds imagenet2012 (see bap_tf.run.pretrain).
Pass the result to bap-train with --pretrained=WORKDIR/backbone.weights.h5.
"""

import os

from absl import flags as absl_flags

from bap_tf.cli import app, flags
from bap_tf.config import PretrainConfig

flags.define_pretrain_flags()
FLAGS = absl_flags.FLAGS


def main(argv):
    values = {f: FLAGS[f].value for f in PretrainConfig.__dataclass_fields__}
    config = PretrainConfig(**values)
    from bap_tf.atomic import write_text
    from bap_tf.run.workdir import Workdir

    workdir = Workdir(os.path.abspath(FLAGS.workdir)).create()
    app.quiet_tensorflow()
    # Not config.json: that name holds an experiment's config, and a shared workdir must keep it.
    write_text(workdir.root / "pretrain_config.json", config.to_json() + "\n")
    from bap_tf.run.pretrain import pretrain  # loads TensorFlow: after the flags are checked

    result = pretrain(config, workdir)
    app.say("bap-pretrain", f"done. Test accuracy on {config.source}: {result.test_accuracy:.4f}")
    print(f"  {result.weights_path}: the backbone's weights (bap-train --pretrained={result.weights_path})")
    print(f"  {result.summary_path}, tensorboard/pretrain/ in {workdir.root}")


def run():
    app.run_app("bap-pretrain", main)


if __name__ == "__main__":
    run()

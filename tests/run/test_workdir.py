"""A later command loads the prune stage's models without what only the fine-tuning imports."""

import subprocess
import sys

import keras

from bap_tf.prune.distill import DistillationLoss
from bap_tf.prune.saving import save_union
from bap_tf.run.workdir import Workdir

LOAD = """
from bap_tf.config import ExperimentConfig
from bap_tf.run.workdir import Workdir
config = ExperimentConfig(domains=("letters",))
workdir = Workdir({root!r})
print(sorted(workdir.load_domain_models(config)), sorted(workdir.load_union(config)))
"""


def test_models_fine_tuned_with_distillation_load_in_a_fresh_process(tmp_path):
    inputs = keras.Input((4, 4, 3), name="image")
    model = keras.Model(inputs, keras.layers.Dense(26)(keras.layers.Flatten()(inputs)), name="letters")
    model.compile(optimizer="adam", loss=DistillationLoss(weight=0.5))
    workdir = Workdir(tmp_path / "run").create()
    workdir.pruned.mkdir(parents=True)
    model.save(workdir.domain_model("letters"))
    save_union({"letters": model}, workdir.union_model)
    # A fresh interpreter, as bap-export run after bap-prune: bap_tf.prune.distill is not imported.
    result = subprocess.run([sys.executable, "-c", LOAD.format(root=str(workdir.root))], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "['letters'] ['letters']"

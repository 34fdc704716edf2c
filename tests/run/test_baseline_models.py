"""The baselines' models, trained and scored on the run's data: each domain's setting chosen on
held-back data."""

import keras

from bap_tf.run import baseline_models
from bap_tf.run.workdir import Workdir


def test_each_domain_takes_the_setting_best_on_held_back_data(tmp_path, tiny_config, monkeypatch):
    scores = {(1e-3, True): 0.5, (1e-3, False): 0.9, (2e-3, True): 0.7, (2e-3, False): 0.6}
    trained = []

    def fake(config, train, held, setting):
        trained.append(setting)
        backbone = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D()])
        model = baseline_models._with_head(backbone, train.num_classes, "fake")
        return model, scores[setting["learning_rate"], setting["augment"]], 1

    monkeypatch.setattr(baseline_models, "_finetuned", fake)
    config = tiny_config(image_size=16)
    entry = baseline_models.finetune(config, Workdir(tmp_path / "run").create())["digits"]
    assert trained == list(baseline_models.FINETUNE_GRID)
    assert entry["settings"] == {"learning_rate": 1e-3, "augment": False} and entry["held_back"] == 0.9
    # Nothing held back: nothing to choose on, the first setting is taken.
    trained.clear()
    config = tiny_config(image_size=16, validation_fraction=0.0)
    entry = baseline_models.finetune(config, Workdir(tmp_path / "other").create())["digits"]
    assert trained == [baseline_models.FINETUNE_GRID[0]] and entry["settings"] == baseline_models.FINETUNE_GRID[0]

"""The baselines measured once per workdir and cached across runs, the teachers kept with them,
and the S-score reference taken from them."""

import json

import keras
import pytest

from bap_tf.config import ExperimentConfig
from bap_tf.run import baseline_cache, baseline_models, s_score_reference
from bap_tf.run.workdir import Workdir


@pytest.mark.slow
def test_baselines_are_measured_once_and_finetuning_is_the_reference(tmp_path, tiny_config, monkeypatch):
    config = tiny_config()
    workdir = Workdir(tmp_path / "run").create()
    measured = baseline_cache.measured_baselines(config, workdir)
    for kind in ("feature_extractor", "finetune"):
        entry = measured[kind]["digits"]
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["params"] > 0 and entry["macs"] > 0
        assert 0.0 <= entry["held_back"] <= 1.0  # the setting was chosen on held-back data
    assert measured["finetune"]["digits"]["epoch"] in (0, 1, 2)  # selected on the validation split
    assert measured["finetune"]["digits"]["settings"] in baseline_models.FINETUNE_GRID
    assert measured["feature_extractor"]["digits"]["settings"]["C"] in baseline_models.FEATURE_EXTRACTOR_C
    errors, description = s_score_reference.reference_errors(config, measured)
    assert errors == {"digits": pytest.approx(1.0 - measured["finetune"]["digits"]["accuracy"])}
    assert description.startswith("finetune")
    # Saved with what it depends on: the same settings reuse it, others measure again.
    monkeypatch.setattr(baseline_models, "finetune", lambda config, workdir, *models_dir: pytest.fail("measured twice"))
    assert baseline_cache.measured_baselines(config, workdir) == measured
    assert json.loads(workdir.baselines.read_text())["key"]["epochs"] == 2
    calls = []
    monkeypatch.setattr(baseline_models, "finetune",
                        lambda config, workdir, *models_dir: calls.append(config) or measured["finetune"])
    baseline_cache.measured_baselines(tiny_config(epochs=3), workdir)
    assert len(calls) == 1


def test_without_baselines_a_reference_file_measures_nothing(tmp_path, monkeypatch):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"digits": 0.25}))
    config = ExperimentConfig(domains=("digits",), baselines=False, reference_errors=str(refs)).resolve()
    for kind in ("finetune", "feature_extractor"):
        monkeypatch.setattr(baseline_models, kind, lambda config, workdir, *models_dir: pytest.fail("measured"))
    measured = baseline_cache.measured_baselines(config, Workdir(tmp_path / "run").create())
    assert measured == {"feature_extractor": None, "finetune": None}
    assert s_score_reference.reference_errors(config, measured) == ({"digits": 0.25}, f"file: {refs}")


def test_baselines_are_shared_by_runs_that_differ_in_budget_or_sharing_loss(tmp_path, tiny_config, monkeypatch):
    measured = {"digits": {"accuracy": 0.9, "params": 1, "macs": 1}}
    calls = []
    for kind in ("finetune", "feature_extractor"):
        monkeypatch.setattr(baseline_models, kind,
                            lambda config, workdir, *models_dir: calls.append(config) or measured)
    first = baseline_cache.measured_baselines(tiny_config(), Workdir(tmp_path / "a").create())
    assert len(calls) == 2 and baseline_cache.cache_path(tiny_config()).exists()
    other = tiny_config(budget=0.25, sharing_loss="union")
    assert baseline_cache.measured_baselines(other, Workdir(tmp_path / "b").create()) == first
    assert len(calls) == 2  # reused from the cache, and written into the new workdir
    assert json.loads((tmp_path / "b" / "baselines.json").read_text())["finetune"] == measured
    baseline_cache.measured_baselines(tiny_config(seed=1), Workdir(tmp_path / "c").create())
    assert len(calls) == 4  # another seed: other baselines


def test_the_cache_knows_when_a_folder_domain_changed(tmp_path):
    root = tmp_path / "folders"
    (root / "d1" / "a").mkdir(parents=True)
    (root / "d1" / "a" / "x.png").write_bytes(b"one")
    config = ExperimentConfig(dataset="folders", folders_root=str(root), domains=("d1",))
    before = baseline_cache.cache_path(config)
    assert baseline_cache.cache_path(config) == before
    (root / "d1" / "a" / "y.png").write_bytes(b"two")
    assert baseline_cache.cache_path(config) != before


def test_teachers_are_the_fine_tuning_baselines_kept_in_the_cache(tmp_path, tiny_config, monkeypatch):
    config = tiny_config(image_size=16, baselines=False)
    measured = []

    def fake(config, train, held, setting):
        measured.append(setting)
        backbone = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D()])
        return baseline_models._with_head(backbone, train.num_classes, "fake"), 0.5, 1

    monkeypatch.setattr(baseline_models, "_finetuned", fake)
    teachers = baseline_cache.teacher_models(config, Workdir(tmp_path / "a").create())
    assert list(teachers) == ["digits"] and teachers["digits"].output_shape == (None, 10)
    assert (tmp_path / "a" / "baselines.json").exists()  # measured for the teachers, kept as the run's baselines
    count = len(measured)
    baseline_cache.teacher_models(config, Workdir(tmp_path / "b").create())
    assert len(measured) == count  # the cache had them
    (baseline_cache.models_dir(config) / "digits.keras").unlink()
    baseline_cache.teacher_models(config, Workdir(tmp_path / "c").create())
    assert len(measured) == 2 * count  # a missing model is measured again

"""The baselines measured on the run's data, and the S-score reference taken from them."""

import json

import pytest

from bap_tf.config import ExperimentConfig
from bap_tf.data import pocket
from bap_tf.run import baselines, reference
from bap_tf.run.workdir import Workdir


@pytest.fixture(scope="module")
def pocket_cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pocket")
    pocket.build_pocket(directory, names=["digits"])
    return directory


def _config(cache, **overrides):
    values = dict(domains=("digits",), data_dir=str(cache), pretrained="none", width=4, epochs=2, steps_per_epoch=2,
                  batch_size=4, validation_fraction=0.1)
    return ExperimentConfig(**{**values, **overrides}).resolve()


@pytest.mark.slow
def test_baselines_are_measured_once_and_finetuning_is_the_reference(tmp_path, pocket_cache, monkeypatch):
    config = _config(pocket_cache)
    workdir = Workdir(tmp_path / "run").create()
    measured = reference.measured_baselines(config, workdir)
    for kind in ("feature_extractor", "finetune"):
        entry = measured[kind]["digits"]
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["params"] > 0 and entry["macs"] > 0
    assert measured["finetune"]["digits"]["epoch"] in (0, 1, 2)  # selected on the validation split
    errors, description = reference.reference_errors(config, measured)
    assert errors == {"digits": pytest.approx(1.0 - measured["finetune"]["digits"]["accuracy"])}
    assert description.startswith("finetune")
    # Saved with what it depends on: the same settings reuse it, others measure again.
    monkeypatch.setattr(baselines, "finetune", lambda config, workdir: pytest.fail("measured twice"))
    assert reference.measured_baselines(config, workdir) == measured
    assert json.loads(workdir.baselines.read_text())["key"]["epochs"] == 2
    calls = []
    monkeypatch.setattr(baselines, "finetune", lambda config, workdir: calls.append(config) or measured["finetune"])
    reference.measured_baselines(_config(pocket_cache, epochs=3), workdir)
    assert len(calls) == 1


def test_without_baselines_a_reference_file_measures_nothing(tmp_path, monkeypatch):
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"digits": 0.25}))
    config = ExperimentConfig(domains=("digits",), baselines=False, reference_errors=str(refs)).resolve()
    for kind in ("finetune", "feature_extractor"):
        monkeypatch.setattr(baselines, kind, lambda config, workdir: pytest.fail("measured"))
    measured = reference.measured_baselines(config, Workdir(tmp_path / "run").create())
    assert measured == {"feature_extractor": None, "finetune": None}
    assert reference.reference_errors(config, measured) == ({"digits": 0.25}, f"file: {refs}")

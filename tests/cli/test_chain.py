"""The README's main job at tiny size: bap-train --stages=all (train, prune, export, eval) as a
subprocess, then the report that other tools read.

Two pocket domains, a random ResNet-26 of width 4 and two training steps: the numbers mean
nothing, the fields and files are what is checked. The fine-tuning distils the per-domain
baselines, so they are measured in the prune stage and read back by the report. About two
minutes on two cores.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BIN = Path(sys.executable).parent
DOMAIN_FIELDS = (
    "accuracy_masked", "accuracy_pruned", "accuracy_tflite", "accuracy_tflite_int8", "accuracy_tflm",
    "kept_fraction", "params", "macs", "tflite_int8_bytes", "tflm_arena_bytes",
)


def run(command, *args, baseline_cache=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if baseline_cache is not None:
        env["BAP_TF_BASELINE_CACHE"] = str(baseline_cache)
    return subprocess.run([str(BIN / command), *map(str, args)], capture_output=True, text=True, env=env, timeout=900)


def chain_flags(pocket_cache):
    return [
        f"--data_dir={pocket_cache}", "--domains=digits,letters", "--pretrained=none", "--width=4", "--budget=0.5",
        "--epochs=1", "--steps_per_epoch=2", "--batch_size=8", "--quantize=float32,int8", "--eval_examples=16",
        "--calibration_examples=16", "--seed=5", "--finetune_epochs=1", "--distill_weight=0.5",
    ]


@pytest.fixture(scope="module")
def chain(tmp_path_factory, pocket_cache):
    # Its own cross-run baseline cache (a module fixture starts before the per-test one), empty:
    # this run measures the baselines; a second run of the same command finds them there.
    workdir = tmp_path_factory.mktemp("chain") / "run"
    result = run("bap-train", f"--workdir={workdir}", *chain_flags(pocket_cache),
                 baseline_cache=workdir.parent / "baseline_cache")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, result


@pytest.mark.slow
def test_chain_writes_every_stage_output(chain):
    workdir, result = chain
    for relative in ("config.json", "flags.cfg", "model.keras", "history.json", "timings.json",
                     "pruned/union.keras", "pruned/digits.keras", "pruned/letters.keras", "pruned/costs.json",
                     "export/android_float32.tflite", "export/int8/digits.tflite", "export/int8/letters.tflite",
                     "export/manifest.json", "export/backbone/float32.tflite", "export/backbone/int8.tflite",
                     "baselines.json", "report.json", "report.md",
                     "plots/kept_channels.png", "plots/accuracy_vs_cost.png"):
        assert (workdir / relative).is_file(), relative
    assert any((workdir / "tensorboard").rglob("events.out.tfevents.*"))
    assert not list(workdir.rglob(".*.tmp*"))  # no temporary file left behind
    assert f"Outputs in {workdir}" in result.stdout and "report.md" in result.stdout
    assert set(json.loads((workdir / "timings.json").read_text())) == {"train", "prune", "export", "eval"}


@pytest.mark.slow
def test_chain_report_fields(chain):
    workdir, _ = chain
    report = json.loads((workdir / "report.json").read_text())
    assert report["budget"] == 0.5 and report["sharing_loss"] == "jaccard"
    for key in ("params", "macs"):
        assert report["backbone"][key] > 0 and report["pruned"][key] > 0
    assert report["pruned"]["macs"] < report["backbone"]["macs"]
    assert set(report["domains"]) == {"digits", "letters"}
    for name, domain in report["domains"].items():
        for field in DOMAIN_FIELDS:
            assert domain[field] is not None, (name, field)
        assert domain["kept_fraction"] <= 0.5 + 1e-6
        assert domain["macs"] < report["backbone"]["macs"]
        # The Android file (the default layout of a fine-tuned run: the union model, read whole by
        # every domain) gives its Keras source's logits up to float32 noise. That union model is
        # not the masked model's function (the domains read channels they did not train with,
        # then fine-tune), so their accuracies are not compared; the domains' own models are held
        # to the masked model in costs.json below.
        assert domain["tflite_vs_keras_max_abs_logit_diff"] < 1e-3
        assert 0.0 <= domain["accuracy_own"] <= 1.0 and 0.0 <= domain["accuracy_masked"] <= 1.0
    assert report["s_score"] >= 0 and report["efficiency"] >= 0
    assert report["s_score_reference"].startswith("finetune")  # the Decathlon convention
    for kind in ("feature_extractor", "finetune"):
        for name, entry in report["baselines"][kind].items():
            assert 0.0 <= entry["accuracy"] <= 1.0
            assert entry["params"] > report["backbone"]["params"] and entry["macs"] > report["backbone"]["macs"]
            assert entry["held_back"] is not None  # its settings chosen on the held-back data
            if kind == "finetune":
                assert report["domains"][name]["reference_error"] == pytest.approx(1.0 - entry["accuracy"])
    # The fine-tuning distilled these baselines, measured once for both (prune stage, then the report).
    finetune = json.loads((workdir / "pruned" / "finetune.json").read_text())
    assert finetune["settings"]["distill_weight"] == 0.5
    assert json.loads((workdir / "baselines.json").read_text())["finetune"] == report["baselines"]["finetune"]
    assert report["baselines"]["skipped"] is None
    assert report["mcu"]["fits"] is True
    # The firmware sources sit beside each int8 file; their arena is the one the report gives.
    manifest = json.loads((workdir / "export" / "manifest.json").read_text())
    android = manifest["android"]["float32"]
    # The default layout of a fine-tuned run: every domain reads the whole union (zero kernel rows
    # for what a conv drops), so each signature runs at least its own pruned model's MACs.
    assert android["layout"] == "shared_filters" and set(android["macs"]) == {"digits", "letters"}
    for name, macs in android["macs"].items():
        assert report["domains"][name]["macs"] <= macs < report["backbone"]["macs"]
    for name, entry in manifest["int8"].items():
        assert entry["arena_bytes"] == report["domains"][name]["tflm_arena_bytes"]
        assert sorted(Path(p).name for p in entry["firmware"].values()) == [
            f"{name}_model_data.cc", f"{name}_model_data.h", f"{name}_op_resolver.h"]
        assert all((workdir / p).is_file() for p in entry["firmware"].values())
    # The promise, measured against the unpruned backbone's files: the filters stored once, the
    # file holds fewer parameters than one backbone with both heads; signatures run fewer MACs.
    promise = report["promise"]
    assert promise["layout"] == "shared_filters" and manifest["backbone"]["domain"] == "digits"
    android = promise["android"]
    assert android["bytes"] == manifest["android"]["float32"]["bytes"]
    assert android["params"] < android["backbone_params"]
    assert set(android["signatures"]) == {"digits", "letters"}
    for entry in android["signatures"].values():
        assert entry["latency_ms"] > 0 and 0 < entry["macs_ratio"] < 1
        assert entry["latency_ratio"] == pytest.approx(entry["latency_ms"] / android["backbone_latency_ms"])
    assert promise["micro"]["bytes"] == sum(e["bytes"] for e in manifest["int8"].values())
    assert "the promise" in (workdir / "report.md").read_text()
    costs = json.loads((workdir / "pruned" / "costs.json").read_text())
    # The whole-union model computes another function than the masked one: only the domains' own
    # models are held to it.
    assert costs["max_abs_logit_diff"]["union"] == {} and max(costs["max_abs_logit_diff"]["domain"].values()) < 1e-3


@pytest.mark.slow
def test_chain_workdir_refuses_another_run(chain):
    workdir, _ = chain
    result = run("bap-eval", f"--workdir={workdir}", "--domains=digits,textures")
    assert result.returncode == 2
    assert "holds a run with domains=digits,letters, not digits,textures" in result.stderr


@pytest.mark.slow
def test_same_flags_and_seed_give_the_same_switches_and_pruned_models(chain, tmp_path, pocket_cache):
    import keras

    import bap_tf.model  # noqa: F401  (registers the classes load_model reads)

    workdir, _ = chain
    again = tmp_path / "again"
    # The same command again on the same machine, up to the pruned models (what training decides;
    # export and eval are functions of them): its baselines, the teachers, come from the cache
    # the first run filled, as a user's second run's do.
    result = run("bap-train", f"--workdir={again}", "--stages=train,prune", *chain_flags(pocket_cache),
                 baseline_cache=workdir.parent / "baseline_cache")
    assert result.returncode == 0, result.stderr[-4000:]
    for relative in ("pruned/costs.json", "pruned/finetune.json", "baselines.json"):
        first, second = (json.loads((w / relative).read_text()) for w in (workdir, again))
        assert second == first, relative
    switches = [
        [layer.switches.numpy() for layer in keras.saving.load_model(w / "model.keras", compile=False).switched]
        for w in (workdir, again)
    ]
    for a, b in zip(*switches, strict=True):
        np.testing.assert_array_equal(a, b)
    for name in ("union", "digits", "letters"):
        models = [keras.saving.load_model(w / "pruned" / f"{name}.keras", compile=False) for w in (workdir, again)]
        for a, b in zip(*(m.get_weights() for m in models), strict=True):
            np.testing.assert_array_equal(a, b)

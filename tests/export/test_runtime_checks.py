"""On-device checks: every runtime against Keras, as plain JSON-ready dicts."""

import json

import pytest

from bap_tf.export.mcu import check_mcu_budget, footprints_from_checks
from bap_tf.export.runtime_checks import check_domain, run_checks


@pytest.fixture(scope="module")
def results(union_models, eval_sets, android_float, micro_files):
    return run_checks(union_models, eval_sets, android_path=android_float, micro_paths=micro_files)


def test_checks_report_float_equivalence_with_keras(results, android_float, union_models):
    assert results["android"]["bytes"] == android_float.stat().st_size
    assert sorted(results["android"]["signatures"]) == sorted(union_models)
    for entry in results["domains"].values():
        assert entry["accuracy"]["keras"] == 1.0  # the labels are Keras' own predictions
        assert entry["accuracy"]["tflite_float"] >= 0.999
        assert entry["tflite_float_vs_keras"]["argmax_agreement"] >= 0.999
        assert entry["tflite_float_vs_keras"]["max_abs_logit_diff"] <= 1e-3


def test_checks_report_int8_agreement_sizes_and_arena(results, micro_files):
    for domain, entry in results["domains"].items():
        assert entry["tflm_vs_tflite_int8"]["argmax_agreement"] >= 0.99
        assert 0 <= entry["tflm_vs_tflite_int8"]["max_step_diff"] <= 3
        assert entry["accuracy"]["tflite_int8"] >= 0.8
        assert entry["tflite_int8_vs_keras"]["argmax_agreement"] == entry["accuracy"]["tflite_int8"]
        assert abs(entry["accuracy"]["tflm"] - entry["accuracy"]["tflite_int8"]) <= 0.01
        assert entry["micro_model_bytes"] == micro_files[domain].stat().st_size
        assert entry["arena_reported_bytes"] <= entry["arena_bytes"]
        assert entry["arena_bytes"] % 256 == 0


def test_checks_results_are_json_ready(results):
    assert json.loads(json.dumps(results)) == results
    print(json.dumps(results, indent=1))  # the measured figures, with pytest -s


def test_check_results_feed_the_mcu_budget(results):
    footprints = footprints_from_checks(results)
    assert set(footprints) == set(results["domains"])
    assert check_mcu_budget(256, 64, footprints)["fits"]
    assert not check_mcu_budget(256, 1, footprints)["fits"]


def test_check_domain_without_files_reports_keras_only(union_models, eval_sets):
    images, labels = eval_sets["cars"]
    entry = check_domain(union_models["cars"], images[:16], labels[:16])
    assert entry["num_images"] == 16 and entry["accuracy"]["keras"] == 1.0
    assert entry["accuracy"]["tflite_float"] is None and entry["arena_bytes"] is None


def test_checks_reject_missing_or_mismatched_eval_sets(union_models, eval_sets):
    with pytest.raises(ValueError, match=r"needs an eval set.*\['cars'\]"):
        run_checks(union_models, {"birds": eval_sets["birds"]})
    images, labels = eval_sets["birds"]
    with pytest.raises(ValueError, match="Received: 256 images, 10 labels"):
        check_domain(union_models["birds"], images, labels[:10])


def test_a_measured_arena_is_used_instead_of_a_new_search(results, union_models, eval_sets, micro_files):
    images, labels = eval_sets["cars"]
    measured = {"arena_bytes": results["domains"]["cars"]["arena_bytes"] + 1024, "reported_bytes": None}
    entry = check_domain(union_models["cars"], images[:16], labels[:16], micro_path=micro_files["cars"],
                         arena=measured)
    assert entry["arena_bytes"] == measured["arena_bytes"] and entry["arena_reported_bytes"] is None
    assert entry["tflm_vs_tflite_int8"]["argmax_agreement"] >= 0.9


def test_int8_files_are_compared_with_their_own_keras_source(union_models, eval_sets, micro_files):
    """The shared layout's Android file comes from the union models, the int8 files from each
    domain's own: ``micro_model`` is what the int8 file is held against."""
    import keras

    images, labels = eval_sets["cars"]
    source = union_models["cars"]
    negated = keras.Sequential([keras.Input(source.input_shape[1:]), source, keras.layers.Rescaling(-1.0)])
    entry = check_domain(source, images[:32], labels[:32], micro_path=micro_files["cars"], micro_model=negated)
    assert entry["accuracy"]["keras"] == 1.0  # the Android file's source: unchanged
    assert entry["tflite_int8_vs_keras"]["argmax_agreement"] < 0.5  # held against the negated model

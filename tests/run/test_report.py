"""The report: the fields other tools read, the Markdown page and the plots, written atomically."""

import json

import pytest

from bap_tf.config import ExperimentConfig
from bap_tf.run import report as report_lib

DOMAINS = ("digits", "letters")


def _cost(params, macs, mask_bits=0):
    return {"params": params, "macs": macs, "mask_bits": mask_bits, "params_with_masks": params + mask_bits / 32}


def _inputs(exported=True):
    config = ExperimentConfig(domains=DOMAINS, budget=0.5).resolve()
    costs = {
        "backbone": _cost(1000, 100_000),
        "union": _cost(700, 60_000, mask_bits=64),
        "union_per_domain": {"digits": _cost(500, 55_000, 32), "letters": _cost(520, 56_000, 32)},
        "union_ratio": {"params": 0.702, "macs": 0.6},
        "domains": {"digits": _cost(400, 45_000), "letters": _cost(450, 50_000)},
        "domain_ratio": {"digits": {"params": 0.4, "macs": 0.45}, "letters": {"params": 0.45, "macs": 0.5}},
    }
    device = {
        "num_images": 20,
        "accuracy": {"keras": 0.9, "tflite_float": 0.9, "tflite_int8": 0.85, "tflm": 0.85},
        "tflite_float_vs_keras": {"argmax_agreement": 1.0, "max_abs_logit_diff": 1e-5},
        "tflm_vs_tflite_int8": {"argmax_agreement": 1.0, "max_step_diff": 0},
        "micro_model_bytes": 40_000,
        "arena_bytes": 20_480,
    }
    checks = {"android": None, "domains": {d: device for d in DOMAINS} if exported else {}}
    manifest = {"android": {"float32": {"path": "export/android_float32.tflite", "bytes": 150_000}} if exported else {},
                "int8": {}, "qat": {}}
    mcu = {"flash_kb": 1024.0, "ram_kb": 256.0, "fits": True, "domains": {
        d: {"model_kb": 39.1, "arena_kb": 20.0, "flash_margin_kb": 984.9, "ram_margin_kb": 236.0,
            "fits_flash": True, "fits_ram": True, "fits": True} for d in DOMAINS}} if exported else None
    return dict(
        config=config, costs=costs,
        accuracy={"masked": {"digits": 0.9, "letters": 0.7}, "pruned": {"digits": 0.9, "letters": 0.7},
                  "own": {"digits": 0.95, "letters": 0.75}},
        num_test={"digits": 450, "letters": 520}, checks=checks, extra_accuracy={}, manifest=manifest, mcu=mcu,
        kept_fractions={"digits": 0.49, "letters": 0.5}, union_fraction=0.62,
        layers=[{"name": f"stage1_block1_{i}_conv", "in_channels": 8, "kept": {"digits": 4, "letters": 3}, "union": 6}
                for i in (1, 2)],
        reference_errors={"digits": 0.2, "letters": 0.4}, reference="file: refs.json",
        history={"epochs": 2, "model_epochs": 2, "epoch_seconds": [3.0, 2.0],
                 "logs": {"loss": [2.0, 1.0], "union": [0.9, 0.6]}},
        timings={"train": 5.0},
    )


def test_report_fields_and_scores():
    report = report_lib.build_report(**_inputs())
    assert report["budget"] == 0.5 and report["sharing_loss"] == "jaccard"
    assert report["backbone"] == {"params": 1000, "macs": 100_000}
    assert report["pruned"]["params"] == 702 and report["pruned"]["macs"] == 60_000
    assert report["pruned"]["macs"] < report["backbone"]["macs"]
    digits = report["domains"]["digits"]
    for key in ("accuracy_masked", "accuracy_pruned", "accuracy_tflite", "accuracy_tflite_int8", "accuracy_tflm",
                "kept_fraction", "params", "macs", "tflite_int8_bytes", "tflm_arena_bytes"):
        assert digits[key] is not None, key
    assert (digits["params"], digits["macs"], digits["tflm_arena_bytes"]) == (400, 45_000, 20_480)
    assert digits["accuracy_own"] == 0.95
    # digits: error 0.1 vs reference 0.2 -> 562.5; letters: 0.3 vs 0.4 -> 1000 * (0.5 / 0.8)**2 = 390.625
    assert digits["s_score"] == pytest.approx(562.5)
    assert report["s_score"] == pytest.approx(562.5 + 390.625)
    assert report["s_score_reference"] == "file: refs.json"
    assert report["efficiency"] == pytest.approx(report["s_score"] / (0.702 * 0.6) ** 0.5)
    assert report["training"]["epochs"] == 2 and report["training"]["last_epoch"]["union"] == 0.6


def test_write_report_files_are_complete_and_atomic(tmp_path):
    report = report_lib.build_report(**_inputs())
    paths = report_lib.write_report(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["s_score"] == pytest.approx(report["s_score"])
    markdown = (tmp_path / "report.md").read_text()
    assert "S-score: 953" in markdown and "file: refs.json" in markdown and "every domain fits" in markdown
    # Each domain's own model (what the int8 files and the default Android layout hold): mean 0.85,
    # params of both domains, MACs from the smallest to the largest.
    assert ("| this run, each domain's own pruned model (Keras) | 0.950 | 0.750 | 0.850 | 850 (all domains) "
            "| 45.00k–50.00k |") in markdown
    for name in ("kept_channels", "accuracy_vs_cost"):
        assert open(paths[name], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_report_without_export_leaves_device_fields_null(tmp_path):
    report = report_lib.build_report(**_inputs(exported=False))
    letters = report["domains"]["letters"]
    assert letters["accuracy_tflite"] is None and letters["accuracy_tflm"] is None
    assert letters["tflite_int8_bytes"] is None
    assert report["mcu"] is None
    report_lib.write_report(report, tmp_path)
    assert "Nothing was exported" in (tmp_path / "report.md").read_text()


def test_baselines_section_and_table():
    baselines = {
        "feature_extractor": {"digits": {"accuracy": 0.8, "params": 1100, "macs": 100_100},
                              "letters": {"accuracy": 0.5, "params": 1200, "macs": 100_100}},
        "finetune": {"digits": {"accuracy": 0.95, "params": 1100, "macs": 100_100, "epoch": 2, "held_back": 0.9,
                                "settings": {"learning_rate": 0.002, "augment": False}},
                     "letters": {"accuracy": 0.85, "params": 1200, "macs": 100_100, "epoch": 1, "held_back": 0.8,
                                 "settings": {"learning_rate": 0.001, "augment": True}}},
    }
    report = report_lib.build_report(**_inputs(), baselines=baselines)
    assert report["baselines"]["finetune"]["letters"]["accuracy"] == 0.85 and report["baselines"]["skipped"] is None
    page = report_lib.markdown(report)
    assert ("| per-domain fine-tuning (whole backbone, one per domain) | 0.950 | 0.850 | 0.900 "
            "| 2.30k (all domains) |") in page
    assert "| this run, union-pruned (Keras) | 0.900 | 0.700 | 0.800 |" in page
    assert ("Settings each baseline chose on the held-back data: per-domain fine-tuning: `digits` Adam 0.002, "
            "augmentation off; `letters` Adam 0.001, augmentation on." in page)
    skipped = report_lib.build_report(**_inputs(), baselines={"feature_extractor": baselines["feature_extractor"]})
    assert skipped["baselines"]["finetune"] is None
    assert "Not measured: per-domain fine-tuning: not measured (--nobaselines)." in report_lib.markdown(skipped)

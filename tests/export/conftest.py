"""Shared exports for the export tests: each conversion (a child process, ~10 s) runs once."""

import sys
from pathlib import Path

import pytest

# tiny_models sits beside this file; make it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent))

import tiny_models  # noqa: E402
from bap_tf.export import convert  # noqa: E402

EVAL_IMAGES = 256
TRAIN_IMAGES = 96


@pytest.fixture(scope="session")
def union_models():
    return tiny_models.build_union_models()


@pytest.fixture(scope="session")
def train_images():
    return {
        domain: tiny_models.make_images(TRAIN_IMAGES, seed=100 + index)
        for index, domain in enumerate(tiny_models.DOMAINS)
    }


@pytest.fixture(scope="session")
def eval_sets(union_models):
    sets = {}
    for index, (domain, model) in enumerate(union_models.items()):
        images = tiny_models.make_images(EVAL_IMAGES, seed=200 + index)
        sets[domain] = (images, tiny_models.labels_from(model, images))
    return sets


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="session")
def android_float(union_models, export_dir):
    return convert.export_android(union_models, export_dir / "android_float32.tflite")


@pytest.fixture(scope="session")
def android_dynamic(union_models, export_dir):
    return convert.export_android(
        union_models, export_dir / "android_dynamic.tflite", variant="dynamic"
    )


@pytest.fixture(scope="session")
def per_domain_float(union_models, export_dir):
    return {
        domain: convert.export_android({domain: model}, export_dir / f"{domain}_float32.tflite")
        for domain, model in union_models.items()
    }


@pytest.fixture(scope="session")
def micro_files(union_models, train_images, export_dir):
    return {
        domain: convert.export_micro(model, export_dir / f"{domain}_int8.tflite", train_images[domain])
        for domain, model in union_models.items()
    }

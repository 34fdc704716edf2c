"""--dataset wiring: each dataset name reaches its loader in bap_tf.data, with the config's settings."""

import json
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from bap_tf.config import ExperimentConfig
from bap_tf.data import train_dataset
from bap_tf.run import sources


@pytest.fixture
def mocked_tfds():
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def test_decathlon_reaches_load_decathlon(mocked_tfds, monkeypatch):
    from bap_tf.data import tfds_loaders

    calls = []
    real = tfds_loaders.load_decathlon

    def spy(domain, split, **kwargs):
        calls.append((domain, split, kwargs))
        return real(domain, split, **kwargs)

    monkeypatch.setattr(sources, "load_decathlon", spy)
    config = ExperimentConfig(dataset="decathlon", domains=("dtd", "svhn"), image_size=16, data_dir="/data",
                              manual_dir="/manual").resolve()
    train = sources.domain_sources(config, "train")
    test = sources.domain_sources(config, "test")
    assert [(s.name, s.num_classes, s.flip) for s in train] == [("dtd", 47, True), ("svhn", 10, False)]
    assert [c[:2] for c in calls] == [("dtd", "train"), ("svhn", "train"),
                                      ("dtd", "validation"), ("svhn", "validation")]
    assert calls[0][2] == {"image_size": 16, "data_dir": "/data", "manual_dir": "/manual"}
    x, y = next(iter(train_dataset(train, batch_size=2, image_size=16)))
    assert x["image"].shape == (4, 16, 16, 3) and list(x["domain"].numpy()) == [0, 1, 0, 1]
    images, labels = sources.labelled_images(test[1], 16)
    assert images.shape == (6, 16, 16, 3) and labels.shape == (6,) and labels.max() < 10


def _tree(root, domains):
    rng = np.random.default_rng(0)
    for domain, classes in domains.items():
        for split in ("train", "test"):
            for name in classes:
                folder = root / domain / split / name
                folder.mkdir(parents=True)
                for i in range(2):
                    Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_folders_dataset_reads_train_and_test_trees(tmp_path):
    _tree(tmp_path, {"cats_dogs": ["cat", "dog"], "shapes": ["circle", "square", "star"]})
    # The test split of a domain may lack a class: labels still follow the train folder.
    for path in (tmp_path / "shapes" / "test" / "circle").iterdir():
        path.unlink()
    (tmp_path / "shapes" / "test" / "circle").rmdir()
    config = ExperimentConfig(dataset="folders", folders_root=str(tmp_path), image_size=8).resolve()
    assert config.domains == ("cats_dogs", "shapes")
    train = sources.domain_sources(config, "train")
    assert [(s.name, s.num_classes) for s in train] == [("cats_dogs", 2), ("shapes", 3)]
    images, labels = sources.labelled_images(sources.domain_sources(config, "test")[1], 8)
    assert images.shape == (4, 8, 8, 3) and sorted(labels.tolist()) == [1, 1, 2, 2]


def test_imagenet_sketch_mixes_tfds_and_folder_domains(mocked_tfds, tmp_path):
    _tree(tmp_path, {"sketch": ["airplane", "bicycle"]})
    config = ExperimentConfig(dataset="imagenet_sketch", domains=("cubs", "sketch"), folders_root=str(tmp_path),
                              image_size=16).resolve()
    train = sources.domain_sources(config, "train")
    assert [(s.name, s.num_classes, s.flip) for s in train] == [("cubs", 200, True), ("sketch", 2, False)]


def test_pocket_sources_use_the_cache_dir(tmp_path):
    config = ExperimentConfig(domains=("digits",), data_dir=str(tmp_path)).resolve()
    (digits,) = sources.domain_sources(config, "test")
    assert digits.num_classes == 10 and int(digits.dataset.cardinality()) == 450
    assert any(p.name.startswith("pocket-digits") for p in tmp_path.iterdir())
    images, labels = sources.sample_images(digits, 32, limit=40, seed=1)
    assert images.shape == (40, 32, 32, 3) and len(set(labels.tolist())) > 5


def test_unsplit_folder_domain_is_split_once_and_recorded_in_the_workdir(tmp_path):
    from bap_tf.run.workdir import Workdir

    for name in ("cat", "dog"):
        (tmp_path / "data" / "pets" / name).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "data" / "pets" / name / f"{i}.png")
    config = ExperimentConfig(dataset="folders", folders_root=str(tmp_path / "data"), image_size=8,
                              test_fraction=0.4, seed=2, validation_fraction=0).resolve()
    workdir = Workdir(tmp_path / "run")
    (test,) = sources.domain_sources(config, "test", workdir)
    record = json.loads(workdir.split("pets").read_text())
    assert test.num_classes == 2 and int(test.dataset.cardinality()) == len(record["test"]) == 4
    assert record["test_fraction"] == 0.4 and record["seed"] == 2
    # Images added later do not move the recorded split: a rerun reads the same files.
    Image.new("RGB", (8, 8)).save(tmp_path / "data" / "pets" / "cat" / "new.png")
    (train,) = sources.domain_sources(config, "train", workdir)
    assert int(train.dataset.cardinality()) == len(record["train"]) == 6
    assert json.loads(workdir.split("pets").read_text()) == record


def test_folder_domains_are_checked_once_then_read_from_their_records(tmp_path, monkeypatch):
    from bap_tf.data import folders
    from bap_tf.run.workdir import Workdir

    _tree(tmp_path / "data", {"cats_dogs": ["cat", "dog"]})
    config = ExperimentConfig(dataset="folders", folders_root=str(tmp_path / "data"), image_size=8,
                              validation_fraction=0).resolve()
    workdir = Workdir(tmp_path / "run")
    records = sources.new_split_records(config, workdir)
    assert records["cats_dogs"] == {
        "class_names": ["cat", "dog"],
        "train": ["train/cat/0.png", "train/cat/1.png", "train/dog/0.png", "train/dog/1.png"],
        "test": ["test/cat/0.png", "test/cat/1.png", "test/dog/0.png", "test/dog/1.png"],
    }
    workdir.create().write_splits(records)
    assert sources.new_split_records(config, workdir) == {}
    # Later stages and reruns read the record: no image is decoded again.
    monkeypatch.setattr(folders, "check_decodes", lambda paths: pytest.fail("decoded again"))
    (train,) = sources.domain_sources(config, "train", workdir)
    assert train.num_classes == 2 and int(train.dataset.cardinality()) == 4


def test_a_folder_domain_of_one_class_is_refused_naming_it(tmp_path):
    _tree(tmp_path, {"cats_dogs": ["cat", "dog"], "cats": ["cat"]})
    config = ExperimentConfig(dataset="folders", folders_root=str(tmp_path), image_size=8).resolve()
    with pytest.raises(ValueError, match=r"Domain 'cats' has 1 class \(\['cat'\]\)\. Expected at least 2 classes.*"
                                         r"Received: " + re.escape(str(tmp_path / "cats"))):
        sources.domain_sources(config, "train")

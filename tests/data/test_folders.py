"""The folder loader on small temporary trees of real PNG and JPEG files."""

import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from bap_tf.data import folders

COLOURS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "emu": (0, 0, 255)}


def _write(path, colour, size=(12, 8), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "train"
    for name, colour in COLOURS.items():
        for i in range(2):
            _write(root / name / f"{i}.png", colour)
    _write(root / "emu" / "2.JPG", COLOURS["emu"])
    _write(root / "dog" / "grey.png", 128, mode="L")
    (root / "dog" / ".DS_Store").write_bytes(b"\x00")
    (root / "README.txt").write_text("files directly under root are ignored")
    return root


def test_classes_sorted_and_images_labelled(tree):
    dataset, class_names = folders.load_folder(tree, image_size=8)
    assert class_names == ["cat", "dog", "emu"]
    assert dataset.element_spec[0].shape == (8, 8, 3)
    assert dataset.element_spec[1].dtype == tf.int32
    examples = list(dataset.as_numpy_iterator())
    assert [label for _, label in examples] == [0, 0, 1, 1, 1, 2, 2, 2]
    for image, label in examples:
        assert image.dtype == np.float32 and image.shape == (8, 8, 3)
        expected = np.array(COLOURS[class_names[label]]) / 255.0
        grey = np.allclose(image, 128 / 255, atol=1e-6)
        assert grey or np.allclose(image.mean(axis=(0, 1)), expected, atol=0.02)


def test_test_folder_reuses_the_train_label_space(tree, tmp_path):
    _write(tmp_path / "test" / "emu" / "0.png", COLOURS["emu"])
    _, class_names = folders.load_folder(tree, image_size=8)
    dataset, names = folders.load_folder(tmp_path / "test", image_size=8, class_names=class_names)
    assert names == class_names
    assert [label for _, label in dataset.as_numpy_iterator()] == [2]
    with pytest.raises(ValueError, match=r"label space lacks.*Received: \['emu'\]"):
        folders.load_folder(tmp_path / "test", image_size=8, class_names=["cat"])


def test_missing_or_empty_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        folders.load_folder(tmp_path / "absent", image_size=8)
    with pytest.raises(ValueError, match=re.escape(f"Folder {tmp_path} has no class sub-folders")):
        folders.load_folder(tmp_path, image_size=8)
    (tmp_path / "cat").mkdir()
    with pytest.raises(ValueError, match=re.escape(f"Class folder {tmp_path / 'cat'} is empty")):
        folders.load_folder(tmp_path, image_size=8)


def test_non_image_files_are_named(tree):
    notes = tree / "cat" / "notes.txt"
    notes.write_text("not an image")
    message = "Expected only image files.*Received: " + re.escape(str(notes))
    with pytest.raises(ValueError, match=message):
        folders.load_folder(tree, image_size=8)
    notes.unlink()
    fake = tree / "cat" / "fake.png"
    fake.write_bytes(b"GIF89a not a png")
    with pytest.raises(ValueError, match="not a valid PNG image.*in " + re.escape(str(fake))):
        folders.load_folder(tree, image_size=8)


@pytest.mark.parametrize("body", [b"truncated", b"garbage"])
def test_images_that_do_not_decode_are_named_when_the_folder_is_read(tree, body):
    broken = tree / "dog" / "broken.png"
    whole = (tree / "dog" / "0.png").read_bytes()
    broken.write_bytes(whole[: len(whole) // 2] if body == b"truncated" else whole[:8] + body * 20)
    with pytest.raises(ValueError, match=r"Image file cannot be decoded.*Expected a complete PNG or JPEG image\. "
                                         r"Received: " + re.escape(str(broken))):
        folders.load_folder(tree, image_size=8)  # before tf.data meets it in training


# -- A domain folder without train/test: the seeded, class-stratified split. -----------------------

@pytest.fixture
def unsplit(tmp_path):
    """<domain>/<class>/*: 10 cats, 5 dogs, 2 emus."""
    for name, count in (("cat", 10), ("dog", 5), ("emu", 2)):
        for i in range(count):
            _write(tmp_path / "pets" / name / f"{i:02d}.png", COLOURS[name])
    return tmp_path / "pets"


def test_split_is_stratified_seeded_and_complete(unsplit):
    record = folders.split_folder(unsplit, test_fraction=0.2, seed=3)
    assert not folders.has_split(unsplit)
    assert record["class_names"] == ["cat", "dog", "emu"]
    test_counts = {name: sum(f.startswith(name + "/") for f in record["test"]) for name in record["class_names"]}
    # round(n * 0.2), at least one on each side: every class is in both splits.
    assert test_counts == {"cat": 2, "dog": 1, "emu": 1}
    every = sorted(str(p.relative_to(unsplit)) for p in unsplit.rglob("*.png"))
    assert sorted(record["train"] + record["test"]) == every and not set(record["train"]) & set(record["test"])
    assert folders.split_folder(unsplit, test_fraction=0.2, seed=3) == record
    assert folders.split_folder(unsplit, test_fraction=0.2, seed=4)["test"] != record["test"]

    dataset, names = folders.load_split(unsplit, record, "test", image_size=8)
    examples = list(dataset.as_numpy_iterator())
    assert names == record["class_names"] and [label for _, label in examples] == [0, 0, 1, 2]
    for image, label in examples:
        assert np.allclose(image.mean(axis=(0, 1)), np.array(COLOURS[names[label]]) / 255.0, atol=0.02)
    train, _ = folders.load_split(unsplit, record, "train", image_size=8)
    assert int(train.cardinality()) == 13


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, True, "0.2"])
def test_split_rejects_a_test_fraction_outside_0_1(unsplit, fraction):
    with pytest.raises(ValueError, match=re.escape(f"fraction in (0, 1). Received: test_fraction={fraction!r}")):
        folders.split_folder(unsplit, test_fraction=fraction)


def test_split_names_a_class_too_small_and_a_file_gone(unsplit):
    record = folders.split_folder(unsplit)
    (unsplit / record["test"][0]).unlink()
    with pytest.raises(FileNotFoundError,
                       match="lists a file that is gone.*Received: missing " + re.escape(str(unsplit))):
        folders.load_split(unsplit, record, "test", image_size=8)
    for path in (unsplit / "emu").iterdir():
        path.unlink()
    _write(unsplit / "emu" / "only.png", COLOURS["emu"])
    with pytest.raises(ValueError, match=re.escape(f"Class folder {unsplit / 'emu'} has too few images to split")
                       + r".*Received: 1 image"):
        folders.split_folder(unsplit)

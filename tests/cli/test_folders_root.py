"""A relative --folders_root: saved as typed, and a later command's folders_root compared with
the folder it named where it was typed (the directory of that command), not where the later
command runs."""

import json

import pytest

from bap_tf.run.workdir import Workdir, WorkdirError, config_for_workdir


@pytest.fixture
def places(tmp_path, monkeypatch):
    """``a/`` and ``b/``, each with ``data/d1`` and ``data/d2``; a run on ``a/data`` typed as
    ``data`` in ``a/``, its workdir ``a/run``; the command now runs in ``b/``."""
    for place in ("a", "b"):
        for domain in ("d1", "d2"):
            (tmp_path / place / "data" / domain).mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    workdir = Workdir(tmp_path / "a" / "run").create()
    config = config_for_workdir(None, {"dataset": "folders", "folders_root": "data", "domains": ("d1", "d2")}, "run")
    workdir.write_config(config)
    monkeypatch.chdir(tmp_path / "b")
    return tmp_path, workdir


def test_a_relative_folders_root_is_saved_as_typed_and_recognized_from_its_directory(places, monkeypatch):
    tmp_path, workdir = places
    assert json.loads(workdir.config.read_text())["folders_root"] == "data"
    monkeypatch.chdir(tmp_path / "a")
    for typed in ("data", "./data/"):
        assert config_for_workdir(workdir.saved_config(), {"folders_root": typed}, "run").folders_root == typed
    assert config_for_workdir(workdir.saved_config(), {}, "run").folders_root == "data"


def test_the_same_folder_named_from_elsewhere_is_the_same_run(places):
    tmp_path, workdir = places
    for typed in (str(tmp_path / "a" / "data"), "../a/data"):
        assert config_for_workdir(workdir.saved_config(), {"folders_root": typed}, workdir.root).folders_root == typed


@pytest.mark.parametrize("explicit", [{}, {"folders_root": "data"}], ids=["saved", "typed_again"])
def test_the_same_relative_path_from_elsewhere_names_another_folder_and_is_refused(places, explicit):
    # From b/, "data" is b/data: the trained model would meet other images.
    tmp_path, workdir = places
    with pytest.raises(WorkdirError, match=rf"holds a run with folders_root='data' \(= {tmp_path}/a/data\), "
                                           rf"not 'data' \(= {tmp_path}/b/data\)"):
        config_for_workdir(workdir.saved_config(), explicit, workdir.root)

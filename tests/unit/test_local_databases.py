"""The emulated Snowflake's folders on disk (tools/): one per model version, held by one process at a time."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tools.commands.score import DB_ROOT, default_db_path
from tools.emulated.local_stack import DatabaseInUseError, hold_database

ROOT = Path(__file__).resolve().parents[2]


def _model(tmp_path: Path, name: str, version: str) -> Path:
    model = tmp_path / name
    shutil.copytree(ROOT / "model", model, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    metadata = json.loads((model / "metadata.json").read_text())
    (model / "metadata.json").write_text(json.dumps({**metadata, "model_version": version}))
    return model


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("bc-mlp-1.0.0+aaa", "bc-mlp-1.0.0+aaa", True),
        ("bc-mlp-1.0.0+aaa", "bc-mlp-1.0.0+bbb", False),
        ("my model/2", "my model/3", False),
    ],
    ids=["same-version-same-folder", "new-import-new-folder", "odd-characters-stay-apart"],
)
def test_each_model_version_has_its_own_emulated_snowflake(tmp_path: Path, first: str, second: str, same: bool) -> None:
    # Given two model folders (as make import-model writes them) with these versions
    a, b = _model(tmp_path, "a", first), _model(tmp_path, "b", second)
    # When the tools pick the emulated Snowflake for each
    path_a, path_b = default_db_path(a), default_db_path(b)
    # Then a model's folder is under .local/snowflake/, its own unless the version is the same, and one folder deep
    assert (path_a == path_b) is same
    assert path_a.parent == DB_ROOT and path_b.parent == DB_ROOT


def test_the_served_model_follows_model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given MODEL_DIR pointing at another model (make demo MODEL_DIR=...)
    monkeypatch.setenv("MODEL_DIR", str(_model(tmp_path, "new", "bc-new-2.0.0")))
    # When the default folder is picked / Then it is that model's
    assert default_db_path() == DB_ROOT / "bc-new-2.0.0"
    monkeypatch.delenv("MODEL_DIR")
    assert default_db_path() != DB_ROOT / "bc-new-2.0.0"


def test_a_second_holder_of_a_folder_is_refused_at_once_naming_the_first(tmp_path: Path) -> None:
    # Given a process serving an emulated Snowflake folder (make local-stack)
    with hold_database(tmp_path / "db", owner="make local-stack"):
        # When another stack is started on the same folder
        with pytest.raises(DatabaseInUseError) as refused, hold_database(tmp_path / "db"):
            pass
        # Then it is refused in one line naming the process that holds it
        message = str(refused.value)
        assert f"process {os.getpid()} (make local-stack)" in message
        assert str(tmp_path / "db") in message and "\n" not in message
        # and another folder is free
        with hold_database(tmp_path / "other"):
            pass
    # When the first one stops / Then the folder can be held again
    with hold_database(tmp_path / "db"):
        pass

"""A user's own SavedModel, end to end: `make import-model`'s command (for the article's model run as its own
process, exactly the recipe's command line) into a directory, then the handler on the local stack (moto +
fakesnow) with MODEL_DIR pointing at it, scoring the sample export. Every flavour's labels are checked against the
model's own known answers; the article's TF1 model against scikit-learn's truth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.model import saved_models
from tests.model.saved_models import GOOD, Built
from tools.commands import import_model

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
IMPORT_TIMEOUT_S = 300
MIN_ARTICLE_AGREEMENT = 0.97  # the bar for the TF1 model imported with fit_csv and probability_of benign
KNOWN_ANSWER_TOLERANCE = 1e-4
IMPORT_STDERR: dict[str, str] = {}  # what the import command printed on stderr, by flavour (run in its own process)


def _arguments(saved_model: Path, config: Path, out: Path) -> list[str]:
    return ["--saved-model", str(saved_model), "--config", str(config), "--out", str(out)]


def import_command(saved_model: Path, config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """What `make import-model SAVED_MODEL=... CONFIG=... OUT=...` runs (tests/model checks the recipe)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "tools.commands.import_model", *_arguments(saved_model, config, out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Built, Path]]:
    """Each flavour's SavedModel imported into a directory of its own (once per module): the article's model by the
    import command in its own process, the others through the same command's ``main`` in this process (TensorFlow
    is already imported here, so this saves ~10 s of CPU a flavour)."""
    done: dict[str, tuple[Built, Path]] = {}

    def get(name: str) -> tuple[Built, Path]:
        if name not in done:
            built = saved_models.build(name, tmp_path_factory)
            work = tmp_path_factory.mktemp(f"served_{name}")
            if name == "tf1_article":
                proc = import_command(built.path, built.write_config(work), work / "model")
                assert proc.returncode == 0, proc.stderr[-2000:]
                IMPORT_STDERR[name] = proc.stderr
            else:
                assert import_model.main(_arguments(built.path, built.write_config(work), work / "model")) == 0
            done[name] = (built, work / "model")
        return done[name]

    return get


@pytest.mark.parametrize("name", GOOD)
def test_imported_model_scores_the_sample_through_the_handler(
    name: str, harness: Any, sample_bytes: bytes, imported: Callable[[str], tuple[Built, Path]]
) -> None:
    # Given a SavedModel of this flavour imported by the import command into its own directory
    built, model_dir = imported(name)
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    # When the sample export (all 30 measurement columns, whatever the model reads) is uploaded and the S3 event
    # is delivered to the handler, with MODEL_DIR set to that directory
    summary = harness.invoke(harness.put(f"incoming/{name}.csv", sample_bytes), MODEL_DIR=str(model_dir))
    # Then every row loads, scored by that model: its version on every row, its labels the model's own answers
    assert summary["objects"][0]["status"] == "loaded", summary
    assert summary["rows_loaded"] == 569 and summary["rows_rejected"] == 0
    rows = harness.query(
        "SELECT SAMPLE_ID, MALIGNANT_PROBABILITY, CLASSIFICATION, CONDITION, MODEL_VERSION FROM {target} "
        "ORDER BY SOURCE_LINE"
    )
    assert [r[0] for r in rows] == [f"WDBC-{i:04d}" for i in range(1, 570)]
    assert {r[4] for r in rows} == {metadata["model_version"]}
    probability = np.array([r[1] for r in rows], dtype=np.float64)
    classification = np.array([r[2] for r in rows], dtype=np.int8)
    assert built.malignant_probability is not None
    assert float(np.max(np.abs(probability - built.malignant_probability))) <= KNOWN_ANSWER_TOLERANCE
    clear = np.abs(built.malignant_probability - 0.5) > KNOWN_ANSWER_TOLERANCE
    np.testing.assert_array_equal(classification[clear], built.malignant_probability[clear] >= 0.5)
    np.testing.assert_array_equal(classification, probability >= 0.5)
    assert [r[3] for r in rows] == ["malignant" if c == 1 else "benign" for c in classification]
    # and the model's feature columns are the FLOAT columns, in its order
    columns = harness.query(
        "SELECT COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = '{target}' "
        "ORDER BY ORDINAL_POSITION"
    )
    floats = [c[0] for c in columns if c[1].upper() in {"FLOAT", "DOUBLE", "REAL"} and c[0] != "MALIGNANT_PROBABILITY"]
    assert floats == [f["column"] for f in metadata["features"]]


def test_article_model_agrees_with_scikit_learn_through_the_handler(
    harness: Any, sample_bytes: bytes, imported: Callable[[str], tuple[Built, Path]]
) -> None:
    # Given the article's TF1 model (unscaled inputs, P(benign)) imported with standardize.fit_csv on the sample
    # CSV and probability_of "benign"
    built, model_dir = imported("tf1_article")
    assert built.config["standardize"] == {"fit_csv": str(saved_models.SAMPLE_CSV)}
    assert built.config["probability_of"] == "benign"
    # When the sample export goes through the handler
    harness.invoke(harness.put("incoming/article.csv", sample_bytes), MODEL_DIR=str(model_dir))
    # Then CONDITION agrees with scikit-learn's truth on at least 97 % of the 569 rows
    rows = harness.query("SELECT CONDITION FROM {target} ORDER BY SOURCE_LINE")
    truth = np.where(saved_models.data().malignant == 1, "malignant", "benign")
    agreement = float(np.mean(np.array([r[0] for r in rows]) == truth))
    assert len(rows) == 569
    assert agreement >= MIN_ARTICLE_AGREEMENT, agreement


def test_a_tf1_import_prints_no_tensorflow_chatter(imported: Callable[[str], tuple[Built, Path]]) -> None:
    # Given the article's TF1 SavedModel (reference variables: TensorFlow warns about each one at every load)
    # When `make import-model` imports it, in a process of its own
    imported("tf1_article")
    stderr = IMPORT_STDERR["tf1_article"]
    # Then nothing of TensorFlow's or LiteRT's own logging reaches the user: no warning lines, no delegate line
    assert "WARNING:tensorflow" not in stderr, stderr[:2000]
    assert "XNNPACK" not in stderr, stderr[:2000]


def _readme_article_config() -> dict[str, Any]:
    """The worked example's `article.json`, as README.md prints it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("The config that serves it right (`article.json`):", 1)[1]
    return dict(json.loads(block.split("```json", 1)[1].split("```", 1)[0]))


def test_the_readmes_worked_example_runs_as_written(
    imported: Callable[[str], tuple[Built, Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the article's TF1 SavedModel and README's config for it, with its relative paths (the labelled sample
    # among them), in the repository root as `make import-model` runs it
    built, _ = imported("tf1_article")
    config = tmp_path / "article.json"
    config.write_text(json.dumps(_readme_article_config()))
    monkeypatch.chdir(ROOT)
    # When it is imported as README says
    status = import_model.main(_arguments(built.path, config, tmp_path / "article_model"))
    # Then it imports, judged on the labelled rows: accuracy and ROC AUC measured on all 569, nothing wrong
    out = capsys.readouterr().out
    assert status == 0, out
    performance = json.loads(out[out.index("{") :])["performance"]
    assert performance["problems"] == []
    assert performance["rows"] == 569
    assert performance["accuracy"] > performance["majority_class_share"]
    assert performance["roc_auc"] > 0.5

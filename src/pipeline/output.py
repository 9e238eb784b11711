"""The output tables' shape: scores -> columns (Expression Evaluator, Field Renamer, Field Remover) + lineage,
and the rejects table's.

Where a row's output is built: ``OutputLayout.frame``; a reject's: ``rejects_frame``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.challenger import CHALLENGER_COLUMNS
from pipeline.csv_reader import TextChunk
from pipeline.errors import ConfigurationError, UnusableFileError
from pipeline.features import ConvertedFeatures, RowProblem
from pipeline.markers import MISSING_VALUE_MARKERS
from pipeline.ports import FLAG_COLUMN, REJECT_COLUMNS
from pipeline.settings import IDENTIFIER, LoadMode, Settings
from scoring import ModelMetadata, Scores

FLOAT = "FLOAT"
TEXT = "VARCHAR"
# Columns every output row carries, after the features and kept extra columns; with their Snowflake types.
SCORE_COLUMNS: dict[str, str] = {
    "CLASSIFICATION": "NUMBER(1,0)",
    "CONDITION": "VARCHAR(16)",
    "MALIGNANT_PROBABILITY": FLOAT,
    FLAG_COLUMN: TEXT,  # the output columns whose value lies far beyond the training range (pipeline.plausibility)
}
LINEAGE_COLUMNS: dict[str, str] = {
    "SOURCE_BUCKET": "VARCHAR(255)",
    "SOURCE_KEY": "VARCHAR(2048)",
    "SOURCE_VERSION": "VARCHAR(1024)",
    # The version's place among the versions of its S3 key (pipeline.ports.SourceOrder): upsert mode
    # compares them so that an older version's late event never overwrites a newer version's rows.
    "SOURCE_SEQUENCER": "VARCHAR(64)",
    "SOURCE_LAST_MODIFIED": "TIMESTAMP_TZ",
    "SOURCE_LINE": "NUMBER(19,0)",
    "MODEL_VERSION": "VARCHAR(128)",
    "LOAD_ID": "VARCHAR(36)",
}
LOADED_AT = ("LOADED_AT", "TIMESTAMP_TZ")  # set by Snowflake at publish time, in the same transaction
# Internal to the staging tables (adapters/snowflake/staging.py: UPSERT_NOTE in upsert mode, OBJECT_NO in every
# batch); no output column may take them.
STAGING_ONLY_COLUMNS = frozenset({"UPSERT_SKIP_", "OBJECT_NO_"})

# Snowflake's reserved and limited keywords (https://docs.snowflake.com/en/sql-reference/reserved-keywords) that
# this function refuses as column names: those reserved by ANSI or by Snowflake, those that "cannot be used as a
# column name" or "as column reference in a scalar expression", and, to be safe, those limited "as table name or
# alias in a FROM clause" (CROSS, FULL, INNER, JOIN, LATERAL, LEFT, NATURAL, RIGHT, SAMPLE, TABLESAMPLE; DuckDB
# refuses them as columns, and a refused CREATE would now be retried rather than fail the file). Allowed: the ones
# limited only in SHOW commands (ACCOUNT, CONNECTION, DATABASE, GSCLUSTER, ISSUE, ORGANIZATION, SCHEMA, VIEW).
# Unquoted, a reserved word makes the DDL invalid, so such a column fails the file as bad_column_name before any
# SQL runs (fakesnow accepts some reserved ones, e.g. ORDER and CURRENT_DATE).
SNOWFLAKE_RESERVED_WORDS = frozenset(
    """
    ALL ALTER AND ANY AS BETWEEN BY CASE CAST CHECK COLUMN CONNECT CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE
    CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DELETE DISTINCT DROP ELSE EXISTS FALSE FOLLOWING FOR FROM FULL
    GRANT GROUP HAVING ILIKE IN INCREMENT INNER INSERT INTERSECT INTO IS JOIN LATERAL LEFT LIKE LOCALTIME
    LOCALTIMESTAMP MINUS NATURAL NOT NULL OF ON OR ORDER QUALIFY REGEXP REVOKE RIGHT RLIKE ROW ROWS SAMPLE SELECT
    SET SOME START TABLE TABLESAMPLE THEN TO TRIGGER TRUE TRY_CAST UNION UNIQUE UPDATE USING VALUES WHEN WHENEVER
    WHERE WITH
    """.split()  # noqa: SIM905  (a word list reads better as words)
)


def default_column_name(name: str) -> str:
    """`mean radius` -> `MEAN_RADIUS`; a leading digit gets a `_` prefix."""
    out = re.sub(r"[^A-Z0-9]+", "_", name.strip().upper()).strip("_")
    if out and out[0].isdigit():
        out = "_" + out
    return out


@dataclass(frozen=True)
class OutputColumn:
    source: str | None  # input column name (None for computed ones)
    name: str  # Snowflake column
    sql_type: str


class OutputLayout:
    """Which input columns go where, decided once per file from its header and the settings."""

    def __init__(
        self, header: list[str], metadata: ModelMetadata, settings: Settings, *, challenger: str | None = None
    ) -> None:
        """``challenger``: the challenger's model version when one scores in shadow (its columns are added)."""
        renames = settings.column_renames
        drop = set(settings.drop_columns)
        reserved = set(SCORE_COLUMNS) | set(LINEAGE_COLUMNS) | {LOADED_AT[0]} | STAGING_ONLY_COLUMNS
        if challenger is not None:
            reserved |= set(CHALLENGER_COLUMNS)
        self.challenger = challenger
        feature_names = set(metadata.feature_names)
        columns: list[OutputColumn] = []
        for feature in metadata.features:
            columns.append(OutputColumn(feature.name, renames.get(feature.name, feature.column), FLOAT))
        if settings.keep_extra_columns:
            for name in header:
                if name in feature_names or not name.strip():
                    continue
                columns.append(OutputColumn(name, renames.get(name, default_column_name(name)), TEXT))

        seen: dict[str, str] = {}
        for col in columns:
            if not IDENTIFIER.match(col.name):
                raise UnusableFileError(
                    f"column {col.source!r} maps to {col.name!r}, not a valid Snowflake identifier; "
                    "map it with COLUMN_RENAMES or drop it with DROP_COLUMNS",
                    reason="bad_column_name",
                )
            if col.name.upper() in SNOWFLAKE_RESERVED_WORDS and col.name.upper() not in drop:
                raise UnusableFileError(
                    f"column {col.source!r} maps to {col.name!r}, a Snowflake reserved word that cannot name a "
                    f"column; map it with COLUMN_RENAMES (e.g. {json.dumps({col.source: col.name.upper() + '_'})}) "
                    "or drop it with DROP_COLUMNS",
                    reason="bad_column_name",
                )
            if col.name in reserved:
                raise UnusableFileError(
                    f"input column {col.source!r} would overwrite the output column {col.name}; rename it with "
                    "COLUMN_RENAMES",
                    reason="column_conflict",
                )
            if col.name in seen:
                raise UnusableFileError(
                    f"columns {seen[col.name]!r} and {col.source!r} both map to {col.name}; "
                    "set COLUMN_RENAMES for one of them",
                    reason="column_conflict",
                )
            seen[col.name] = str(col.source)
        undroppable = drop & (reserved - set(SCORE_COLUMNS))
        if undroppable:
            raise ConfigurationError(f"DROP_COLUMNS: lineage columns cannot be dropped: {sorted(undroppable)}")
        # Features first (in the model's order), then kept extra text columns: frame() relies on it.
        self.data_columns = [c for c in columns if c.name not in drop]
        self._features = [c for c in self.data_columns if c.sql_type == FLOAT]
        # Which columns of the model's feature array are kept; None when all are, in order (no copy needed).
        order = metadata.feature_names
        kept = [order.index(str(c.source)) for c in self._features]
        self._kept_features: list[int] | None = None if kept == list(range(len(order))) else kept
        self._labels = [metadata.labels["0"], metadata.labels["1"]]
        self.score_columns = {k: v for k, v in SCORE_COLUMNS.items() if k not in drop}
        if challenger is not None:  # after the champion's scores, in this order
            self.score_columns |= {k: v for k, v in CHALLENGER_COLUMNS.items() if k not in drop}
        missing_keys = [k for k in settings.merge_keys if k not in self.staged_column_names]
        if missing_keys:
            raise UnusableFileError(
                f"MERGE_KEYS {missing_keys} are not among this file's data or score columns",
                reason="missing_merge_keys",
            )
        by_name = {c.name: c for c in self.data_columns}
        # The merge key as the file names it (for the rejects' COLUMN_NAME), and, in upsert mode, its columns that
        # come from the file's text: a feature or a score is never empty in a row that is scored.
        self.merge_key_columns = ", ".join(str(by_name[k].source) if k in by_name else k for k in settings.merge_keys)
        self._merge_key_text: list[str] = [
            str(by_name[k].source)
            for k in settings.merge_keys
            if settings.load_mode is LoadMode.UPSERT and k in by_name and by_name[k].sql_type == TEXT
        ]

    def reject_missing_merge_keys(self, table: pa.Table, converted: ConvertedFeatures) -> ConvertedFeatures:
        """Upsert: a row whose merge key is missing cannot be merged with anything; it is rejected with the column.

        Missing is empty, blank, or a missing-value marker (``NA`` as R writes it, ``N/A``, ``null``, ``-``, ``?``
        ...: the CSV reader's list, in any case, spaces trimmed). Empty cells are '' rather than NULL and markers
        are text, so without this every keyless row would collapse into one (two patients merged), and a later
        file's keyless row would replace an earlier file's.
        """
        if not self._merge_key_text:
            return converted
        ok = converted.ok.copy()
        problems = {p.index: p for p in converted.problems}
        markers = pa.array(sorted(MISSING_VALUE_MARKERS), pa.string())
        for source in self._merge_key_text:
            text = pc.utf8_trim_whitespace(table.column(source))
            missing = pc.or_(pc.equal(text, ""), pc.is_in(pc.utf8_lower(text), value_set=markers))
            empty = pc.fill_null(missing, True).to_numpy(zero_copy_only=False)
            for flat in np.flatnonzero(empty & ok):
                i = int(flat)
                ok[i] = False
                problems[i] = RowProblem(
                    index=i,
                    column=source,
                    reason=(
                        f"missing merge key: column {source!r} is empty or a missing-value marker "
                        "(LOAD_MODE=upsert merges on MERGE_KEYS)"
                    ),
                )
        if bool((ok == converted.ok).all()):
            return converted
        return dataclasses.replace(converted, ok=ok, problems=[problems[i] for i in sorted(problems)])

    @property
    def staged_column_names(self) -> list[str]:
        """What is staged per row. The other lineage columns are one value per load, added at publish."""
        return [name for name, _ in self.staged_ddl()]

    def staged_ddl(self) -> list[tuple[str, str]]:
        return (
            [(c.name, c.sql_type) for c in self.data_columns]
            + list(self.score_columns.items())
            + [("SOURCE_LINE", LINEAGE_COLUMNS["SOURCE_LINE"])]
        )

    def ddl_columns(self) -> list[tuple[str, str]]:
        """(name, type) of the target table, in order; LOADED_AT last."""
        return (
            [(c.name, c.sql_type) for c in self.data_columns]
            + list(self.score_columns.items())
            + list(LINEAGE_COLUMNS.items())
            + [LOADED_AT]
        )

    def frame(
        self,
        text: dict[str, Any],  # input text columns, Arrow-backed (no Python string objects)
        feature_values: npt.NDArray[np.float64],  # [n, n_features] in the model's feature order, column-major
        scores: Scores,
        lines: npt.NDArray[np.int64],
        flags: pa.Array | None = None,  # OUT_OF_RANGE_FEATURES per row (None: no row flagged)
        challenger: Scores | None = None,  # the challenger's scores of the same rows (None: none for this chunk)
    ) -> pd.DataFrame:
        """The rows to stage: features as float64 (the exact value of the text), extras as text.

        The kept features become the frame's one float block as they are (a column-major array is exactly
        pandas' block layout), so building the frame copies no feature value.
        """
        block = feature_values
        if self._kept_features is not None:  # some features dropped: keep the others
            block = np.asfortranarray(feature_values[:, self._kept_features])
        frame = pd.DataFrame(block, columns=[c.name for c in self._features], copy=False)
        for col in self.data_columns[len(self._features) :]:
            frame[col.name] = text[str(col.source)]
        if "CLASSIFICATION" in self.score_columns:
            frame["CLASSIFICATION"] = scores.classification.astype(np.int8)
        if "CONDITION" in self.score_columns:
            frame["CONDITION"] = pd.Categorical.from_codes(scores.classification, categories=pd.Index(self._labels))  # type: ignore[arg-type]  # stubs want Sequence[int]; an int array is accepted
        if "MALIGNANT_PROBABILITY" in self.score_columns:
            frame["MALIGNANT_PROBABILITY"] = scores.malignant_probability.astype(np.float64)
        if FLAG_COLUMN in self.score_columns:
            frame[FLAG_COLUMN] = pd.arrays.ArrowExtensionArray(
                pa.nulls(len(frame), pa.string()) if flags is None else flags
            )
        if self.challenger is not None:
            self._challenger_columns(frame, challenger)
        frame["SOURCE_LINE"] = lines.astype(np.int64)
        if list(frame.columns) != self.staged_column_names:  # the order staged_ddl() promises
            raise AssertionError(f"staged frame columns out of order: {list(frame.columns)}")
        return frame

    def _challenger_columns(self, frame: pd.DataFrame, challenger: Scores | None) -> None:
        """The challenger's columns: NULL where it gave no usable probability, or for the whole chunk without it."""
        n = len(frame)
        if challenger is None:
            probability, classification = pa.nulls(n, pa.float64()), pa.nulls(n, pa.int8())
        else:
            unscored = ~challenger.scored
            probability = pa.array(challenger.malignant_probability.astype(np.float64), mask=unscored)
            classification = pa.array(challenger.classification, mask=unscored)
        if "CHALLENGER_PROBABILITY" in self.score_columns:
            frame["CHALLENGER_PROBABILITY"] = pd.arrays.ArrowExtensionArray(probability)
        if "CHALLENGER_CLASSIFICATION" in self.score_columns:
            frame["CHALLENGER_CLASSIFICATION"] = pd.arrays.ArrowExtensionArray(classification)
        if "CHALLENGER_MODEL_VERSION" in self.score_columns:
            frame["CHALLENGER_MODEL_VERSION"] = pd.arrays.ArrowExtensionArray(
                pa.repeat(pa.scalar(self.challenger, pa.string()), n)  # type: ignore[attr-defined]
            )


# The reject of a row the model gave no finite probability in [0, 1] for (scoring.Scores.scored): its COLUMN_NAME is
# the score it lacks. Such a row is never labelled: NaN >= threshold is false, which would have made it benign.
UNSCORED_COLUMN = "MALIGNANT_PROBABILITY"
UNSCORED_REASON = "the model gave no finite probability in [0, 1] for this row; it is not labelled"


def reject_unscored(
    converted: ConvertedFeatures, scores: Scores, flags: pa.Array | None
) -> tuple[ConvertedFeatures, Scores, pa.Array | None]:
    """The chunk without the scored rows whose probability is not usable: those become problems (rejects).

    ``scores`` and ``flags`` are aligned with ``converted``'s scoreable rows; what is returned is aligned with the
    rows still scoreable. Checked here, on whatever the scorer returned, so every model (an imported one, a fake)
    is held to it.
    """
    scored = scores.scored
    if bool(scored.all()):
        return converted, scores, flags
    unscored = np.flatnonzero(converted.ok)[~scored]
    ok = converted.ok.copy()
    ok[unscored] = False
    problems = converted.problems + [RowProblem(int(i), UNSCORED_COLUMN, UNSCORED_REASON) for i in unscored]
    problems.sort(key=lambda p: p.index)
    kept = flags.filter(pa.array(scored)) if flags is not None else None
    return dataclasses.replace(converted, ok=ok, problems=problems), scores.only(scored), kept


def rejects_frame(
    chunk: TextChunk,
    columns: list[str],
    delimiter: str,
    problems: list[RowProblem],
    lineage: Mapping[str, str],
    max_text_chars: int,
) -> pd.DataFrame | None:
    """One chunk's rejects (REJECT_COLUMNS): its unparsable lines, then its rows with a problem; None if none."""
    rows: list[tuple[Any, ...]] = []
    for invalid in chunk.invalid:
        rows.append((invalid.line, None, invalid.reason, invalid.text[:max_text_chars]))
    for problem in problems:
        raw = _record_text([chunk.table.column(c)[problem.index].as_py() for c in columns], delimiter)
        rows.append((int(chunk.lines[problem.index]), problem.column, problem.reason, raw[:max_text_chars]))
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=["SOURCE_LINE", "COLUMN_NAME", "REASON", "RAW_TEXT"])
    frame.insert(0, "SOURCE_VERSION", lineage["SOURCE_VERSION"])
    frame.insert(0, "SOURCE_KEY", lineage["SOURCE_KEY"])
    frame.insert(0, "SOURCE_BUCKET", lineage["SOURCE_BUCKET"])
    frame.insert(0, "LOAD_ID", lineage["LOAD_ID"])
    frame["SOURCE_LINE"] = frame["SOURCE_LINE"].astype(np.int64)
    return frame[[n for n, _ in REJECT_COLUMNS]]


def _record_text(fields: list[Any], delimiter: str) -> str:
    """A record's fields written back as one CSV line (the raw text pyarrow parsed them from)."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(["" if f is None else f for f in fields])
    return out.getvalue()

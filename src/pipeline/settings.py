"""Settings: parsed from the environment once, validated, with errors that name the variable."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigurationError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


def validate_identifier(value: str, what: str = "identifier") -> str:
    """Snowflake unquoted identifier: letters, digits, `_`, `$`; never pasted raw into SQL otherwise."""
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ValueError(f"{what} {value!r} is not a valid Snowflake identifier ([A-Za-z_][A-Za-z0-9_$]*)")
    return value.upper()


def _csv_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _json_map(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON object: {exc.msg}") from exc
    return value


def _bool(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError("must be true or false")
    return value


CsvList = Annotated[list[str], BeforeValidator(_csv_list)]
JsonMap = Annotated[dict[str, str], BeforeValidator(_json_map)]
Bool = Annotated[bool, BeforeValidator(_bool)]


class LoadMode(StrEnum):
    APPEND = "append"
    UPSERT = "upsert"


class HeaderMatching(StrEnum):
    """How header names are matched to the model's features (see pipeline.header)."""

    NORMALISED = "normalised"  # ignoring case and separators: 'Mean Radius', 'MEAN_RADIUS' match 'mean radius'
    STRICT = "strict"  # exactly as the model spells them


class OutOfRange(StrEnum):
    """What becomes of a row whose value lies far beyond the model's training range (pipeline/plausibility.py)."""

    FLAG = "flag"  # loaded and scored, its columns listed in OUT_OF_RANGE_FEATURES
    REJECT = "reject"  # to the rejects table
    OFF = "off"  # loaded as any other row (impossible values are rejected whatever this says)


class DuplicateRule(StrEnum):
    """When a new object version is a duplicate of a load the ledger already has (docs/exactly-once.md)."""

    # The same S3 key with the same bytes (S3's content fingerprint: a single-part ETag that is the content's MD5,
    # or a full-object CRC64NVME / SHA checksum) is a duplicate, whatever its version id. Without a fingerprint
    # that can be trusted, and in upsert mode, the version rule applies.
    CONTENT = "content"
    VERSION = "version"  # every new object version loads (on a versioned bucket, re-sent bytes load again)


# OUT_OF_RANGE_MARGIN's default, as a fraction of each feature's training range (max - min). Measured with
# benchmarks/out_of_range_margin.py (docs/performance.md): the 114 real held-out rows lie up to 0.28 of a range
# beyond the 455 training rows' min/max, and over 2000 random 455/114 splits of the 569 real rows an unseen real
# row is beyond 0.25 in 1.4 % of cases but beyond 0.5 in only 0.2 %; 1M jittered resamples (5-25 % of a
# standard deviation) stay within 0.42, and a mean area of 1,000,000 is 423 ranges out.
DEFAULT_OUT_OF_RANGE_MARGIN = 0.5


# Environment variable -> field. Every variable the function reads is listed here, in one place.
ENVIRONMENT: dict[str, str] = {
    "SNOWFLAKE_SECRET_NAME": "secret_name",
    "SNOWFLAKE_ACCOUNT": "account",
    "SNOWFLAKE_DATABASE": "database",
    "SNOWFLAKE_SCHEMA": "schema_name",
    "SNOWFLAKE_WAREHOUSE": "warehouse",
    "SNOWFLAKE_ROLE": "role",
    "SNOWFLAKE_HOST": "host",
    "SNOWFLAKE_PORT": "port",
    "SNOWFLAKE_PROTOCOL": "protocol",
    "SNOWFLAKE_LOGIN_TIMEOUT": "login_timeout",
    "SNOWFLAKE_LOCK_TIMEOUT": "lock_timeout",
    "TARGET_TABLE": "target_table",
    "REJECTS_TABLE": "rejects_table",
    "LEDGER_TABLE": "ledger_table",
    "MONITORING_TABLE": "monitoring_table",
    "LOAD_MODE": "load_mode",
    "MERGE_KEYS": "merge_keys",
    "DECISION_THRESHOLD": "decision_threshold",
    "COLUMN_RENAMES": "column_renames",
    "DROP_COLUMNS": "drop_columns",
    "KEEP_EXTRA_COLUMNS": "keep_extra_columns",
    "HEADER_MATCHING": "header_matching",
    "CHUNK_ROWS": "chunk_rows",
    "MAX_OBJECT_BYTES": "max_object_bytes",
    "MAX_UNCOMPRESSED_BYTES": "max_uncompressed_bytes",
    "MAX_REJECT_TEXT_CHARS": "max_reject_text_chars",
    "MODEL_DIR": "model_dir",
    "CHALLENGER_MODEL_DIR": "challenger_model_dir",
    "OUT_OF_RANGE": "out_of_range",
    "OUT_OF_RANGE_MARGIN": "out_of_range_margin",
    "BATCH_PUBLISH": "batch_publish",
    "DUPLICATE_RULE": "duplicate_rule",
}


class Settings(BaseModel):
    """Everything the function is configured with. Required values have no defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    secret_name: str = Field(min_length=1)
    account: str | None = None  # may also come from the secret
    database: str
    schema_name: str
    warehouse: str | None = None
    role: str | None = None
    host: str | None = None  # only for private-link hosts or a local emulator
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: str = Field(default="https", pattern="^https?$")
    login_timeout: int = Field(default=30, ge=1, le=600)
    # Seconds a publish waits for the ledger lock behind a concurrent one (then a retriable error). A publish is
    # started only with at least this plus PUBLISH_MARGIN_SECONDS (pipeline/process.py) of the invocation left.
    lock_timeout: int = Field(default=120, ge=1, le=600)

    target_table: str = "TUMOUR_SCORES"
    rejects_table: str = "TUMOUR_SCORE_REJECTS"
    ledger_table: str = "TUMOUR_SCORE_LOADS"
    monitoring_table: str = "TUMOUR_SCORE_MONITORING"  # one row per load: drift and estimated accuracy
    load_mode: LoadMode = LoadMode.APPEND
    merge_keys: CsvList = Field(default_factory=list)
    decision_threshold: float | None = Field(default=None, gt=0.0, lt=1.0)

    column_renames: JsonMap = Field(default_factory=dict)
    drop_columns: CsvList = Field(default_factory=list)
    keep_extra_columns: Bool = True
    header_matching: HeaderMatching = HeaderMatching.NORMALISED

    chunk_rows: int = Field(default=200_000, ge=1, le=5_000_000)
    max_object_bytes: int = Field(default=2 * 1024**3, ge=1)
    max_uncompressed_bytes: int = Field(default=8 * 1024**3, ge=1)
    max_reject_text_chars: int = Field(default=4096, ge=64)
    model_dir: Path | None = None
    # A second imported model scoring in shadow (pipeline/challenger.py); unset: the one the build shipped in
    # challenger/, if any.
    challenger_model_dir: Path | None = None
    out_of_range: OutOfRange = OutOfRange.FLAG
    out_of_range_margin: float = Field(default=DEFAULT_OUT_OF_RANGE_MARGIN, ge=0.0, allow_inf_nan=False)
    # The objects of one invocation (an SQS batch) publish in one transaction, taking the ledger lock once;
    # false: one transaction per object (benchmarks/burst.py compares the two).
    batch_publish: Bool = True
    duplicate_rule: DuplicateRule = DuplicateRule.CONTENT

    @field_validator(
        "database",
        "schema_name",
        "warehouse",
        "role",
        "target_table",
        "rejects_table",
        "ledger_table",
        "monitoring_table",
    )
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else validate_identifier(value)

    @field_validator("merge_keys", "drop_columns")
    @classmethod
    def _identifiers(cls, value: list[str]) -> list[str]:
        return [validate_identifier(v, "column") for v in value]

    @field_validator("column_renames")
    @classmethod
    def _renames(cls, value: dict[str, str]) -> dict[str, str]:
        return {str(k): validate_identifier(v, f"rename target for {k!r}") for k, v in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.load_mode is LoadMode.UPSERT and not self.merge_keys:
            raise ValueError("LOAD_MODE=upsert needs MERGE_KEYS (the columns that identify a row)")
        tables = {self.target_table, self.rejects_table, self.ledger_table, self.monitoring_table}
        if len(tables) != 4:
            raise ValueError(
                "TARGET_TABLE, REJECTS_TABLE, LEDGER_TABLE and MONITORING_TABLE must be four different tables"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        raw = {field: environ[var] for var, field in ENVIRONMENT.items() if environ.get(var, "") != ""}
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            field_to_var = {field: var for var, field in ENVIRONMENT.items()}
            problems = []
            for err in exc.errors():
                loc = err["loc"][0] if err["loc"] else None
                var = field_to_var.get(str(loc), "configuration")
                problems.append(f"{var}: {err['msg']}")
            raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, parsed once (cached for the container's lifetime)."""
    return Settings.from_env()

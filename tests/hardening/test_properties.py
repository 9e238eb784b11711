"""Property-based tests of CSV -> features (pipeline.csv_reader + pipeline.features), and of the handler.

* Any CSV of valid floats, in any supported dialect, round-trips exactly: the float64 parsed from each cell
  is the float that was written (with repr), and every row is scoreable with its record number.
* Any garbage is either parsed (each row scored, skipped as blank, or rejected with a reason) or refused as a
  whole with a reason; nothing else ever escapes, from the reader or from the handler.
"""

from __future__ import annotations

import gzip
import io
import uuid
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.csv_reader import CsvChunks
from pipeline.errors import UnusableFileError
from pipeline.features import FLOAT32_MAX, convert_features

FEATURES = ["mean radius", "mean texture", "worst area"]
finite = st.floats(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX, allow_nan=False, allow_infinity=False)


@st.composite
def float_csv(draw: Any) -> tuple[bytes, list[list[float]], int]:
    rows = draw(st.lists(st.lists(finite, min_size=len(FEATURES), max_size=len(FEATURES)), min_size=1, max_size=40))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    quote = draw(st.booleans())
    extra = draw(st.booleans())  # an id column before the features
    order = draw(st.permutations(list(range(len(FEATURES)))))

    def cell(text: str) -> str:
        return f'"{text}"' if quote else text

    header = (["sample_id"] if extra else []) + [FEATURES[j] for j in order]
    lines = [delimiter.join(cell(h) for h in header)]
    for i, row in enumerate(rows):
        lines.append(delimiter.join(([cell(f"S{i}")] if extra else []) + [cell(repr(row[j])) for j in order]))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    data = (("\ufeff" if draw(st.booleans()) else "") + text).encode()
    if draw(st.booleans()):
        data = gzip.compress(data)
    return data, rows, draw(st.integers(min_value=1, max_value=50))


def _read(data: bytes, chunk_rows: int) -> tuple[CsvChunks, list[Any]]:
    chunks = CsvChunks(io.BytesIO(data), required=FEATURES, chunk_rows=chunk_rows, max_uncompressed_bytes=1 << 24)
    return chunks, list(chunks)


@settings(max_examples=300, deadline=None)
@given(float_csv())
def test_any_csv_of_valid_floats_round_trips_exactly(case: tuple[bytes, list[list[float]], int]) -> None:
    data, rows, chunk_rows = case
    # When the CSV is read and converted, chunk by chunk
    chunks, parts = _read(data, chunk_rows)
    values, lines = [], []
    for part in parts:
        assert part.invalid == []
        converted = convert_features(part.table, FEATURES, decimal_comma=chunks.delimiter != ",")
        assert converted.ok.all() and converted.problems == []
        values.append(converted.values)
        lines.extend(part.lines.tolist())
    # Then every value is the float that was written, bit for bit, and each row has its record number
    parsed = np.concatenate(values)
    assert parsed.tolist() == rows
    assert np.array_equal(np.signbit(parsed), np.signbit(np.array(rows)))  # even -0.0
    assert lines == list(range(2, len(rows) + 2))


garbage = st.one_of(
    st.binary(max_size=600),
    st.text(alphabet=st.sampled_from(list('0123456789.,;\t|"\r\n eE+-naifxé\x00')), max_size=400),
    st.text(max_size=200).map(lambda t: ",".join(FEATURES) + "\n" + t),
    st.lists(
        st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12), max_size=5), max_size=8
    ).map(lambda rows: ",".join(FEATURES) + "\n" + "\n".join(",".join(r) for r in rows)),
).map(lambda v: v if isinstance(v, bytes) else v.encode("utf-8", "surrogatepass"))


@settings(max_examples=400, deadline=None)
@given(garbage, st.integers(min_value=1, max_value=7))
def test_any_garbage_is_parsed_or_refused_with_a_reason(data: bytes, chunk_rows: int) -> None:
    # When garbage is read and converted
    try:
        chunks, parts = _read(data, chunk_rows)
    except UnusableFileError as exc:
        refused: UnusableFileError | None = exc
    else:
        refused = None
    if refused is not None:
        # Then either the whole file is refused with a reason code and a message
        assert refused.reason not in {"", "error", "permanent"}
        assert str(refused)
        return
    outcomes = []
    for part in parts:
        converted = convert_features(part.table, FEATURES, decimal_comma=chunks.delimiter != ",")
        problems = {p.index: p for p in converted.problems}
        for i in range(part.num_rows):
            # or every row is scored, skipped as blank, or rejected naming its column and why
            assert converted.ok[i] or converted.blank[i] or problems[i].reason
            assert not converted.ok[i] or bool(np.isfinite(converted.values[i]).all())
            if i in problems:
                assert problems[i].column in problems[i].reason
        assert all(r.reason and r.line >= 2 for r in part.invalid)
        outcomes.extend(part.lines.tolist() + [r.line for r in part.invalid])
    # and record numbers are unique
    assert len(outcomes) == len(set(outcomes))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=garbage)
def test_garbage_never_crashes_the_handler(harness: Any, data: bytes) -> None:
    # Given garbage uploaded as a CSV
    key = f"incoming/fuzz/{uuid.uuid4().hex}.csv"
    event = harness.put(key, data)
    # When its event is delivered (the handler must not raise)
    result = harness.invoke(event)["objects"][0]
    # Then it is loaded (good rows scored, bad rows rejected with reasons) or failed with a specific reason
    assert result["status"] in {"loaded", "failed"}, result
    if result["status"] == "failed":
        assert result["reason_code"] and result["reason"]
    else:
        assert result["rows_loaded"] + result["rows_rejected"] > 0

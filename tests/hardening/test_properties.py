"""Property-based tests of CSV -> features (pipeline.csv_reader + pipeline.features), and of the handler.

* Any CSV of valid floats, in any supported dialect, with decimal points or decimal commas, round-trips
  exactly: the float64 parsed from each cell is the float that was written (with repr), and every row is
  scoreable with its record number; only a file whose numbers show no decimal mark has its ambiguous ones
  (2.019) rejected, with that reason.
* Numbers spelled with any decimal mark, with or without digit grouping, in any delimiter: each cell is its
  written value or rejected as ambiguous / grouped; never another number (2,019 is never 2.019 unless the
  file writes decimal commas).
* Any split of a CSV into gzip members (empty ones too) reads as the plain file does, and as gzip does.
* A Windows-1252 byte anywhere in a UTF-8 file (after the first MiB, on a read or block boundary) is read as
  its Windows-1252 character, and everything around it as UTF-8.
* Any garbage is either parsed (each row scored, skipped as blank, or rejected with a reason) or refused as a
  whole with a reason; nothing else ever escapes, from the reader or from the handler.
"""

from __future__ import annotations

import gzip
import io
import re
import uuid
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.csv_reader import CsvChunks, _LimitedDecompressor, _Utf8WithFallback
from pipeline.errors import UnusableFileError
from pipeline.features import FLOAT32_MAX, GROUP_SHAPED, convert_features

FEATURES = ["mean radius", "mean texture", "worst area"]
finite = st.floats(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX, allow_nan=False, allow_infinity=False)


@st.composite
def float_csv(draw: Any) -> tuple[bytes, list[list[float]], int, str]:
    rows = draw(st.lists(st.lists(finite, min_size=len(FEATURES), max_size=len(FEATURES)), min_size=1, max_size=40))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    mark = draw(st.sampled_from([".", ","]))  # the writer's decimal mark
    quote = draw(st.booleans()) or (mark == delimiter)
    extra = draw(st.booleans())  # an id column before the features
    order = draw(st.permutations(list(range(len(FEATURES)))))

    def cell(text: str) -> str:
        return f'"{text}"' if quote else text

    header = (["sample_id"] if extra else []) + [FEATURES[j] for j in order]
    lines = [delimiter.join(cell(h) for h in header)]
    for i, row in enumerate(rows):
        lines.append(
            delimiter.join(([cell(f"S{i}")] if extra else []) + [cell(repr(row[j]).replace(".", mark)) for j in order])
        )
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    data = (("\ufeff" if draw(st.booleans()) else "") + text).encode()
    if draw(st.booleans()):
        data = gzip.compress(data)
    return data, rows, draw(st.integers(min_value=1, max_value=50)), mark


def _undecidable(rows: list[list[float]]) -> tuple[bool, set[tuple[int, int]]]:
    """Whether the file's numbers tell its decimal mark, and the cells (row, feature) that must then be rejected
    as ambiguous: those shaped like 2.019 when nothing tells whether that is 2.019 or 2019."""
    spelled = [[repr(v) for v in row] for row in rows]
    shaped = {(i, j) for i, row in enumerate(spelled) for j, text in enumerate(row) if re.fullmatch(GROUP_SHAPED, text)}
    told = any("." in text for i, row in enumerate(spelled) for j, text in enumerate(row) if (i, j) not in shaped)
    return told, set() if told else shaped


def _read(data: bytes, chunk_rows: int) -> tuple[CsvChunks, list[Any]]:
    chunks = CsvChunks(io.BytesIO(data), required=FEATURES, chunk_rows=chunk_rows, max_uncompressed_bytes=1 << 24)
    return chunks, list(chunks)


@settings(max_examples=300, deadline=None)
@given(float_csv())
def test_any_csv_of_valid_floats_round_trips_exactly(case: tuple[bytes, list[list[float]], int, str]) -> None:
    data, rows, chunk_rows, mark = case
    told, undecidable = _undecidable(rows)
    # When the CSV is read and converted, chunk by chunk
    chunks, parts = _read(data, chunk_rows)
    assert chunks.decimal_mark == (mark if told else None)
    values, lines, rejected = [], [], {}
    for part in parts:
        assert part.invalid == []
        converted = convert_features(part.table, FEATURES, decimal_mark=chunks.decimal_mark)
        rejected.update({int(part.lines[p.index]) - 2: p for p in converted.problems})
        values.append(converted.values)
        lines.extend(part.lines.tolist())
    # Then every value is the float that was written, bit for bit, and each row has its record number
    parsed = np.concatenate(values)
    good = [i for i in range(len(rows)) if i not in {r for r, _ in undecidable}]
    assert parsed[good].tolist() == [rows[i] for i in good]
    assert np.array_equal(np.signbit(parsed[good]), np.signbit(np.array([rows[i] for i in good]).reshape(-1, 3)))
    assert lines == list(range(2, len(rows) + 2))
    # and only a row with a number that nothing in the file can tell (2.019: 2019 or 2.019?) is rejected, as such
    for i, problem in rejected.items():
        first = min(j for r, j in undecidable if r == i)
        assert problem.column == FEATURES[first]
        assert problem.reason.startswith(f"ambiguous number in column {FEATURES[first]!r}")
    assert set(rejected) == {r for r, _ in undecidable}


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
        converted = convert_features(part.table, FEATURES, decimal_mark=chunks.decimal_mark)
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


# --- numbers spelled with either decimal mark, with or without digit grouping


@st.composite
def spelled_numbers(draw: Any) -> tuple[bytes, list[list[tuple[str, float]]], str, bool]:
    """A CSV whose writer uses one decimal mark, and maybe the other as a thousands separator."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    mark = draw(st.sampled_from([".", ","]))
    grouping = draw(st.booleans())
    number = st.tuples(
        st.booleans(), st.integers(0, 10**8), st.text(alphabet="0123456789", max_size=5)
    )  # sign, integer part, decimal digits

    def spell(negative: bool, whole: int, digits: str) -> tuple[str, float]:
        text = f"{whole:,}".replace(",", "," if mark == "." else ".") if grouping else str(whole)
        text = ("-" if negative else "") + text + (mark + digits if digits else "")
        return text, float(("-" if negative else "") + str(whole) + ("." + digits if digits else ""))

    rows = draw(st.lists(st.lists(number.map(lambda n: spell(*n)), min_size=3, max_size=3), min_size=1, max_size=30))

    def cell(text: str) -> str:
        return f'"{text}"' if delimiter in text else text

    lines = [delimiter.join(FEATURES)] + [delimiter.join(cell(t) for t, _ in row) for row in rows]
    return ("\n".join(lines) + "\n").encode(), rows, mark, grouping


@settings(max_examples=400, deadline=None)
@given(spelled_numbers(), st.integers(min_value=1, max_value=7))
def test_a_number_is_its_written_value_or_rejected_never_another_number(
    case: tuple[bytes, list[list[tuple[str, float]]], str, bool], chunk_rows: int
) -> None:
    data, rows, mark, grouping = case
    # When the file is read and converted
    chunks, parts = _read(data, chunk_rows)
    # Then its decimal mark is the writer's, or undecided; never the other one
    assert chunks.decimal_mark in {mark, None}
    tells = any(
        mark in text
        and not re.fullmatch(GROUP_SHAPED, text)
        and text.count(mark) == 1
        and text.count(",.".replace(mark, "")) == 0
        for row in rows
        for text, _ in row
    )
    assert chunks.decimal_mark == (mark if tells else None)
    for part in parts:
        converted = convert_features(part.table, FEATURES, decimal_mark=chunks.decimal_mark)
        problems = {p.index: p for p in converted.problems}
        for i in range(part.num_rows):
            row = rows[int(part.lines[i]) - 2]
            if converted.ok[i]:
                # a loaded row holds exactly the written numbers
                assert converted.values[i].tolist() == [v for _, v in row], row
                continue
            # a rejected one is rejected for an ambiguous or grouped number, naming its column
            reason = problems[i].reason
            assert reason.startswith(("ambiguous number in column", "thousands separators in column")), reason
            assert grouping or chunks.decimal_mark is None, (row, reason)  # ungrouped spellings load once told
            bad = FEATURES.index(problems[i].column)
            assert all(row[j][0] not in reason for j in range(3))
            text = row[bad][0].lstrip("-")
            assert "," in text or "." in text


# --- multi-member gzip


@st.composite
def gzip_members(draw: Any) -> tuple[bytes, bytes]:
    """A small CSV, and the same CSV cut at arbitrary points into gzip members (some of them empty)."""
    n = draw(st.integers(min_value=1, max_value=60))
    plain = (",".join(FEATURES) + "\n" + "".join(f"{i},{i}.5,{i * 7}\n" for i in range(n))).encode()
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(plain)), max_size=8)))
    pieces = [plain[a:b] for a, b in zip([0, *cuts], [*cuts, len(plain)], strict=True)]
    level = draw(st.integers(min_value=0, max_value=9))
    return plain, b"".join(gzip.compress(piece, compresslevel=level, mtime=0) for piece in pieces)


@settings(max_examples=200, deadline=None)
@given(gzip_members(), st.integers(min_value=1, max_value=20))
def test_any_split_into_gzip_members_reads_as_the_plain_file(case: tuple[bytes, bytes], chunk_rows: int) -> None:
    plain, data = case
    # Given the plain CSV and any split of it into gzip members; gzip itself reads the members as the plain file
    assert gzip.decompress(data) == plain
    # When both are read / Then they give the same rows with the same record numbers
    _, from_plain = _read(plain, chunk_rows)
    _, from_gzip = _read(data, chunk_rows)
    assert [p.table.to_pylist() for p in from_gzip] == [p.table.to_pylist() for p in from_plain]
    assert [p.lines.tolist() for p in from_gzip] == [p.lines.tolist() for p in from_plain]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=64),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=8),
)
def test_the_decompressor_gives_gzips_bytes_whatever_the_read_sizes(
    members: list[bytes], read_size: int, out_sizes: list[int]
) -> None:
    # Given members of random (incompressible) bytes, read from the source in reads of `read_size` and handed on in
    # buffers of varying sizes: at this scale, a member's end falls inside a read and output is cut short, as
    # with ~1 MB members and 1 MiB reads
    data = b"".join(gzip.compress(m, mtime=0) for m in members)
    stream = _LimitedDecompressor(io.BytesIO(data), limit=1 << 20, read_size=read_size)  # type: ignore[arg-type]
    out, k = bytearray(), 0
    while True:
        buffer = bytearray(out_sizes[k % len(out_sizes)])
        k += 1
        got = stream.readinto(buffer)
        if not got:
            break
        out += buffer[:got]
    # Then it is exactly what gzip decompresses: every member, once, in order
    assert bytes(out) == gzip.decompress(data) == b"".join(members)


# --- a Windows-1252 byte anywhere in a UTF-8 file

text_piece = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=20)
stray = st.integers(min_value=0x80, max_value=0xFF)


def _as_cp1252(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return bytes([byte]).decode("latin-1")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(text_piece, stray), max_size=10), text_piece, st.integers(min_value=1, max_value=40))
def test_stray_bytes_in_utf8_are_read_as_windows_1252_whatever_the_read_size(
    pieces: list[tuple[str, int]], tail: str, read_size: int
) -> None:
    # Given UTF-8 text with stray non-UTF-8 bytes (each followed by an ASCII letter, so it is not part of a
    # valid sequence), read in reads of any size
    data = b"".join(t.encode() + bytes([b]) + b"x" for t, b in pieces) + tail.encode()
    expected = "".join(t + _as_cp1252(b) + "x" for t, b in pieces) + tail
    stream = _Utf8WithFallback(io.BytesIO(data), read_size=read_size)  # type: ignore[arg-type]
    out = b""
    while chunk := stream.read(max(1, read_size // 2 + 1)):
        out += chunk
    # Then the output is UTF-8: valid sequences as they were, each stray byte as its Windows-1252 character
    assert out.decode("utf-8") == expected


@settings(max_examples=12, deadline=None)
@given(st.integers(min_value=0, max_value=5 * (1 << 19)), stray)
@example(at=1048562, byte=0x80)  # broke a draft of the fallback: a 3-byte € near the peek's end
def test_a_windows_1252_byte_anywhere_in_a_large_utf8_file_loads(at: int, byte: int) -> None:
    # Given a ~2.6 MB UTF-8 CSV with one Windows-1252 byte in a free-text cell at about `at` (before the first
    # MiB, after it, near the 2 MiB parser block)
    header = "id,mean radius,mean texture,worst area,note\n1,1.5,2.5,3.5,café\n".encode()
    rows = b"".join(b"%d,1.5,2.5,3.5,n\n" % i for i in range(2, 160_000))
    cut = rows.rfind(b"\n", 0, max(0, at - len(header))) + 1
    data = header + rows[:cut] + b"0,1.5,2.5,3.5,a" + bytes([byte]) + b"b\n" + rows[cut:]
    # When it is read
    chunks, parts = _read(data, 100_000)
    notes = [n for p in parts for n in p.table.column("note").to_pylist()]
    # Then every row loads, the byte is its Windows-1252 character and the UTF-8 'é' stays one
    assert chunks.encoding == "utf-8"
    assert all(p.invalid == [] for p in parts)
    assert len(notes) == 2 + rows.count(b"\n")
    assert notes[0] == "café"
    assert ("a" + _as_cp1252(byte) + "b") in notes

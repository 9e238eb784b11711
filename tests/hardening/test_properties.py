"""Property-based tests of CSV -> features (pipeline.csv_reader + pipeline.features), and of the handler.

* Any CSV of valid floats, in any supported dialect, round-trips exactly: the float64 parsed from each cell
  is the float that was written (with repr), and every row is scoreable with its record number.
* Any split of a CSV into gzip members (empty ones too) reads as the plain file does, and as gzip does.
* A Windows-1252 byte anywhere in a UTF-8 file (after the first MiB, on a read or block boundary) is read as
  its Windows-1252 character, and everything around it as UTF-8.
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

from pipeline.csv_reader import CsvChunks, _LimitedDecompressor, _Utf8WithFallback
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

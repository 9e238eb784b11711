"""CSV reading: encodings, compression, delimiters, record numbers and unusable files."""

from __future__ import annotations

import codecs
import gzip
import io

import pytest

from pipeline.csv_reader import CsvChunks
from pipeline.errors import UnusableFileError

TEXT = "id,a,b\n1,1.5,2\n2,3,4\n3,5,6\n"


def read(data: bytes, chunk_rows: int = 100, required: tuple[str, ...] = ("a", "b"), limit: int = 10**9):
    reader = CsvChunks(io.BytesIO(data), required=list(required), chunk_rows=chunk_rows, max_uncompressed_bytes=limit)
    chunks = list(reader)
    rows = [r for c in chunks for r in c.table.to_pylist()]
    lines = [int(n) for c in chunks for n in c.lines]
    invalid = [(r.line, r.reason) for c in chunks for r in c.invalid]
    return reader, rows, lines, invalid


@pytest.mark.parametrize(
    "data",
    [
        TEXT.encode(),
        codecs.BOM_UTF8 + TEXT.encode(),
        TEXT.replace("\n", "\r\n").encode(),
        gzip.compress(TEXT.encode()),
        TEXT.encode("utf-16"),
        TEXT.replace(",", ";").encode(),
        TEXT.replace(",", "\t").encode(),
        TEXT.replace("1.5", '"1.5"').encode(),
    ],
    ids=["plain", "bom", "crlf", "gzip", "utf16", "semicolon", "tab", "quoted"],
)
def test_the_same_table_comes_out_of_every_encoding_and_dialect(data: bytes) -> None:
    # Given the same three rows written differently / When read / Then the same text table and line numbers
    _, rows, lines, invalid = read(data)
    assert rows == [{"id": "1", "a": "1.5", "b": "2"}, {"id": "2", "a": "3", "b": "4"}, {"id": "3", "a": "5", "b": "6"}]
    assert lines == [2, 3, 4]
    assert invalid == []


def test_chunks_are_bounded_and_record_numbers_skip_invalid_records() -> None:
    # Given 10 records where records on lines 4 and 9 have the wrong number of fields
    lines = ["id,a,b"] + [f"{i},{i},{i}" for i in range(2, 12)]
    lines[3] = "x,y"
    lines[8] = "1,2,3,4"
    _, rows, numbers, invalid = read(("\n".join(lines) + "\n").encode(), chunk_rows=3)
    # Then the 8 good ones keep their own line numbers and the 2 bad ones are reported with theirs
    assert numbers == [2, 3, 5, 6, 7, 8, 10, 11]
    assert invalid == [(4, "expected 3 fields, got 2"), (9, "expected 3 fields, got 4")]
    assert len(rows) == 8


def test_every_chunk_but_the_last_is_exactly_chunk_rows_whatever_the_parser_blocks() -> None:
    # Given 1,000 records read in parser blocks of a few dozen records, which do not divide the chunk size
    text = "id,a,b\n" + "".join(f"{i},{i}.5,{i}\n" for i in range(1000))
    reader = CsvChunks(
        io.BytesIO(text.encode()), required=["a", "b"], chunk_rows=128, max_uncompressed_bytes=10**9, block_size=1024
    )
    # When it is chunked
    chunks = list(reader)
    # Then chunks are whole (a short remainder chunk after each full one would cost a staging write each),
    # only the last is short, and no record is lost or repeated
    assert [c.table.num_rows for c in chunks] == [128] * 7 + [104]
    assert [int(n) for c in chunks for n in c.lines] == list(range(2, 1002))
    assert [r["id"] for c in chunks for r in c.table.to_pylist()] == [str(i) for i in range(1000)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty_file"),
        (b"\n\n", "empty_file"),
        (b"1,2,3\n4,5,6\n", "no_header"),
        (b"id,a\n1,2\n", "missing_columns"),
        (b"a,b,a\n1,2,3\n", "duplicate_columns"),
        (b"\x00\x01\x02binary\x00", "not_csv"),
        (gzip.compress(TEXT.encode())[:-12], "truncated_gzip"),
    ],
    ids=["empty", "blank-lines", "no-header", "missing", "duplicate", "binary", "truncated-gzip"],
)
def test_unusable_files_fail_with_a_specific_reason(data: bytes, reason: str) -> None:
    with pytest.raises(UnusableFileError) as err:
        read(data)
    assert err.value.reason == reason


def test_a_gzip_bomb_stops_at_the_limit() -> None:
    # Given 50 MB of zeros-like text compressed to a few KB, and a 1 MB limit
    bomb = gzip.compress(b"id,a,b\n" + b"1,2,3\n" * 9_000_000)
    assert len(bomb) < 200_000
    # When read / Then it stops with the limit named
    with pytest.raises(UnusableFileError, match="MAX_UNCOMPRESSED_BYTES") as err:
        read(bomb, limit=1_000_000)
    assert err.value.reason == "decompressed_too_large"


def test_a_latin1_export_is_read_as_windows_1252() -> None:
    # Given a file that is not UTF-8 (an 'é' written as the single byte 0xE9)
    reader, rows, _, _ = read(b"id,a,b\n1,\xe9,2\n")
    # Then it is decoded with the Windows-1252 fallback rather than refused
    assert reader.encoding == "cp1252"
    assert rows == [{"id": "1", "a": "\u00e9", "b": "2"}]

"""CSV reading: encodings, compression, delimiters, record numbers and unusable files."""

from __future__ import annotations

import codecs
import gzip
import io
from typing import Any

import pytest

from pipeline import csv_reader
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
    lines[8] = "1.5,2.5,3.5,4.5"  # (integers would also earn the decimal-comma hint: see below)
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


def _rows_text(n: int, start: int = 0) -> str:
    return "".join(f"{i},{i}.5,{i}\n" for i in range(start, start + n))


@pytest.mark.parametrize(
    "members",
    [
        [10, 15],  # cat a.gz b.gz of a 10-row file (with the header) and a 15-row one
        [0, 10, 0, 15, 0],  # empty members between and around
        [1, 1, 1, 1, 1, 1, 1],
        [20_000, 30_000, 25_000],  # members of about 0.5-1 MB uncompressed
        [70_000, 1, 70_000],  # members over 1 MiB uncompressed: each one ends mid-read
    ],
    ids=["two", "empty-members", "one-row-each", "half-mib", "over-one-mib"],
)
def test_a_multi_member_gzip_loads_every_member(members: list[int]) -> None:
    # Given a CSV split into several gzip members written one after the other (cat a.gz b.gz, gzip >>, bgzip)
    texts, start = [], 0
    for size in members:
        texts.append(_rows_text(size, start))
        start += size
    texts[0] = "id,a,b\n" + texts[0]
    data = b"".join(gzip.compress(t.encode(), mtime=0) for t in texts)
    assert gzip.decompress(data) == "".join(texts).encode()  # Python's gzip reads it whole, as gunzip does
    # When it is read
    _, rows, lines, invalid = read(data, chunk_rows=50_000)
    # Then every row of every member is there once, in order
    assert [r["id"] for r in rows] == [str(i) for i in range(sum(members))]
    assert lines == list(range(2, sum(members) + 2))
    assert invalid == []


def test_members_of_about_one_mebibyte_compressed_are_not_refused_as_corrupt() -> None:
    # Given members that compress badly (random digits), each about 1 MB of gzip: a member's end then falls
    # inside a read, with input left both unconsumed and unused
    import random

    rng = random.Random(7)
    texts = ["id,a,b\n"] + [
        "".join(f"{rng.randrange(10**12)},{rng.random()},{rng.randrange(10**9)}\n" for _ in range(45_000))
        for _ in range(3)
    ]
    data = b"".join(gzip.compress(t.encode(), mtime=0) for t in texts)
    # When it is read / Then it loads whole, as gunzip reads it
    _, rows, _, _ = read(data, chunk_rows=200_000)
    assert len(rows) == 135_000
    assert gzip.decompress(data) == "".join(texts).encode()


def test_gunzip_agrees_with_the_reader_on_a_multi_member_file(tmp_path: Any) -> None:
    # Given a file written as gzip's own tool appends members (gzip >>)
    import shutil
    import subprocess

    gzip_tool = shutil.which("gzip")
    assert gzip_tool, "the gzip tool is needed for this check"
    target = tmp_path / "data.csv.gz"
    for text in ("id,a,b\n" + _rows_text(3), _rows_text(4, 3)):
        with target.open("ab") as out:
            subprocess.run([gzip_tool, "-c"], input=text.encode(), stdout=out, check=True)
    # When gunzip and the reader both read it / Then they agree
    plain = subprocess.run([gzip_tool, "-dc", str(target)], capture_output=True, check=True).stdout
    _, rows, _, _ = read(target.read_bytes())
    _, plain_rows, _, _ = read(plain)
    assert rows == plain_rows and len(rows) == 7


@pytest.mark.parametrize(
    ("tail", "reason"),
    [(b"\x00" * 512, None), (b"not gzip at all", "corrupt_gzip"), (gzip.compress(b"1,2,3\n")[:-5], "truncated_gzip")],
    ids=["nul-padding", "trailing-garbage", "truncated-last-member"],
)
def test_what_follows_the_last_gzip_member(tail: bytes, reason: str | None) -> None:
    # Given a gzip file followed by NUL padding (tape blocks; gunzip ignores it), garbage, or a cut member
    data = gzip.compress(TEXT.encode()) + tail
    if reason is None:
        # Then padding is ignored
        assert read(data)[1] == read(TEXT.encode())[1]
    else:
        # and anything else is refused with its reason
        with pytest.raises(UnusableFileError) as err:
            read(data)
        assert err.value.reason == reason


MiB = 1 << 20


@pytest.mark.parametrize("byte", [0xE9, 0x80], ids=["e-acute", "euro-sign"])  # 2 and 3 bytes of UTF-8
@pytest.mark.parametrize(
    "at",
    [MiB - 14, MiB + 100, 2 * MiB - 1, 2 * MiB, 2 * MiB + 1, 3 * MiB - 1, 3 * MiB + 5],
    ids=["end-of-the-peek", "after-the-peek", "block-end", "block-boundary", "block-start", "read-end", "late"],
)
def test_a_windows_1252_byte_after_the_first_mebibyte_is_decoded_not_refused(at: int, byte: int) -> None:
    # Given a UTF-8 file (a valid 'ü' in its first MiB) with one Windows-1252 'é' (0xE9) or '€' (0x80) further
    # on, the byte falling at or next to the peek's end, a read or a parser-block boundary
    head = "id,a,b,note\n1,1,1,Zürich\n".encode()
    filler = b"".join(b"%d,2,3,x\n" % i for i in range(2, 400_000))
    prefix = b"%d,4,5," % 999_999
    cut = filler.rfind(b"\n", 0, at - len(head) - len(prefix)) + 1
    body = filler[:cut]
    pad = at - len(head) - len(body) - len(prefix)
    assert pad >= 0
    row = prefix + b"n" * pad + bytes([byte]) + b"t\xc3\xa9\n"  # the byte lands at offset `at`; then a UTF-8 'é'
    data = head + body + row + b"7,8,9,end\n"
    assert data[at] == byte
    # When it is read
    reader, rows, _, invalid = read(data, chunk_rows=500_000, required=("a", "b"))
    # Then every row loads, the stray byte is read as Windows-1252 and the UTF-8 around it stays UTF-8
    assert invalid == []
    assert reader.encoding == "utf-8"
    assert rows[0]["note"] == "Zürich"
    assert rows[-2]["note"] == "n" * pad + bytes([byte]).decode("cp1252") + "té"
    assert rows[-1]["note"] == "end"
    assert len(rows) == 1 + body.count(b"\n") + 2


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"\nid,a,b\n1,2,3\n4,5,6\n", [3, 4]),
        (b"\r\n  \r\nid,a,b\r\n1,2,3\r\n4,5,6\r\n", [4, 5]),
        (codecs.BOM_UTF8 + b"\n\nid,a,b\n1,2,3\n4,5,6\n", [4, 5]),
        ("\nid,a,b\n1,2,3\n4,5,6\n".encode("utf-16"), [3, 4]),
        (b"\nid;a;b\n1;2;3\n4;5;6\n", [3, 4]),
    ],
    ids=["one-blank-line", "blank-crlf-lines", "bom-then-blank", "utf16", "semicolon"],
)
def test_blank_lines_before_the_header_are_skipped_and_line_numbers_stay_the_files(
    data: bytes, lines: list[int]
) -> None:
    # Given a file whose header follows one or more blank lines
    # When it is read
    reader, rows, numbers, invalid = read(data)
    # Then the header is found, the rows load, and each keeps its line number in the file
    assert reader.columns == ["id", "a", "b"]
    assert rows == [{"id": "1", "a": "2", "b": "3"}, {"id": "4", "a": "5", "b": "6"}]
    assert numbers == lines and invalid == []


def test_invalid_records_after_blank_leading_lines_keep_their_file_line_numbers() -> None:
    # Given two blank lines, the header on line 3, and a short record on line 5
    _, _, numbers, invalid = read(b"\n\nid,a,b\n1,2,3\n4,5\n6,7,8\n")
    # Then the line numbers are the file's
    assert numbers == [4, 6]
    assert invalid == [(5, "expected 3 fields, got 2")]


@pytest.mark.parametrize(
    "data",
    [b"id,a,b,,\n1,2,3,,\n4,5,6,,\n", b"id,a,b,\n1,2,3,\n4,5,6,\n", b"id,a,b,, , \n1,2,3,, ,\t\n4,5,6,,,\n"],
    ids=["two", "one", "blank-with-spaces"],
)
def test_trailing_empty_header_fields_with_empty_cells_are_ignored(data: bytes) -> None:
    # Given an Excel export whose header ends with empty fields, and whose cells under them are all empty
    reader, rows, lines, invalid = read(data)
    # Then the unnamed columns are dropped and the file loads
    assert reader.columns == ["id", "a", "b"]
    assert rows == [{"id": "1", "a": "2", "b": "3"}, {"id": "4", "a": "5", "b": "6"}]
    assert lines == [2, 3] and invalid == []


def test_a_value_under_a_trailing_unnamed_header_field_is_a_clear_error() -> None:
    # Given a header ending with two empty fields, and a value under one of them on line 4
    data = b"id,a,b,,\n1,2,3,,\n4,5,6,,\n7,8,9,,17.99\n"
    # When it is read / Then it fails naming the column's position and the line, never the value
    with pytest.raises(UnusableFileError) as err:
        read(data, chunk_rows=1)
    assert err.value.reason == "unnamed_column"
    assert "column 5" in str(err.value) and "line 4" in str(err.value)
    assert "17.99" not in str(err.value)


@pytest.mark.parametrize(
    ("data", "reason", "leaked"),
    [
        (b"S1,M,17.99,NA,NA,10.38\nS2,B,20.57,NA,NA,17.77\n", "no_header", ["17.99", "NA", "S1"]),
        (b"S1,M,NA,NA\nS2,B,NA,NA\n", "no_header", ["S1", "NA"]),
        (b"S1,M,x,x\nS2,B,y,y\n", "missing_columns", ["S1", "x"]),
        (b"id,a,b,17.99,17.99\n1,2,3,4,5\n", "duplicate_columns", ["17.99"]),
        (b"id,a,b,NA,NA\n1,2,3,4,5\n", "duplicate_columns", ["NA"]),
    ],
    ids=[
        "headerless-with-repeated-na",
        "headerless-only-na",
        "headerless-only-words",
        "real-header-numeric-dupes",
        "real-header-na-dupes",
    ],
)
def test_no_reason_built_from_the_header_quotes_a_value(data: bytes, reason: str, leaked: list[str]) -> None:
    # Given a first line that is data (a repeated NA), or a header whose duplicate names look like values
    with pytest.raises(UnusableFileError) as err:
        read(data)
    # Then the file fails with the right reason, and the reason quotes none of those cells
    assert err.value.reason == reason
    assert not [cell for cell in leaked if cell in str(err.value)], str(err.value)


def test_duplicate_column_names_of_a_real_header_are_named() -> None:
    with pytest.raises(UnusableFileError, match="'a'") as err:
        read(b"id,a,b,a\n1,2,3,4\n")
    assert err.value.reason == "duplicate_columns"


@pytest.mark.parametrize(
    ("data", "mark"),
    [
        (b"id\ta\tb\n1\t17.99\t2019\n", "."),
        (b"id\ta\tb\n1\t17,99\t2019\n", ","),
        (b"id|a|b\n1|2,019|0.5\n", "."),
        (b"id;a;b\n1;2.019;0,5\n", ","),
        (b"id;a;b\n1;17,99;0.5\n", None),  # both marks: undecided
        (b"id;a;b\n1;2,019;2019\n", None),  # no number that tells
        (b'id,a,b\n1,"17,99",3\n', ","),
        (b"id,a,b\n1,1.5,3\n", "."),
        (b"id,a,b\n1,1.5,3\n2,1.25e3,3,\n", "."),
        (b"id;a;b;note\n1;2;3;1,5\n", None),  # only the required (measurement) columns count
    ],
)
def test_the_decimal_mark_is_decided_from_the_numbers_in_the_data(data: bytes, mark: str | None) -> None:
    # Given a file / When its header is read / Then its decimal mark is the one its unambiguous numbers use
    reader = CsvChunks(io.BytesIO(data), required=["a", "b"], chunk_rows=10, max_uncompressed_bytes=10**9)
    assert reader.decimal_mark == mark


def test_the_fallback_stream_hands_the_parser_full_blocks() -> None:
    # Given 1 MiB of UTF-8, then a note of 900,000 Windows-1252 '€' bytes: each grows to 3 bytes of UTF-8, so one
    # read's decoded text outgrows the parser's 2 MiB block. A short read of what is left over would become a
    # block of its own, and the 2.7 MB record would straddle three blocks (refused as record_too_large here, and
    # read again with 16 MiB blocks by the pipeline); with full reads it spans two
    head = "id,a,b,note\n1,1,1,Zürich\n".encode()
    filler = b"".join(b"%d,2,3,x\n" % i for i in range(2, 110_000))
    data = head + filler + b"0,4,5," + b"\x80" * 900_000 + b"\n" + filler
    assert len(head + filler) > MiB
    # When it is read / Then every row loads, the note whole
    _, rows, _, invalid = read(data, chunk_rows=500_000)
    assert invalid == []
    assert len(rows) == 2 + 2 * filler.count(b"\n")
    assert rows[1 + filler.count(b"\n")]["note"] == "€" * 900_000


def test_when_the_first_mebibyte_tells_no_decimal_mark_the_first_chunk_does() -> None:
    # Given a first record with a 2 MB note (the first MiB holds no complete record), then rows whose numbers use
    # decimal points, one of them shaped like a thousands group (8.589), and a short record
    data = b"id,a,b,note\n1,8.589,0.1184," + b"n" * (2 * MiB) + b"\n2,1.095,17.99,x\n3,4\n4,1.5,2.5,y\n"
    reader = CsvChunks(
        io.BytesIO(data), required=["a", "b"], chunk_rows=1, max_uncompressed_bytes=10**9, block_size=16 * MiB
    )
    assert reader.decimal_mark is None
    # When it is read chunk by chunk
    chunks = iter(reader)
    first = next(chunks)
    # Then the mark is decided from the first chunk, before anything is converted, and stays
    assert reader.decimal_mark == "."
    rest = list(chunks)
    assert reader.decimal_mark == "."
    # and record numbers and invalid records come out as for any file
    assert [int(n) for c in [first, *rest] for n in c.lines] == [2, 3, 5]
    assert [(r.line, r.reason) for c in [first, *rest] for r in c.invalid] == [(4, "expected 4 fields, got 2")]
    assert first.table.column("a").to_pylist() == ["8.589"]


def test_a_peek_that_ends_inside_a_quoted_field_still_reads_the_file() -> None:
    # Given a quoted note of 2 MB with line breaks in it, so the first MiB ends inside the quotes
    note = b'"' + b"line\n" * (2 * MiB // 5) + b'"'
    data = b"id,a,b,note\n1,8.589,0.1184," + note + b"\n2,1.095,17.99,x\n"
    reader = CsvChunks(
        io.BytesIO(data), required=["a", "b"], chunk_rows=1, max_uncompressed_bytes=10**9, block_size=16 * MiB
    )
    # When it is read / Then the rows come out with their record numbers, and the first chunk tells the mark
    chunks = list(reader)
    assert [int(n) for c in chunks for n in c.lines] == [2, 3]
    assert reader.decimal_mark == "."


# --- an undefined Windows-1252 byte anywhere in a Windows-1252 file


@pytest.mark.parametrize("byte", [0x81, 0x8D, 0x8F, 0x90, 0x9D])  # the five bytes Windows-1252 leaves undefined
@pytest.mark.parametrize("at", ["first-line", "after-the-peek"])
def test_an_undefined_windows_1252_byte_in_a_windows_1252_file_is_read_as_latin_1(byte: int, at: str) -> None:
    # Given a Windows-1252 export (a '€' 0x80 and an 'é' 0xE9 in its first rows, so it is not UTF-8) with one byte
    # Windows-1252 leaves undefined, in its first row or after its first MiB (12,000 rows)
    head = b"id,a,b,note\n1,1,1,caf\xe9 \x80\n"
    rows = [b"%d,2,3,x\n" % i for i in range(2, 12_000)]
    odd = b"0,4,5,n" + bytes([byte]) + b"t\n"
    data = (head + odd + b"".join(rows)) if at == "first-line" else (head + b"".join(rows) + odd)
    assert at == "first-line" or data.index(bytes([byte])) > MiB // 8
    # When it is read
    _, loaded, _, invalid = read(data, chunk_rows=5_000)
    # Then every row loads: the undefined byte is read as Latin-1 reads it, the others as Windows-1252
    assert invalid == []
    assert len(loaded) == 2 + len(rows)
    notes = [r["note"] for r in loaded]
    assert notes[0] == "café €"
    assert "n" + bytes([byte]).decode("latin-1") + "t" in notes


def test_an_undefined_windows_1252_byte_after_the_first_mebibyte_does_not_refuse_the_file() -> None:
    # Given a Windows-1252 file of about 1.5 MiB whose only undefined byte (0x90) comes after its first MiB
    head = b"id,a,b,note\n1,1,1,caf\xe9\n"
    rows = b"".join(b"%d,2,3,some free text\n" % i for i in range(2, 80_000))
    data = head + rows + b"0,4,5,n\x90t\n"
    assert data.index(b"\x90") > MiB
    # When it is read / Then it loads whole, the byte read as Latin-1 does (U+0090)
    reader, loaded, _, invalid = read(data, chunk_rows=100_000)
    assert reader.encoding == "cp1252" and invalid == []
    assert len(loaded) == 1 + rows.count(b"\n") + 1
    assert loaded[-1]["note"] == "n\u0090t" and loaded[0]["note"] == "café"


# --- a line of delimiters only before the header


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b",,\nid,a,b\n1,2,3\n4,5,6\n", [3, 4]),
        (b",,,,,,,,\r\nid,a,b\r\n1,2,3\r\n4,5,6\r\n", [3, 4]),
        (b";;\n\n;;\nid;a;b\n1;2;3\n4;5;6\n", [5, 6]),
        (b"\t\t\nid\ta\tb\n1\t2\t3\n4\t5\t6\n", [3, 4]),
        (b'"","",""\nid,a,b\n1,2,3\n4,5,6\n', [3, 4]),
        (codecs.BOM_UTF8 + b" , ,\nid,a,b\n1,2,3\n4,5,6\n", [3, 4]),
        (",,\nid,a,b\n1,2,3\n4,5,6\n".encode("utf-16"), [3, 4]),
    ],
    ids=["commas", "crlf-more-commas", "semicolons-and-blank", "tabs", "empty-quoted", "bom-spaces", "utf16"],
)
def test_a_line_of_delimiters_only_before_the_header_is_skipped_like_a_blank_line(
    data: bytes, lines: list[int]
) -> None:
    # Given a file whose first line is an empty spreadsheet row (delimiters only)
    # When it is read
    reader, rows, numbers, invalid = read(data)
    # Then the header after it is found, the rows load, and line numbers stay the file's
    assert reader.columns == ["id", "a", "b"]
    assert rows == [{"id": "1", "a": "2", "b": "3"}, {"id": "4", "a": "5", "b": "6"}]
    assert numbers == lines and invalid == []


# --- NUL bytes: binary or UTF-16 text is refused, a stray NUL in UTF-8 text is not


@pytest.mark.parametrize("row", [1, 20, 150], ids=["first-row", "row-20", "row-150"])
def test_a_stray_nul_in_a_utf8_file_is_judged_like_any_cell_wherever_it_is(row: int) -> None:
    # Given a UTF-8 file of 200 rows with one NUL byte in a free-text cell of one row (in the first 4 KiB, or well
    # after it)
    rows = [b"%d,%d.5,2,note of about forty characters %d\n" % (i, i, i) for i in range(200)]
    rows[row - 1] = b"%d,1.5,2,n\x00te\n" % (row - 1)
    data = b"id,a,b,note\n" + b"".join(rows)
    assert (data.index(b"\x00") < 4096) == (row < 50)
    # When it is read / Then the file is not refused: every row loads, the NUL kept in its cell
    _, loaded, lines, invalid = read(data)
    assert invalid == [] and len(loaded) == 200 and lines == list(range(2, 202))
    assert loaded[row - 1]["note"] == "n\x00te"


@pytest.mark.parametrize(
    "data",
    [
        "id,a,b\n1,2,3\n".encode("utf-16-le"),
        "id,a,b\n1,2,3\n".encode("utf-16-be"),
        "id,a,b\n1,2,3\n".encode("utf-32-le"),
        b"\x00\x01\x02binary\x00",
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
    ],
    ids=["utf16-le", "utf16-be", "utf32", "short-binary", "every-byte", "png"],
)
def test_nul_bytes_of_utf16_or_binary_data_still_refuse_the_file(data: bytes) -> None:
    with pytest.raises(UnusableFileError) as err:
        read(data)
    assert err.value.reason == "not_csv"


# --- invalid records are handed over in bounded chunks, as the file is read


@pytest.mark.parametrize("every", [1, 50], ids=["every-record-invalid", "one-valid-in-fifty"])
def test_invalid_records_are_handed_over_in_bounded_chunks_as_the_file_is_read(every: int) -> None:
    # Given 12,000 records of about 200 bytes (2.5 MB) with one field more than the header (all of them, or all
    # but one in fifty), read in small parser blocks
    note = b"n" * 200
    records = [b"%d,1,2,%s\n" % (i, note) if every == 1 or i % every else b"%d,1,2\n" % i for i in range(12_000)]
    data = b"id,a,b\n" + b"".join(records)
    source = io.BytesIO(data)
    reader = CsvChunks(source, required=["a", "b"], chunk_rows=500, max_uncompressed_bytes=10**9, block_size=4096)
    # When it is read chunk by chunk, noting what each chunk hands over and what the reader still holds
    handed, held, read_so_far = [], [], []
    for chunk in reader:
        handed.append(len(chunk.invalid))
        held.append(reader.invalid_held)
        read_so_far.append(source.tell())
    # Then every invalid record is handed over once, in chunks of at most chunk_rows (never all at the end)
    invalid_count = sum(1 for r in records if r.count(b",") == 3)
    assert sum(handed) == invalid_count
    assert max(handed) <= 500
    # and the reader never holds more than its design bound, whatever the file's size: the records waiting to be
    # judged and those judged but not yet handed over (a chunk's worth each), the parser's outbox, and the full
    # queue between the threads. How much of the queue is full at a given moment depends on thread timing (a busy
    # machine), the bound does not; it is a small fraction of the file's 12,000 invalid records.
    bound = 2 * 500 + (csv_reader._CHANNEL_ITEMS + 1) * csv_reader._OUTBOX_RECORDS
    assert max(held) <= bound < invalid_count // 3
    # and the first are handed over once the first MiB (the header peek) and a chunk's worth have been read
    assert read_so_far[0] < len(data) // 2


# --- a trailing delimiter on the header only, or on the data rows only


@pytest.mark.parametrize(
    "data",
    [
        b"id,a,b,\n1,2,3\n4,5,6\n",  # header only
        b"id,a,b\n1,2,3,\n4,5,6,\n",  # data rows only
        b"id,a,b\n1,2,3,\n4,5,6\n",  # some rows
        b"id,a,b,\n1,2,3,\n4,5,6\n",  # header and some rows
        b"id,a,b,\n1,2,3,,\n4,5,6\n",  # header, and one row with one more
        b"id,a,b,,\n1,2,3\n4,5,6,\n",  # header with two, rows with fewer
        b"id;a;b;\r\n1;2;3\r\n4;5;6\r\n",  # another delimiter, CRLF
        b'id,a,b,\n1,"2",3\n4,5,"6"\n',  # quoted fields
        b"id\ta\tb\t\n1\t2\t3\n4\t5\t6\n",  # tabs
    ],
    ids=[
        "header-only",
        "rows-only",
        "some-rows",
        "header-and-some-rows",
        "header-and-one-more",
        "two-on-header",
        "semicolon-crlf",
        "quoted",
        "tab",
    ],
)
def test_a_trailing_delimiter_on_the_header_or_the_rows_alone_loads_every_row(data: bytes) -> None:
    # Given a file whose header and rows disagree only by an empty field at their end
    # When it is read
    reader, rows, lines, invalid = read(data)
    # Then every row loads under the header's names, with its line number
    assert reader.columns == ["id", "a", "b"]
    assert rows == [{"id": "1", "a": "2", "b": "3"}, {"id": "4", "a": "5", "b": "6"}]
    assert lines == [2, 3] and invalid == []


def test_a_trailing_delimiter_on_the_header_only_loads_a_large_file() -> None:
    # Given the issue's case: a 31-column header with a trailing delimiter, 12,000 rows without one
    header = ",".join(["id", "a", "b"] + [f"c{i}" for i in range(28)]) + ","
    rows = "".join(",".join([str(i)] + ["1.5"] * 30) + "\n" for i in range(12_000))
    # When it is read / Then every row loads
    _, loaded, lines, invalid = read((header + "\n" + rows).encode(), chunk_rows=5_000)
    assert invalid == [] and len(loaded) == 12_000 and lines == list(range(2, 12_002))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"id,a,b\n1,2,3,\n4,5,6,17.99\n7,8,9\n", [(3, "expected 3 fields, got 4")]),
        (b"id,a,b,\n1,2,3\n4,5,6,,17.99\n7,8,9,\n", [(3, "expected 4 fields, got 5")]),
        (b"id,a,b\n1,2,3,,\n4,5,6\n", [(2, "expected 3 fields, got 5")]),  # two extra: not a trailing delimiter
        (b"id,a,b,\n1,2\n4,5,6\n", [(2, "expected 4 fields, got 2")]),
    ],
    ids=["value-after-the-header", "value-after-a-trailing-header-field", "two-extra-empty", "too-few"],
)
def test_a_value_beyond_the_header_is_still_rejected_never_dropped(
    data: bytes, expected: list[tuple[int, str]]
) -> None:
    # Given rows around the trailing-delimiter ones with a value (or an empty field too many, or too few fields)
    # When it is read / Then those rows are rejected with their line, the others load
    _, rows, lines, invalid = read(data)
    # (integer cells such as these may earn the decimal-comma hint after the count: see the hint's own test)
    assert [(line, reason.split(" (")[0]) for line, reason in invalid] == expected
    assert len(rows) == data.count(b"\n") - 2 and expected[0][0] not in lines


# --- a header repeated mid-file (cat of two exports)


def _cat(second_header: str, second_rows: list[str], delimiter: str = ",") -> bytes:
    first = "id,a,b,note\n1,1.1,1.2,x\n2,2.1,2.2,y\n"
    return (first + second_header + "\n" + "".join(r + "\n" for r in second_rows)).encode()


@pytest.mark.parametrize(
    ("header", "rows"),
    [
        ("id,a,b,note", ["3,3.1,3.2,z", "4,4.1,4.2,w"]),  # identical
        ("id,b,a,note", ["3,3.2,3.1,z", "4,4.2,4.1,w"]),  # two columns swapped
        ("note,b,id,a", ["z,3.2,3,3.1", "w,4.2,4,4.1"]),  # every column moved
        ("ID,B,A,Note", ["3,3.2,3.1,z", "4,4.2,4.1,w"]),  # another case spelling
        (" id , b , a , note ", ["3,3.2,3.1,z", "4,4.2,4.1,w"]),  # spaces
        ("id,b,a,note,", ["3,3.2,3.1,z", "4,4.2,4.1,w,"]),  # with a trailing delimiter
    ],
    ids=["identical", "swapped", "every-column-moved", "other-case", "spaces", "trailing-delimiter"],
)
def test_a_repeated_header_remaps_the_records_after_it(header: str, rows: list[str]) -> None:
    # Given two exports joined with cat: the second's header names the same columns, maybe in another order
    data = _cat(header, rows)
    # When it is read
    _, loaded, lines, invalid = read(data, chunk_rows=2)
    # Then every record's values are under their own column's name, the repeated header is not a data row (it is
    # skipped like a blank line: all its cells come out empty), and line numbers stay the file's
    data_rows = [r for r in loaded if any(r.values())]
    assert data_rows == [
        {"id": str(i), "a": f"{i}.1", "b": f"{i}.2", "note": n} for i, n in zip(range(1, 5), "xyzw", strict=True)
    ]
    assert [r for r in loaded if not any(r.values())] == [{"id": "", "a": "", "b": "", "note": ""}]
    assert lines == [2, 3, 4, 5, 6] and invalid == []


def test_the_issues_cat_of_two_exports_loads_each_value_under_its_own_column() -> None:
    # Given 300 rows, then the same export's header with 'mean radius' and 'mean texture' swapped, then 300 rows,
    # read in small parser blocks so that the repeated header falls mid-block
    features = ["mean radius", "mean texture", "mean area"]
    first = "sample_id," + ",".join(features) + "\n" + "".join(f"S{i},{i}.1,{i}.2,{i}.3\n" for i in range(300))
    swapped = "sample_id,Mean Texture,MEAN_RADIUS,mean area\n" + "".join(
        f"S{i},{i}.2,{i}.1,{i}.3\n" for i in range(300, 600)
    )
    reader = CsvChunks(
        io.BytesIO((first + swapped).encode()),
        required=features,
        chunk_rows=64,
        max_uncompressed_bytes=10**9,
        block_size=1024,
    )
    # When it is read
    chunks = list(reader)
    rows = [r for c in chunks for r in c.table.to_pylist() if r["sample_id"]]
    # Then every row has its own radius and texture
    assert len(rows) == 600 and all(c.invalid == [] for c in chunks)
    for row in rows:
        i = row["sample_id"][1:]
        assert (row["mean radius"], row["mean texture"], row["mean area"]) == (f"{i}.1", f"{i}.2", f"{i}.3")


@pytest.mark.parametrize(
    ("header", "rows", "reason"),
    [
        ("id,a,b,site", ["3,3.1,3.2,z", "4,4.1,4.2,w"], "columns differ"),  # another extra column, same width
        ("id,b,a", ["3,3.2,3.1", "4,4.2,4.1"], "columns differ"),  # no extra column: one field fewer
        ("id,b,a,note,site", ["3,3.2,3.1,z,q", "4,4.2,4.1,w,q"], "columns differ"),  # one more
        ("id;b;a;note", ["3;3,2;3,1;z", "4;4,2;4,1;w"], "another delimiter"),
    ],
    ids=["other-extra-column", "without-the-extra-column", "one-more-extra-column", "other-delimiter"],
)
def test_what_follows_a_repeated_header_of_other_columns_is_rejected_not_guessed(
    header: str, rows: list[str], reason: str
) -> None:
    # Given two exports joined with cat, the second of other columns or written with another delimiter
    data = _cat(header, rows) + b"5,5.1,5.2,v\n"
    # When it is read
    _, loaded, lines, invalid = read(data, chunk_rows=2)
    # Then the first export's rows load, and the repeated header and every record after it are rejected with a
    # reason that says why (never loaded under another column's name)
    assert [r["id"] for r in loaded] == ["1", "2"] and lines == [2, 3]
    assert [line for line, _ in invalid] == [4, 5, 6, 7]
    assert all(reason in text for _, text in invalid), invalid
    assert all("line 4" in text for _, text in invalid[1:]), invalid
    assert not any(v in text for _, text in invalid for v in ("3.1", "site", "z"))


def test_a_repeated_header_like_the_first_after_other_columns_loads_again() -> None:
    # Given a repeated header of other columns, then one like the file's first (reordered)
    data = _cat("id,a,b,site", ["3,3.1,3.2,z"]) + b"note,b,a,id\nv,5.2,5.1,5\n"
    # When it is read / Then the records after the second repeated header load again, remapped
    _, loaded, lines, invalid = read(data)
    assert [line for line, _ in invalid] == [4, 5]
    assert [r for r in loaded if r["id"] == "5"] == [{"id": "5", "a": "5.1", "b": "5.2", "note": "v"}]
    assert lines == [2, 3, 6, 7]


def test_lines_of_delimiters_only_between_rows_are_blank_whatever_their_number_of_delimiters() -> None:
    # Given empty spreadsheet rows between the records, of as many delimiters as the header or not
    data = b"id,a,b\n1,2,3\n,,\n,,,,,\n,\n4,5,6\n"
    # When it is read / Then they are blank rows (skipped and counted as such later), none rejected
    _, rows, lines, invalid = read(data)
    assert invalid == [] and lines == [2, 3, 4, 5, 6]
    assert [r["id"] for r in rows] == ["1", "", "", "", "4"]


@pytest.mark.parametrize(
    ("header", "row"), [("id,a,b,", "{i},1.5,2.5"), ("id,a,b", "{i},1.5,2.5,"), ("id,a,b,,", "{i},1.5,2.5")]
)
def test_when_most_rows_disagree_with_the_header_by_a_trailing_field_the_parser_reads_them_itself(
    header: str, row: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a header with a trailing delimiter and rows without (or the other way round): the width the rows of
    # the first MiB have is the one the parser is told, so that the rows are not each split again in Python
    data = (header + "\n" + "".join(row.format(i=i) + "\n" for i in range(5000))).encode()
    split = []
    real = csv_reader._split
    monkeypatch.setattr(csv_reader, "_split", lambda text, d: split.append(text) or real(text, d))
    # When it is read
    _, rows, lines, invalid = read(data, chunk_rows=2000)
    # Then every row loads, and none went through the slow path
    assert invalid == [] and len(rows) == 5000 and lines == list(range(2, 5002))
    assert rows[0] == {"id": "0", "a": "1.5", "b": "2.5"}
    assert split == []


@pytest.mark.parametrize(
    ("record", "hinted"),
    [
        ("1,17,99,2", True),  # 17,99: an unquoted decimal comma
        ("1,17,99,2,5", True),  # two of them, two surplus fields
        ("1,17.5,2.5,9", False),  # the surplus field follows no integer
        ("1,17,99,x", True),
        ("1,x,y,z", False),  # text: no number split in two
    ],
)
def test_surplus_fields_name_decimal_commas_only_when_they_explain_them(record: str, hinted: bool) -> None:
    # Given a ','-delimited file whose record has more fields than its header
    data = f"id,a,b\n{record}\n2,3,4\n".encode()
    # When it is read
    _, rows, _, invalid = read(data)
    # Then it is rejected with the count of fields, and with the decimal-comma hint only when integer + digits pairs
    # can account for every surplus field; the good row loads
    [(line, reason)] = invalid
    assert line == 2
    assert reason.startswith(f"expected 3 fields, got {record.count(',') + 1}")
    assert (csv_reader.DECIMAL_COMMA_HINT in reason) is hinted
    assert rows == [{"id": "2", "a": "3", "b": "4"}]


def test_the_decimal_comma_hint_is_for_comma_files_only() -> None:
    # Given a ';' file with a record of one field too many / When read / Then no decimal-comma hint (';' files
    # may write decimal commas freely)
    _, _, _, invalid = read(b"id;a;b\n1;17;99;2\n2;3;4\n")
    assert invalid == [(2, "expected 3 fields, got 4")]

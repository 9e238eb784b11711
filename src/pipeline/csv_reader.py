"""Stream a CSV (plain or gzip) into bounded chunks of text columns with pyarrow's streaming reader.

Where a row is parsed: ``CsvChunks``. Nothing here converts values; every column stays text so that the
conversion step can give each bad cell its own reason (see features.py).

Handled here: gzip by magic bytes (whatever the name), of one member or many (``cat a.gz b.gz``), a gzip bomb
(stops at MAX_UNCOMPRESSED_BYTES), UTF-8 with or without BOM (a stray Windows-1252 byte in it is read as
Windows-1252), UTF-16 with BOM, Windows-1252 / Latin-1 (when the file does not start as UTF-8), CRLF, quoted
fields with embedded newlines, `,` `;` tab and `|` delimiters (from the header line), blank lines before the
header, header names with surrounding spaces, in another case or with other separators (``Mean Radius``,
``MEAN_RADIUS``: see pipeline.header), empty trailing header fields (Excel's ``a,b,c,,``), rows with too few or
too many fields (rejected one by one with their record number), blank lines (skipped), records longer than the
parser's block and files that are not CSV at all (one clear reason each). The file's decimal mark is
decided here, from the numbers in its first MiB (see pipeline.features). A reason never quotes the file's
data: pyarrow's messages are cut before the row text, and header cells that look like values are not quoted.
"""

from __future__ import annotations

import codecs
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.errors import SourceUnavailableError, UnusableFileError
from pipeline.features import decimal_mark, decimal_mark_counts
from pipeline.header import ambiguity, match_features, missing_reason
from pipeline.settings import HeaderMatching

GZIP_MAGIC = b"\x1f\x8b"
DELIMITERS = (",", ";", "\t", "|")
HEADER_PEEK_BYTES = 1 << 20
# pyarrow parses in blocks, and a block must hold the longest record. Measured (docs/performance.md): with 16 MiB
# blocks the streaming reader's peak memory grows with the file (+150 % from 500k to 5M rows); with 2 MiB blocks
# it stays flat. So files are read with small blocks, and only a file with a record longer than that is read
# again with LARGE_BLOCK_SIZE (see pipeline.process).
DEFAULT_BLOCK_SIZE = 2 << 20
LARGE_BLOCK_SIZE = 16 << 20


@dataclass(frozen=True)
class InvalidRecord:
    """A record pyarrow could not split into the header's number of fields."""

    line: int  # CSV record number, header = 1
    text: str
    reason: str


@dataclass
class TextChunk:
    """A chunk of parsed records: every column as text, plus each record's number (header = 1)."""

    table: pa.Table
    lines: npt.NDArray[np.int64]
    invalid: list[InvalidRecord] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


class _LimitedDecompressor(io.RawIOBase):
    """Streams gzip members out of ``raw``, refusing to produce more than ``limit`` bytes (gzip bomb guard)."""

    def __init__(self, raw: io.RawIOBase, limit: int, read_size: int = 1 << 20) -> None:
        self._raw = raw
        self._limit = limit
        self._read_size = read_size
        self._decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._eof = False
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending and not self._eof:
            data = self._next_input()
            if data is None:
                break
            try:
                self._pending = self._decomp.decompress(data, len(view))
            except zlib.error as exc:
                raise UnusableFileError(f"gzip data is corrupt: {exc}", reason="corrupt_gzip") from exc
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.produced += n
        if self.produced > self._limit:
            raise UnusableFileError(
                f"decompressed size exceeds the limit of {self._limit} bytes (MAX_UNCOMPRESSED_BYTES); "
                "the file is too large or a compression bomb",
                reason="decompressed_too_large",
            )
        return n

    def _next_input(self) -> bytes | None:
        """The compressed bytes to feed next, or None at the clean end of the last member.

        A file may hold several gzip members one after the other (``cat a.gz b.gz``, ``gzip >>``, bgzip); gunzip
        reads them all, and so does this. At a member's end, the bytes read past it are in ``unused_data`` only
        (``unconsumed_tail`` is the current member's input not yet fed for lack of output room): the next member
        starts there. NUL bytes after a member are padding, as gunzip and Python's gzip module treat them.
        """
        if not self._decomp.eof:
            if self._decomp.unconsumed_tail:
                return self._decomp.unconsumed_tail
            data = self._raw.read(self._read_size) or b""
            if not data:
                raise UnusableFileError(
                    "gzip data is truncated (the stream ended before the end of the compressed data)",
                    reason="truncated_gzip",
                )
            return data
        rest = self._decomp.unused_data.lstrip(b"\x00")
        while not rest:
            data = self._raw.read(self._read_size) or b""
            if not data:
                self._eof = True
                return None
            rest = data.lstrip(b"\x00")
        self._decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return rest


class _TranscodedToUtf8(io.RawIOBase):
    """``raw`` decoded from ``encoding`` and handed on as UTF-8; a byte the codec cannot decode is read as
    Windows-1252, else (its five undefined bytes) as Latin-1, so every byte decodes, anywhere in the file.

    The encoding is chosen from the first MiB, but a file may hold a byte further on that the choice does not
    cover: a Windows-1252 byte in a UTF-8 export (one pasted name in a free-text column), or one of the five bytes
    Windows-1252 leaves undefined (0x81 0x8D 0x8F 0x90 0x9D) in a Windows-1252 one. Refusing the whole file for it
    would lose every row, so the stream falls back for that byte alone. ASCII blocks, the usual case, are passed on
    as they are.
    """

    source_encoding = "utf-8"

    def __init__(self, raw: io.RawIOBase, read_size: int = 1) -> None:
        self._raw = raw
        self._read_size = read_size  # the least read from ``raw`` at a time
        self._decoder = codecs.getincrementaldecoder(self.source_encoding)(errors=_CP1252_FALLBACK)
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def transcode(self, data: bytes) -> bytes:
        """``data`` (the bytes before those ``raw`` holds, e.g. the peeked head) as the stream would give them."""
        return data if data.isascii() else self._decoder.decode(data).encode("utf-8")

    def readinto(self, buffer: Any) -> int:
        # Fills the buffer (short only at the end): pyarrow takes each read as one parser block, and a short one
        # (a few bytes left over after a byte grew to three) would make a record straddle three blocks.
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if not self._pending:
                if self._done:
                    break
                self._pending = self._next_block(len(view) - filled)
                continue
            n = min(len(view) - filled, len(self._pending))
            view[filled : filled + n] = self._pending[:n]
            self._pending = self._pending[n:]
            filled += n
        return filled

    def _next_block(self, wanted: int) -> bytes:
        data = self._raw.read(max(wanted, self._read_size)) or b""
        if not data:
            self._done = True
            return self._decoder.decode(b"", final=True).encode("utf-8")
        if data.isascii() and not self._decoder.getstate()[0]:
            return data
        return self._decoder.decode(data).encode("utf-8")


class _Utf8WithFallback(_TranscodedToUtf8):
    """UTF-8 passed through; a byte that is not part of valid UTF-8 is read as Windows-1252 (else Latin-1)."""

    source_encoding = "utf-8"


class _Cp1252AsUtf8(_TranscodedToUtf8):
    """Windows-1252 as UTF-8; its five undefined bytes are read as Latin-1 reads them (U+0081, U+0090, ...)."""

    source_encoding = "cp1252"


def _cp1252_byte(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    byte = exc.object[exc.start : exc.start + 1]
    try:
        return byte.decode("cp1252"), exc.start + 1
    except UnicodeDecodeError:  # the five bytes Windows-1252 leaves undefined
        return byte.decode("latin-1"), exc.start + 1


_CP1252_FALLBACK = "pipeline.cp1252_fallback"
codecs.register_error(_CP1252_FALLBACK, _cp1252_byte)
# The encodings read through a transcoding stream (pyarrow then reads UTF-8).
_TRANSCODED: dict[str, type[_TranscodedToUtf8]] = {"utf-8": _Utf8WithFallback, "cp1252": _Cp1252AsUtf8}


class _Prefixed(io.RawIOBase):
    """``prefix`` followed by the rest of ``raw``: lets us peek at the header without buffering the file."""

    def __init__(self, prefix: bytes, raw: io.RawIOBase) -> None:
        self._prefix = prefix
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._raw.readinto(view)


def _read_up_to(raw: io.RawIOBase, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        data = raw.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _detect_encoding(head: bytes, *, whole_file: bool) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"  # pyarrow skips the UTF-8 BOM itself
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _looks_binary(head[:NUL_WINDOW_BYTES]):
        raise UnusableFileError(
            "the file holds NUL bytes among other control bytes: it is binary, or UTF-16/32 text without a "
            "byte-order mark",
            reason="not_csv",
        )
    try:
        codecs.getincrementaldecoder("utf-8")(errors="strict").decode(head, final=whole_file)
    except UnicodeDecodeError:
        # UTF-8 with a stray byte or two (valid multi-byte sequences show it is UTF-8): the stream reads each
        # stray byte as Windows-1252. Else an 8-bit export (Excel on Windows writes Windows-1252; Latin-1 text
        # reads the same but for C1 control codes, which text does not use), read as Windows-1252 with its five
        # undefined bytes read as Latin-1 reads them, wherever they are in the file (see _TranscodedToUtf8).
        if _UTF8_MULTIBYTE.search(head):
            return "utf-8"
        return "cp1252"
    return "utf-8"


# NUL bytes are judged in the file's first 4 KiB. UTF-16/32 text without a byte-order mark has a NUL in every
# other (or 3 of 4) bytes, and binary data holds NULs among other control bytes (random bytes: about one byte in
# ten is a C0 control); a text file may still hold a stray NUL (a padded cell), which is then one more character
# of its cell, as it is anywhere else in the file.
NUL_WINDOW_BYTES = 4096
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r") + b"\x7f"


def _looks_binary(window: bytes) -> bool:
    if b"\x00" not in window:
        return False
    controls = sum(window.count(bytes([b])) for b in _CONTROL_BYTES)
    return controls > max(2, len(window) // 100)


_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _decode_head(head: bytes, encoding: str, *, whole_file: bool) -> str:
    """Decode the peeked start of the file; a character cut by the peek's end is left for later.

    UTF-8 and Windows-1252 are decoded as the stream will be (``_TranscodedToUtf8``): a byte the codec cannot
    decode as Windows-1252, else Latin-1.
    """
    errors = _CP1252_FALLBACK if encoding in _TRANSCODED else "strict"
    return codecs.getincrementaldecoder(encoding)(errors=errors).decode(head, final=whole_file)


def _line_break(encoding: str, head: bytes) -> bytes:
    if encoding == "utf-16":
        return b"\n\x00" if head.startswith(codecs.BOM_UTF16_LE) else b"\x00\n"
    return b"\n"


def _first_line(text: str) -> str:
    return text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""


def _detect_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


class CsvChunks:
    """Iterate a CSV stream as ``TextChunk``s of at most ``chunk_rows`` records.

    ``source`` is the raw (possibly compressed) byte stream. ``required`` are column names (the model's
    features) that must be in the header, matched as ``header_matching`` says (see pipeline.header). The header
    is parsed and validated on construction, so a file that cannot be used fails before anything is staged.
    ``columns`` are the header's names with each matched one renamed to its required name (``Mean Radius`` ->
    ``mean radius``); the chunks' tables carry those names, and other columns keep the file's.
    """

    def __init__(
        self,
        source: io.RawIOBase,
        *,
        required: list[str],
        chunk_rows: int,
        max_uncompressed_bytes: int,
        block_size: int = DEFAULT_BLOCK_SIZE,
        header_matching: HeaderMatching = HeaderMatching.NORMALISED,
    ) -> None:
        self.chunk_rows = chunk_rows
        magic = _read_up_to(source, 2)
        stream: io.RawIOBase = _Prefixed(magic, source)
        self.compressed = magic == GZIP_MAGIC
        if self.compressed:
            stream = _LimitedDecompressor(stream, max_uncompressed_bytes)
        head = _read_up_to(stream, HEADER_PEEK_BYTES)
        if not head.strip(b'\xef\xbb\xbf\r\n\t ,;|"'):
            raise UnusableFileError("the file is empty (no header, no rows)", reason="empty_file")
        whole_file = len(head) < HEADER_PEEK_BYTES
        self.encoding = _detect_encoding(head, whole_file=whole_file)
        try:
            head_text = _decode_head(head, self.encoding, whole_file=whole_file)
        except UnicodeDecodeError as exc:
            raise UnusableFileError(f"cannot decode the file as {self.encoding}", reason="undecodable") from exc
        # Blank lines before the header are skipped, and counted like blank lines between rows: record numbers
        # stay the file's line numbers.
        head, head_text, self._skipped_lines = _skip_leading_blank_lines(head, head_text, self.encoding)
        self.delimiter = _detect_delimiter(_first_line(head_text))
        if whole_file and "\n" not in head_text and "\r" not in head_text:
            head += _line_break(self.encoding, head)  # pyarrow cannot read a lone header without its line break
        if self.encoding in _TRANSCODED:
            # The head stays one read of its own, as for other encodings, and the rest comes in whole blocks.
            fallback = _TRANSCODED[self.encoding](stream)
            head, stream = fallback.transcode(head), fallback
        self._stream: io.RawIOBase = _Prefixed(head, stream)
        self._invalid: list[InvalidRecord] = []
        self._block_size = block_size
        names, sample = self._read_sample(head_text, whole_file=whole_file)
        self._reader = self._open(block_size, names)
        # Names as the header spells them, less surrounding spaces (' mean radius ' is 'mean radius').
        header = [str(n).strip() for n in self._reader.schema.names]
        # Excel writes 'a,b,c,,' when cells right of the table were ever touched: trailing fields without a
        # name are dropped, as long as every cell under them is empty (checked chunk by chunk).
        named = len(header) - _trailing_empty(header)
        self.columns: list[str] = header[:named] if named else header
        self.columns = self._match_header(required, strict=header_matching is HeaderMatching.STRICT)
        if sample is not None:
            sample = sample.rename_columns(self.columns + sample.column_names[len(self.columns) :])
        # The file's decimal mark, from the numbers in its first MiB (see pipeline.features.decimal_mark); when
        # those hold no number that tells (say a 10 MB first record), from the first chunk's, before it is used.
        self._required = required
        self._mark_told = False
        self.decimal_mark: str | None = None
        if sample is not None:
            self._decide_decimal_mark(sample)
        self._next_line = 2 + self._skipped_lines
        self._invalid_seen = 0

    def _decide_decimal_mark(self, table: pa.Table) -> None:
        point, comma = decimal_mark_counts(table, self._required)
        self._mark_told = point + comma > 0
        self.decimal_mark = decimal_mark(point, comma)

    def _open(self, block_size: int, names: list[str]) -> Any:
        # Every column as text: the header names come from the peeked head, so the real reader can be told.
        convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        return self._call_arrow(
            lambda: pacsv.open_csv(
                self._stream,
                read_options=pacsv.ReadOptions(
                    use_threads=False,
                    block_size=block_size,
                    encoding="utf-8" if self.encoding in _TRANSCODED else self.encoding,
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.delimiter,
                    newlines_in_values=True,
                    ignore_empty_lines=False,
                    invalid_row_handler=self._on_invalid_row,
                ),
                convert_options=convert,
            )
        )

    def _read_sample(self, head_text: str, *, whole_file: bool) -> tuple[list[str], pa.Table | None]:
        """The header names, and the peeked head's records as text (None if they cannot be parsed)."""
        cut = len(head_text) if whole_file else head_text.rfind("\n")
        sample = (head_text[: cut + 1] if cut > 0 else head_text).rstrip("\r\n").encode("utf-8") + b"\n"
        parse = pacsv.ParseOptions(
            delimiter=self.delimiter, newlines_in_values=True, invalid_row_handler=lambda _row: "skip"
        )
        read = pacsv.ReadOptions(block_size=len(sample) + 1)
        try:
            reader = pacsv.open_csv(
                io.BytesIO(sample),
                read_options=read,
                parse_options=parse,
                convert_options=pacsv.ConvertOptions(strings_can_be_null=False),
            )
        except pa.ArrowInvalid as exc:
            raise UnusableFileError(f"the header cannot be parsed as CSV: {_short(exc)}", reason="not_csv") from exc
        names = [str(n) for n in reader.schema.names]
        try:
            table = pacsv.read_csv(
                io.BytesIO(sample),
                read_options=read,
                parse_options=parse,
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. the peek ends inside a quoted field
            return names, None
        return names, table.rename_columns([n.strip() for n in names])

    def _match_header(self, required: list[str], *, strict: bool) -> list[str]:
        """The header's names with each matched column renamed to its required name; raises if it cannot be used."""
        names = self.columns
        matches = match_features(names, required, strict=strict)
        # A reason built from the header may quote only a real header's names, never a data row's values: so
        # the no-header checks come first, and the duplicate check names a column by its position whenever its
        # name looks like a value (a number, NA).
        present = any(matches)
        if not present and any(_looks_like_a_value(n) for n in names):
            raise UnusableFileError(
                "the file has no header: its first line holds values (numbers or missing-value markers), not column "
                "names",
                reason="no_header",
            )
        matched = {feature for features in matches for feature in features}
        missing = [r for r in required if r not in matched]
        if not present:
            raise UnusableFileError(missing_reason(names, matches, missing, strict=strict), reason="missing_columns")
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1}, key=names.index)
            shown = [
                f"{n!r}"
                if n and not _looks_like_a_value(n)
                else f"an unnamed or value-like name (columns "
                f"{', '.join(str(i + 1) for i, m in enumerate(names) if m == n)})"
                for n in dupes
            ]
            raise UnusableFileError(
                f"duplicate column names in the header: {', '.join(shown)}", reason="duplicate_columns"
            )
        unclear = ambiguity(names, matches)
        if unclear is not None:
            raise UnusableFileError(unclear, reason="ambiguous_columns")
        if missing:
            raise UnusableFileError(missing_reason(names, matches, missing, strict=strict), reason="missing_columns")
        # One column per feature, one feature per column: each matched column takes its feature's name. The
        # others keep theirs, which no feature has (a column named like a feature matches it).
        return [features[0] if features else name for name, features in zip(names, matches, strict=True)]

    def _on_invalid_row(self, row: Any) -> str:
        number = int(row.number) + self._skipped_lines if row.number is not None else -1
        self._invalid.append(
            InvalidRecord(
                line=number,
                text=str(row.text),
                reason=f"expected {row.expected_columns} fields, got {row.actual_columns}",
            )
        )
        return "skip"

    def _call_arrow(self, fn: Any) -> Any:
        try:
            return fn()
        except (UnusableFileError, SourceUnavailableError):
            raise
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
            # A typed error raised inside our stream classes may come back wrapped by pyarrow.
            cause = _typed_cause(exc) or _typed_cause(exc.__context__)
            if cause is not None:
                raise cause from exc
            if "straddl" in str(exc):
                raise UnusableFileError(
                    f"a record is longer than the parser's block of {self._block_size} bytes; split the file or "
                    "shorten the record",
                    reason="record_too_large",
                ) from exc
            undecodable = "UTF8" in str(exc) or isinstance(exc, UnicodeDecodeError)
            raise UnusableFileError(
                f"cannot decode the file as {self.encoding}: {_short(exc)}"
                if undecodable
                else f"the file cannot be parsed as CSV: {_short(exc)}",
                reason="undecodable" if undecodable else "not_csv",
            ) from exc
        except OSError as exc:
            cause = _typed_cause(exc) or _typed_cause(exc.__context__)
            if cause is not None:
                raise cause from exc
            raise

    def __iter__(self) -> Iterator[TextChunk]:
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        while True:
            batch = self._call_arrow(self._read_next)
            if batch is not None and batch.num_rows:
                pending.append(batch)
                pending_rows += batch.num_rows
            final = batch is None
            if pending and (pending_rows >= self.chunk_rows or final):
                # Whole chunks of exactly chunk_rows; the rows left over wait for the next blocks (only the last
                # chunk of the file is short). Each chunk costs the warehouse one staging write, so a small
                # remainder chunk after every full one would nearly double the writes.
                table = pa.Table.from_batches(pending)
                whole = table.num_rows if final else table.num_rows - table.num_rows % self.chunk_rows
                rest = table.slice(whole)
                pending, pending_rows = rest.to_batches(), rest.num_rows
                for start in range(0, whole, self.chunk_rows):
                    last = start + self.chunk_rows >= whole
                    yield self._chunk(table.slice(start, min(self.chunk_rows, whole - start)), final=final and last)
            if batch is None:
                if self._invalid_seen < len(self._invalid):  # invalid records after the last good one
                    yield TextChunk(table=_empty(self.columns), lines=np.empty(0, np.int64), invalid=self._take())
                return

    def _read_next(self) -> pa.RecordBatch | None:
        try:
            return self._reader.read_next_batch()
        except StopIteration:
            return None

    def _take(self) -> list[InvalidRecord]:
        taken = self._invalid[self._invalid_seen :]
        self._invalid_seen = len(self._invalid)
        return taken

    def _chunk(self, table: pa.Table, *, final: bool) -> TextChunk:
        named = len(self.columns)
        unnamed = table.columns[named:]
        # Record numbers: valid and invalid records together are numbered 2, 3, ... in file order, and pyarrow
        # reports each invalid one's number. A block is parsed (and its invalid rows reported) before its batch
        # is returned, so the valid records take the numbers the invalid ones before them left free.
        n = table.num_rows
        invalid_numbers = np.array(sorted(r.line for r in self._invalid), dtype=np.int64)
        lines = np.empty(n, dtype=np.int64)
        filled = 0
        cursor = self._next_line
        while filled < n:
            span = np.arange(cursor, cursor + (n - filled) + len(invalid_numbers), dtype=np.int64)
            free = span[~np.isin(span, invalid_numbers)][: n - filled]
            lines[filled : filled + len(free)] = free
            filled += len(free)
            cursor = int(span[-1]) + 1
        for k, column in enumerate(unnamed):
            valued = np.flatnonzero(pc.not_equal(pc.utf8_trim_whitespace(column), "").to_numpy(zero_copy_only=False))
            if valued.size:
                raise UnusableFileError(
                    f"column {named + k + 1} has no name in the header but holds a value on line "
                    f"{int(lines[valued[0]])}; name it in the header, or remove the values",
                    reason="unnamed_column",
                )
        table = table.select(list(range(named))).rename_columns(self.columns)
        if not self._mark_told:
            self._decide_decimal_mark(table)
            self._mark_told = True  # decided once for the whole file
        self._next_line = int(lines[-1]) + 1 if n else self._next_line
        done = [r for r in self._invalid[self._invalid_seen :] if r.line < self._next_line or final]
        self._invalid_seen += len(done)
        return TextChunk(table=table, lines=lines, invalid=done)


def _empty(columns: list[str]) -> pa.Table:
    return pa.table({c: pa.array([], pa.string()) for c in columns})


# Spellings of a missing measurement: a header cell that reads like this is a data row's value.
_MISSING_MARKERS = frozenset({"na", "n/a", "nan", "null", "none", "-", "?", "#n/a"})


def _looks_like_a_value(text: str) -> bool:
    text = text.strip()
    if text.lower() in _MISSING_MARKERS:
        return True
    try:
        float(text.replace(",", "."))
    except ValueError:
        return bool(re.fullmatch(r"[+-]?[\d.,]+([eE][+-]?\d+)?", text)) and any(c.isdigit() for c in text)
    return True


def _trailing_empty(names: list[str]) -> int:
    count = 0
    for name in reversed(names):
        if name:
            break
        count += 1
    return count


# Blank lines, and lines of delimiters only (an empty spreadsheet row: ',,,,', '"","",""'), with spaces.
_LEADING_BLANK_LINES = re.compile(r'(?:(?:[ \t,;|]|"")*(?:\r\n|\r|\n))+')


def _skip_leading_blank_lines(head: bytes, head_text: str, encoding: str) -> tuple[bytes, str, int]:
    """``head`` and its text without the blank lines (or lines of delimiters only) before the header, and how
    many there were."""
    bom = "\ufeff" if head_text.startswith("\ufeff") else ""
    match = _LEADING_BLANK_LINES.match(head_text, len(bom))
    if match is None:
        return head, head_text, 0
    blank = match.group(0)
    count = len(blank.splitlines())
    if encoding == "utf-16":  # the BOM says which byte order; keep it in front of the rest
        bom_bytes, codec = head[:2], ("utf-16-le" if head.startswith(codecs.BOM_UTF16_LE) else "utf-16-be")
        return bom_bytes + head[2 + len(blank.encode(codec)) :], bom + head_text[match.end() :], count
    bom_bytes = head[: len(bom.encode(encoding))]
    return bom_bytes + head[len(bom_bytes) + len(blank.encode(encoding)) :], bom + head_text[match.end() :], count


def _typed_cause(exc: BaseException | None) -> Exception | None:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (UnusableFileError, SourceUnavailableError)):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


# pyarrow quotes the offending row after "Expected N columns, got M: "; a reason must never carry data.
_ROW_TEXT = re.compile(r"(Expected \d+ columns, got \d+)\s*:.*", re.DOTALL)


def _short(exc: BaseException) -> str:
    text = _ROW_TEXT.sub(r"\1", str(exc))
    text = text.splitlines()[0] if text else type(exc).__name__
    return text[:200]

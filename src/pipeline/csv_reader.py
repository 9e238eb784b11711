"""Stream a CSV (plain or gzip) into bounded chunks of text columns with pyarrow's streaming reader.

Where a row is parsed: ``CsvChunks``. Nothing here converts values; every column stays text so that the
conversion step can give each bad cell its own reason (see features.py).

Handled here: gzip by magic bytes (whatever the name), of one member or many (``cat a.gz b.gz``), a gzip bomb
(stops at MAX_UNCOMPRESSED_BYTES), UTF-8 with or without BOM (a stray Windows-1252 byte in it is read as
Windows-1252), UTF-16 with BOM, Windows-1252 / Latin-1 (when the file does not start as UTF-8; the five bytes
Windows-1252 leaves undefined are read as Latin-1, anywhere), NUL bytes (binary or UTF-16/32 without BOM is
refused, a stray NUL in text is one more character), CRLF, quoted fields with embedded newlines, `,` `;` tab and
`|` delimiters (from the header line), blank lines or lines of delimiters only before the header, header names
with surrounding spaces, in another case or with other separators (``Mean Radius``, ``MEAN_RADIUS``: see
pipeline.header), empty trailing header fields (Excel's ``a,b,c,,``), a trailing delimiter on the header or on
the rows alone, a header repeated mid-file (``cat`` of two exports: remapped, or what follows it rejected),
rows with too few or too many fields (rejected one by one with their record number, handed over in bounded
chunks as the file is read), blank lines (skipped), records longer than the parser's block and files that are
not CSV at all (one clear reason each). The file's decimal mark is decided here, from the numbers in its first
MiB (see pipeline.features). A reason never quotes the file's data: pyarrow's messages are cut before the row
text, and header cells that look like values are not quoted.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import queue
import re
import threading
import zlib
from collections import Counter, deque
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
from pipeline.header import ambiguity, header_words, match_features, missing_reason
from pipeline.markers import is_missing_value_marker
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
# Batches and invalid records waiting between the parser thread and the consumer (see CsvChunks.__iter__).
_CHANNEL_ITEMS = 8
_OUTBOX_RECORDS = 256  # invalid records sent together (one hand-over each costs two thread switches)


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
        # Records pyarrow could not split into the header's number of fields, as reported (number, text, fields):
        # judged once the valid records around them are numbered (see _settle). The invalid ones then wait in
        # _invalid to be handed over, at most chunk_rows with each chunk.
        self._reported: deque[tuple[int, str, int]] = deque()
        self._invalid: deque[InvalidRecord] = deque()
        self._channel: queue.Queue[tuple[str, Any]] | None = None  # from the parser thread, while iterating
        self._closed = False
        self._outbox: list[tuple[int, str, int]] = []  # the parser thread's invalid records, sent a few at a time
        self._turns = threading.Semaphore(0)  # batches the parser thread may read ahead of the consumer
        self._block_size = block_size
        self._sample_widths: Counter[int] = Counter()
        names, sample = self._read_sample(head_text, whole_file=whole_file)
        # The streaming reader is opened when the chunks are read (on the parser thread, see __iter__): opening
        # parses on to the first valid record, and the invalid ones before it must be handed on meanwhile.
        self._names = names
        # Names as the header spells them, less surrounding spaces (' mean radius ' is 'mean radius').
        header = [n.strip() for n in names]
        # Excel writes 'a,b,c,,' when cells right of the table were ever touched: trailing fields without a
        # name are dropped, as long as every cell under them is empty (checked chunk by chunk).
        named = len(header) - _trailing_empty(header)
        self.columns: list[str] = header[:named] if named else header
        self._strict = header_matching is HeaderMatching.STRICT
        self._required = required
        self.columns = self._match_header(required, strict=self._strict)
        self._width = len(header)  # fields per record, as the header has them (with its trailing empty ones)
        self._parse_width = self._width_to_parse(sample.num_rows if sample is not None else 0)
        self._header_keys = self._keys(self.columns)
        # What a record's fields are, from the last repeated header on (see _as_repeated_header): at first, in
        # the header's own order.
        self._mode: _Mode = _SAME_ORDER
        self._candidate_columns = self._header_probe_columns()
        self._probe_words = {w for f in required[:2] for w in header_words(f).split()}
        self._probe_names = pa.array(required if self._strict else [header_words(f) for f in required], pa.string())
        firsts = sorted({(f.strip() if self._strict else header_words(f))[:1] for f in required} - {""})
        self._probe_start = r"^[\s_.\-]*[" + "".join(re.escape(c) for c in firsts) + "]" if firsts else "^$"
        if sample is not None:
            sample = sample.rename_columns(self.columns + sample.column_names[len(self.columns) :])
        # The file's decimal mark, from the numbers in its first MiB (see pipeline.features.decimal_mark); when
        # those hold no number that tells (say a 10 MB first record), from the first chunk's, before it is used.
        self._mark_told = False
        self.decimal_mark: str | None = None
        if sample is not None:
            self._decide_decimal_mark(sample)
        self._next_line = 2 + self._skipped_lines

    def _decide_decimal_mark(self, table: pa.Table) -> None:
        point, comma = decimal_mark_counts(table, self._required)
        self._mark_told = point + comma > 0
        self.decimal_mark = decimal_mark(point, comma)

    def _width_to_parse(self, header_width_records: int) -> int:
        """The number of fields pyarrow is told a record has: the header's, or the one most records have.

        When most records of the first MiB differ from the header only by a trailing field (a trailing delimiter
        on the header alone, or on the rows alone), pyarrow is told their width, so that it splits them itself
        rather than reporting each as invalid (for _judge_reported to split it again, in Python).
        """
        named = len(self.columns)
        widths = {w: n for w, n in self._sample_widths.items() if named <= w <= self._width + 1 and w != self._width}
        best = max(widths, key=lambda w: widths[w], default=None)
        return best if best is not None and widths[best] > header_width_records else self._width

    def _open(self, block_size: int, names: list[str]) -> Any:
        # Every column as text: the header names come from the peeked head, so the real reader can be told. When
        # the records have another width than the header (see _width_to_parse), they are named by position, and
        # the header line is read as the first record (of the header's width: invalid, and left out).
        if self._parse_width != self._width:
            names = [str(j) for j in range(self._parse_width)]
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
                    column_names=names if self._parse_width != self._width else None,
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
        """The header names, and the peeked head's records as text (None if they cannot be parsed).

        Notes in ``_sample_widths`` how many fields the head's records of another width than the header have (of
        more fields, only those whose last field is empty: they may be records with a trailing delimiter).
        """
        cut = len(head_text) if whole_file else head_text.rfind("\n")
        sample = (head_text[: cut + 1] if cut > 0 else head_text).rstrip("\r\n").encode("utf-8") + b"\n"
        widths: list[int] = []
        names: list[str] = []

        def note_width(row: Any) -> str:
            # A record of more fields than the header counts only if its last one is empty (a trailing delimiter)
            last_valued = not _without_spaces(str(row.text).rstrip("\r\n"), self.delimiter).endswith(self.delimiter)
            if not (names and int(row.actual_columns) > len(names) and last_valued):
                widths.append(int(row.actual_columns))
            return "skip"

        parse = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True, invalid_row_handler=note_width)
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
        names.extend(str(n) for n in reader.schema.names)
        widths.clear()  # noted again, once, as the records are read
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
        self._sample_widths = Counter(widths)
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
        # Only handed on here (on the parser thread): pyarrow calls this while it parses, a block ahead of the batch
        # it returns; _settle judges the record once the records around it are numbered.
        if row.number == 1 and self._parse_width != self._width:
            return "skip"  # the header line, read as a record (see _open)
        number = int(row.number) + self._skipped_lines if row.number is not None else -1
        self._outbox.append((number, str(row.text), int(row.actual_columns)))
        if len(self._outbox) >= _OUTBOX_RECORDS and not self._send_outbox():
            return "error"  # the consumer has stopped: so does the parse
        return "skip"

    def _send_outbox(self) -> bool:
        outbox, self._outbox = self._outbox, []
        return not outbox or self._send(("invalid", outbox))

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

    @property
    def invalid_held(self) -> int:
        """Records parsed but not yet handed over as invalid: at most about a chunk's worth and a parser block's."""
        waiting = self._channel.qsize() * _OUTBOX_RECORDS if self._channel is not None else 0
        return len(self._invalid) + len(self._reported) + len(self._outbox) + waiting

    def __iter__(self) -> Iterator[TextChunk]:
        # pyarrow's reader runs on a thread of its own, handing over each batch and each invalid record in order
        # through a small queue: a read_next_batch call parses on until it has a valid record (a file of invalid
        # records is one call), and the invalid ones must be handed on meanwhile, in bounded chunks. It reads a
        # batch only when the consumer has dealt with the last one, so memory stays as with a plain pull.
        self._channel = queue.Queue(maxsize=_CHANNEL_ITEMS)
        self._turns.release()  # the first batch
        parser = threading.Thread(target=self._parse, name="csv-parse", daemon=True)
        parser.start()
        try:
            yield from self._chunks()
        finally:
            self._closed = True  # the parser thread stops at its next hand-over
            parser.join(timeout=1)

    def _parse(self) -> None:
        try:
            reader = self._open(self._block_size, self._names)
            while self._wait_for_turn():
                batch = self._call_arrow(lambda: _read_next(reader))
                if not self._send_outbox() or not self._send(("batch", batch)) or batch is None:
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._send_outbox()
            self._send(("error", exc))

    def _wait_for_turn(self) -> bool:
        """Wait until the consumer has dealt with the last batch (one batch at a time, as a pull would read)."""
        while not self._closed:
            if self._turns.acquire(timeout=0.1):
                return True
        return False

    def _send(self, item: tuple[str, Any]) -> bool:
        """Hand ``item`` to the consumer (waiting while the queue is full); False once it has stopped."""
        assert self._channel is not None
        while not self._closed:
            try:
                self._channel.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def _chunks(self) -> Iterator[TextChunk]:
        assert self._channel is not None
        pending: list[tuple[pa.Table, npt.NDArray[np.int64]]] = []
        pending_rows = 0
        while True:
            kind, item = self._channel.get()
            if kind == "error":
                raise item
            if kind == "invalid":
                self._reported.extend(item)
                if len(self._reported) < self.chunk_rows:
                    continue
                # Many in a row (a read_next_batch call parses on until it has a valid record): judge those whose
                # numbers follow the last valid record's now, as the batch they would wait for may be far off.
                batch, final = None, False
            else:
                batch, final = item, item is None
            table, lines = self._settle(batch, final=final)
            if table.num_rows:
                pending.append((table, lines))
                pending_rows += table.num_rows
            if pending and (pending_rows >= self.chunk_rows or final):
                # Whole chunks of exactly chunk_rows; the rows left over wait for the next blocks (only the last
                # chunk of the file is short). Each chunk costs the warehouse one staging write, so a small
                # remainder chunk after every full one would nearly double the writes.
                table = pa.concat_tables([t for t, _ in pending])
                lines = np.concatenate([n for _, n in pending])
                whole = table.num_rows if final else table.num_rows - table.num_rows % self.chunk_rows
                pending = [(table.slice(whole), lines[whole:])] if whole < table.num_rows else []
                pending_rows = table.num_rows - whole
                for start in range(0, whole, self.chunk_rows):
                    stop = min(start + self.chunk_rows, whole)
                    yield self._chunk(table.slice(start, stop - start), lines[start:stop])
            # Invalid records are handed over as they come, at most chunk_rows at a time (with a chunk of rows, or
            # on their own): a file of invalid records streams in bounded chunks as one of valid records does.
            while len(self._invalid) >= self.chunk_rows or (final and self._invalid):
                yield TextChunk(table=_empty(self.columns), lines=np.empty(0, np.int64), invalid=self._take())
            if final:
                return
            if kind == "batch":
                self._turns.release()  # dealt with: the parser may read the next one

    def _take(self) -> list[InvalidRecord]:
        return [self._invalid.popleft() for _ in range(min(self.chunk_rows, len(self._invalid)))]

    def _settle(self, batch: pa.RecordBatch | None, *, final: bool) -> tuple[pa.Table, npt.NDArray[np.int64]]:
        """The batch's records, numbered, with the reported records among them judged; fields by position.

        Valid and invalid records together are numbered 2, 3, ... in file order (header = 1), and pyarrow reports
        each invalid one's number. It parses a block (and reports its invalid records) before it returns the
        batch of the block before: so the batch's records take the numbers the reported ones leave free, and a
        reported record is judged once every number before it is taken (at the latest at the end of the file).
        A reported record may still load: a record that is blank or has only delimiters, or that differs from
        the header only by empty fields at its end (a trailing delimiter on the header or on the rows alone).
        """
        table = _positional(pa.Table.from_batches([batch]) if batch is not None else None, self._parse_width)
        n = table.num_rows
        lines = np.empty(n, dtype=np.int64)
        settled: list[tuple[int, str, int]] = []
        reported, cursor, filled = self._reported, self._next_line, 0
        while filled < n:
            if reported and reported[0][0] <= cursor:
                number = reported[0][0]
                settled.append(reported.popleft())
                cursor = max(cursor, number + 1)
                continue
            free = n - filled if not reported else min(n - filled, reported[0][0] - cursor)
            lines[filled : filled + free] = np.arange(cursor, cursor + free, dtype=np.int64)
            filled, cursor = filled + free, cursor + free
        while reported and (reported[0][0] <= cursor or final):
            number = reported[0][0]
            settled.append(reported.popleft())
            cursor = max(cursor, number + 1)
        self._next_line = cursor
        if self._parse_width != self._width:
            table, lines, valued = self._to_header_width(table, lines)
            settled.extend(valued)  # judged as records of another width than the header's (a header, or not)
            n = table.num_rows

        # The records that load from the reported ones (fields by position), and repeated headers (events).
        rows: list[tuple[int, list[str]]] = []
        blank: list[int] = []  # repeated headers of the file's columns: skipped like blank lines
        events: list[tuple[int, _Mode]] = []
        invalid: list[InvalidRecord] = []  # rejected whatever the repeated headers before them say
        plain: list[InvalidRecord] = []  # of the wrong number of fields: rejected, for that or a repeated header
        for number, text, actual in settled:
            self._judge_reported(number, text, actual, rows, blank, events, invalid, plain)
        # Repeated headers of as many fields as the header are valid records: found among the batch's rows.
        keep = np.ones(n, dtype=bool)
        for i in self._header_candidates(table):
            fields = [str(table.column(j)[i].as_py()) for j in range(self._width)]
            mode = self._as_repeated_header(fields, int(lines[i]))
            if mode is None:
                continue
            keep[i] = False
            events.append((int(lines[i]), mode))
            if mode.rejected is None:
                blank.append(int(lines[i]))
            else:
                invalid.append(InvalidRecord(int(lines[i]), _record_text(fields, self.delimiter), mode.header_reason))
        if not events and not rows and not blank and self._mode is _SAME_ORDER:
            self._invalid.extend(sorted(invalid + plain, key=lambda r: r.line))
            return table, lines  # the usual case: nothing to remap

        events.sort(key=lambda e: e[0])
        event_lines = np.array([line for line, _ in events], dtype=np.int64)
        modes = [self._mode, *(mode for _, mode in events)]
        pieces: list[tuple[pa.Table, npt.NDArray[np.int64]]] = []
        table, lines = table.filter(pa.array(keep)), lines[keep]
        where = np.searchsorted(event_lines, lines, side="left")  # how many events come before each record
        for m in np.unique(where):
            mode, at = modes[int(m)], np.flatnonzero(where == m)
            if mode.rejected is not None:
                invalid.extend(self._rejected_rows(table.take(at), lines[at], mode.rejected))
                continue
            part = table.take(at)
            if mode.order is not None:
                part = _positional(part.select(list(mode.order)), self._width)
            pieces.append((part, lines[at]))
        for record in plain:
            mode = modes[int(np.searchsorted(event_lines, record.line, side="left"))]
            invalid.append(record if mode.rejected is None else dataclasses.replace(record, reason=mode.rejected))
        extra: list[tuple[int, list[str]]] = [(line, [""] * self._width) for line in blank]
        for line, fields in rows:
            mode = modes[int(np.searchsorted(event_lines, line, side="left"))]
            if mode.rejected is not None:
                invalid.append(InvalidRecord(line, _record_text(fields, self.delimiter), mode.rejected))
            else:
                extra.append((line, fields if mode.order is None else [fields[j] for j in mode.order]))
        if extra:
            columns = list(zip(*(fields for _, fields in extra), strict=True))
            added = pa.table({str(j): pa.array(list(columns[j]), pa.string()) for j in range(self._width)})
            pieces.append((added, np.array([line for line, _ in extra], dtype=np.int64)))
        self._mode = modes[-1]
        self._invalid.extend(sorted(invalid, key=lambda r: r.line))
        if not pieces:
            return _positional(None, self._width), np.empty(0, np.int64)
        table = pa.concat_tables([t for t, _ in pieces])
        lines = np.concatenate([n for _, n in pieces])
        order = np.argsort(lines, kind="stable")
        return table.take(order), lines[order]

    def _to_header_width(
        self, table: pa.Table, lines: npt.NDArray[np.int64]
    ) -> tuple[pa.Table, npt.NDArray[np.int64], list[tuple[int, str, int]]]:
        """Records parsed at another width than the header's, made its width: the header's trailing fields they
        lack are empty. Those with a value in the one field they have beyond the header are taken out, to be judged
        as records of another width (rejected, or a repeated header): a value is never dropped."""
        if self._parse_width < self._width:
            empty = pa.repeat(pa.scalar("", pa.string()), table.num_rows)
            more = {str(j): empty for j in range(self._parse_width, self._width)}
            return pa.table({**{str(j): table.column(j) for j in range(self._parse_width)}, **more}), lines, []
        last = pc.utf8_trim_whitespace(table.column(self._width))
        valued = pc.not_equal(last, "").to_numpy(zero_copy_only=False)
        taken: list[tuple[int, str, int]] = []
        if valued.any():
            at = np.flatnonzero(valued)
            taken = [(r.line, r.text, self._width + 1) for r in self._rejected_rows(table.take(at), lines[at], "")]
            table, lines = table.filter(pa.array(~valued)), lines[~valued]
        return table.select(list(range(self._width))), lines, taken

    def _judge_reported(
        self,
        number: int,
        text: str,
        actual: int,
        rows: list[tuple[int, list[str]]],
        blank: list[int],
        events: list[tuple[int, _Mode]],
        invalid: list[InvalidRecord],
        plain: list[InvalidRecord],
    ) -> None:
        """A record of another number of fields than the header: a repeated header, a record that loads, or not."""
        width, named = self._width, len(self.columns)
        # Quick tests first (most such records are simply invalid): could it be a header, blank, or a record with
        # a trailing delimiter too many or too few? Only then is it split.
        header_like = self._probe_text(text)
        blank_like = not text.strip(' \t\r\n"' + self.delimiter)
        last_valued = not _without_spaces(text.rstrip("\r\n"), self.delimiter).endswith(self.delimiter)
        trailing = named <= actual <= width or (actual == width + 1 and not last_valued)
        fields = _split(text, self.delimiter) if header_like or blank_like or trailing else None
        if fields is not None and len(fields) == actual:
            mode = self._as_repeated_header(fields, number) if header_like else None
            if mode is None and header_like:
                mode = self._as_header_of_another_delimiter(text, number)
            if mode is not None:
                events.append((number, mode))
                if mode.rejected is None:
                    blank.append(number)
                else:
                    invalid.append(InvalidRecord(number, text, mode.header_reason))
                return
            if not any(f.strip() for f in fields):  # an empty spreadsheet row (',,,'): a blank line
                rows.append((number, [""] * width))
                return
            # A trailing delimiter on the header alone ('a,b,c,' over '1,2,3'), on the record alone ('1,2,3,'),
            # or on both and one more: only empty fields beyond the header's named columns, at most one beyond
            # all its fields. A value there is never dropped: the record is rejected.
            if named <= len(fields) <= width + 1 and not any(f.strip() for f in fields[named:]):
                rows.append((number, fields[:named] + [""] * (width - named)))
                return
        reason = f"expected {width} fields, got {actual}"
        if actual > width and self.delimiter == "," and _decimal_commas_explain(text, actual - width):
            reason += f" ({DECIMAL_COMMA_HINT})"
        plain.append(InvalidRecord(number, text, reason))

    def _header_probe_columns(self) -> list[int]:
        """Field positions at least one of which holds a feature's name in any header of the file's columns.

        A repeated header of the same columns in another order has each feature somewhere; of any e + 1 positions
        that hold features in the file's header (e = the number of other columns), one still holds a feature.
        """
        features = [i for i, name in enumerate(self.columns) if name in self._required]
        others = len(self.columns) - len(features)
        return features[: others + 1]

    def _header_candidates(self, table: pa.Table) -> list[int]:
        """Rows of the batch that may be a repeated header: a feature's name at one of the probe positions."""
        if not table.num_rows:
            return []
        found = None
        for j in self._candidate_columns:
            # First a quick test that reads a cell's first characters only (a number starts with none of the
            # features' first letters); then the names' words, on the few rows that pass.
            starts = pc.match_substring_regex(table.column(j), self._probe_start, ignore_case=not self._strict)
            at = np.flatnonzero(starts.to_numpy(zero_copy_only=False))
            if not at.size:
                continue
            column = pc.utf8_trim_whitespace(table.column(j).take(pa.array(at)))
            if not self._strict:
                column = pc.utf8_trim(pc.replace_substring_regex(pc.utf8_lower(column), r"[\s_.\-]+", " "), " ")
            hit = np.zeros(table.num_rows, dtype=bool)
            hit[at] = pc.is_in(column, value_set=self._probe_names).to_numpy(zero_copy_only=False)
            found = hit if found is None else found | hit
        return [] if found is None else [int(i) for i in np.flatnonzero(found)]

    def _keys(self, names: list[str]) -> list[str]:
        """What makes two header names the same column: the feature, or the name (as matching compares them)."""
        return names if self._strict else [header_words(n) for n in names]

    def _as_repeated_header(self, fields: list[str], line: int) -> _Mode | None:
        """The mode a header line mid-file sets, or None if the fields are not a header of the file's features.

        A header names every feature once (as the header matching accepts them). Of the file's columns, in any
        order, it remaps the records after it; of other columns (another extra column, one fewer or more), its
        records are rejected, as their values could land under another column's name.
        """
        names = [f.strip() for f in fields]
        names = names[: len(names) - _trailing_empty(names)]
        matches = match_features(names, self._required, strict=self._strict)
        if any(len(m) > 1 for m in matches) or sorted(f for m in matches for f in m) != sorted(self._required):
            return None
        keys = self._keys([m[0] if m else n for n, m in zip(names, matches, strict=True)])
        if sorted(keys) != sorted(self._header_keys) or len(set(keys)) != len(keys):
            return _Mode(
                rejected=f"follows the repeated header on line {line}, whose columns differ from the file's header; "
                "not loaded, as its values could land under another column's name",
                header_reason="a repeated header whose columns differ from the file's header: the records after it "
                "are rejected, as their values could land under another column's name",
            )
        order = [keys.index(k) for k in self._header_keys] + list(range(len(keys), self._width))
        return _SAME_ORDER if order == list(range(self._width)) else _Mode(order=tuple(order))

    def _as_header_of_another_delimiter(self, text: str, line: int) -> _Mode | None:
        for other in DELIMITERS:
            if other == self.delimiter or text.count(other) < len(self._required) - 1:
                continue
            fields = _split(text, other)
            if fields is not None and self._as_repeated_header(fields, line) is not None:
                return _Mode(
                    rejected=f"follows the repeated header on line {line}, written with another delimiter "
                    f"({_delimiter_name(other)}) than the file's ({_delimiter_name(self.delimiter)}); not loaded",
                    header_reason=f"a repeated header written with another delimiter ({_delimiter_name(other)}) than "
                    f"the file's ({_delimiter_name(self.delimiter)}): the records after it are rejected",
                )
        return None

    def _probe_text(self, text: str) -> bool:
        """False when the text cannot hold every feature's name (a quick test before matching a header)."""
        if self._strict:
            return all(f in text for f in self._required[:2])
        folded = text.casefold()  # each word of a name is in any spelling the matching accepts
        return all(word in folded for word in self._probe_words)

    def _rejected_rows(self, table: pa.Table, lines: npt.NDArray[np.int64], reason: str) -> list[InvalidRecord]:
        cells = [table.column(j).to_pylist() for j in range(table.num_columns)]
        return [
            InvalidRecord(int(line), _record_text([str(c[i]) for c in cells], self.delimiter), reason)
            for i, line in enumerate(lines)
        ]

    def _chunk(self, table: pa.Table, lines: npt.NDArray[np.int64]) -> TextChunk:
        named = len(self.columns)
        unnamed = table.columns[named:]
        for k, column in enumerate(unnamed):
            valued = np.flatnonzero(pc.not_equal(pc.utf8_trim_whitespace(column), "").to_numpy(zero_copy_only=False))
            if valued.size:
                raise UnusableFileError(
                    f"column {named + k + 1} has no name in the header but holds a value on line "
                    f"{int(lines[valued[0]])}; name it in the header, or remove the values",
                    reason="unnamed_column",
                )
        table = table.select(list(range(named))).rename_columns(self.columns)
        if not self._mark_told and table.num_rows:
            self._decide_decimal_mark(table)
            self._mark_told = True  # decided once for the whole file
        return TextChunk(table=table, lines=lines, invalid=self._take())


@dataclass(frozen=True)
class _Mode:
    """What a record's fields are, as the last repeated header before it says."""

    order: tuple[int, ...] | None = None  # where each of the header's fields is in the record; None: in order
    rejected: str | None = None  # set: every record is rejected with this reason (a header of other columns)
    header_reason: str = ""  # why the repeated header line itself is rejected


_SAME_ORDER = _Mode()


def _positional(table: pa.Table | None, width: int) -> pa.Table:
    """The table's columns named by position ('0', '1', ...): a header may repeat a name, or leave one empty."""
    names = [str(j) for j in range(width)]
    if table is None:
        return pa.table({name: pa.array([], pa.string()) for name in names})
    return table.rename_columns(names)


def _without_spaces(text: str, delimiter: str) -> str:
    return text.rstrip(" " if delimiter == "\t" else " \t")


def _split(text: str, delimiter: str) -> list[str] | None:
    """A record's fields, split as pyarrow splits them (quotes, doubled quotes); None if it cannot be."""
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True), [])
    except csv.Error:
        return None


def _record_text(fields: list[str], delimiter: str) -> str:
    """A record's fields written back as one CSV line (for the rejects table's raw text)."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(fields)
    return out.getvalue()


def _delimiter_name(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def _read_next(reader: Any) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


def _empty(columns: list[str]) -> pa.Table:
    return pa.table({c: pa.array([], pa.string()) for c in columns})


DECIMAL_COMMA_HINT = (
    "the extra fields may be decimal commas: an unquoted 12,5 in a ','-delimited file is two fields; "
    "quote such numbers or export with ';' as the delimiter"
)
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_DIGITS = re.compile(r"^\d+\s*$")


def _decimal_commas_explain(text: str, extra: int) -> bool:
    """Whether ``extra`` surplus fields of a ','-delimited record could each be the second half of a number
    written with a decimal comma (an integer field followed by a field of digits only)."""
    fields = _split(text.rstrip("\r\n"), ",") or []
    pairs, i = 0, 0
    while i + 1 < len(fields):
        if _INTEGER.match(fields[i]) and _DIGITS.match(fields[i + 1]):
            pairs, i = pairs + 1, i + 2
        else:
            i += 1
    return pairs >= extra


def _looks_like_a_value(text: str) -> bool:
    text = text.strip()
    if is_missing_value_marker(text):
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

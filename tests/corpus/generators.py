"""Corpus inputs that are binary, re-encoded or too big to commit: built at test time from the small files.

Each generator takes the corpus ``files`` folder and returns the object's bytes. The manifest names them.
"""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import Callable
from pathlib import Path

MiB = 1 << 20

Generator = Callable[[Path], bytes]
GENERATORS: dict[str, Generator] = {}


def generator(fn: Generator) -> Generator:
    GENERATORS[fn.__name__] = fn
    return fn


def _good(files: Path) -> str:
    return (files / "good.csv").read_text(encoding="utf-8")


def _with_notes(files: Path, notes: list[str]) -> str:
    lines = _good(files).splitlines()
    return "\n".join([lines[0] + ",notes"] + [f"{r},{n}" for r, n in zip(lines[1:], notes, strict=False)]) + "\n"


@generator
def utf16_le_bom(files: Path) -> bytes:
    return _good(files).encode("utf-16")  # Python writes the BOM, little-endian


@generator
def utf16_be_bom(files: Path) -> bytes:
    return b"\xfe\xff" + _good(files).encode("utf-16-be")


@generator
def utf16_without_bom(files: Path) -> bytes:
    return _good(files).encode("utf-16-le")


@generator
def latin1_extra_column(files: Path) -> bytes:
    return _with_notes(files, ["Cardiología", "São Paulo", "Zürich", "naïve", "façade"]).encode("latin-1")


@generator
def cp1252_extra_column(files: Path) -> bytes:
    return _with_notes(files, ["“quoted”", "price €5", "en–dash", "ok", "…"]).encode("cp1252")


@generator
def gzip_data_named_csv(files: Path) -> bytes:
    return gzip.compress(_good(files).encode())


@generator
def truncated_csv_gz(files: Path) -> bytes:
    data = gzip.compress(_good(files).encode() * 20)
    return data[: len(data) // 2]


@generator
def corrupt_gzip(files: Path) -> bytes:
    data = bytearray(gzip.compress(_good(files).encode()))
    data[20:60] = bytes(range(40))  # garbage inside the deflate stream
    return bytes(data)


@generator
def gzip_bomb(files: Path) -> bytes:
    """~2 MiB of gzip that expands to 4 GiB: the CSV header, then one endless line of spaces.

    Built as concatenated gzip members (valid gzip; every reader must handle them), so it takes a moment.
    """
    header = _good(files).splitlines()[0] + "\n"
    spaces = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = spaces.compress(b" " * (64 * MiB)) + spaces.flush()
    return gzip.compress(header.encode()) + member * 64


@generator
def binary_garbage(files: Path) -> bytes:
    return random.Random(5).randbytes(64 * 1024)


@generator
def binary_garbage_without_nul(files: Path) -> bytes:
    rng = random.Random(7)
    return bytes(rng.choice(range(1, 256)) for _ in range(16 * 1024))


@generator
def png_image(files: Path) -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(3).randbytes(2048)


@generator
def ten_mb_line_in_extra_column(files: Path) -> bytes:
    return _with_notes(files, ["n" * (10 * MiB), "short", "", "x", "y"]).encode()


@generator
def ten_mb_line_without_delimiters(files: Path) -> bytes:
    lines = _good(files).splitlines()
    return ("\n".join([lines[0], lines[1], "z" * (10 * MiB), *lines[2:]]) + "\n").encode()


@generator
def twenty_mb_line_in_extra_column(files: Path) -> bytes:
    return _with_notes(files, ["short", "n" * (20 * MiB), "", "x", "y"]).encode()


def max_length_key(prefix: str = "incoming/", suffix: str = ".csv") -> str:
    """An S3 key of exactly 1024 bytes of UTF-8 (S3's maximum), made of 2-byte characters."""
    budget = 1024 - len(prefix.encode()) - len(suffix.encode())
    body = "é" * (budget // 2) + "x" * (budget % 2)
    key = prefix + body + suffix
    assert len(key.encode()) == 1024
    return key


def _good_rows(files: Path) -> tuple[str, list[str]]:
    lines = _good(files).splitlines()
    return lines[0], lines[1:]


@generator
def multi_member_gzip(files: Path) -> bytes:
    """cat a.gz b.gz: the header and 10 rows in one gzip member, 15 more rows in a second."""
    header, rows = _good_rows(files)
    first = "\n".join([header, *(rows * 2)]) + "\n"
    second = "\n".join(rows * 3) + "\n"
    return gzip.compress(first.encode(), mtime=0) + gzip.compress(second.encode(), mtime=0)


@generator
def multi_member_gzip_one_mb_members(files: Path) -> bytes:
    """Three gzip members of about 1 MB each (random notes barely compress), an empty member between them."""
    header, rows = _good_rows(files)
    rng = random.Random(14)
    members = []
    for part in range(3):
        text = "".join(f"{rows[i % 5]},{rng.randbytes(50_000).hex()}\n" for i in range(part * 10, part * 10 + 10))
        members.append(gzip.compress(((header + ",notes\n") if part == 0 else "").encode() + text.encode(), mtime=0))
    return members[0] + gzip.compress(b"", mtime=0) + members[1] + members[2]


@generator
def cp1252_byte_after_first_mib(files: Path) -> bytes:
    """A UTF-8 file ('Zürich' in its first line) with one Windows-1252 'é' (0xE9) 1.5 MiB in."""
    header, rows = _good_rows(files)
    body = [f"{rows[i % 5]},note {i}" for i in range(7000)]
    head = (header + ",notes\n" + f"{rows[0]},Zürich\n").encode()
    before = "".join(line + "\n" for line in body[:6000]).encode()
    assert len(head + before) > MiB
    return head + before + f"{rows[1]},Caf".encode() + b"\xe9\n" + "".join(line + "\n" for line in body[6000:]).encode()


@generator
def cp1252_undefined_byte_after_first_mib(files: Path) -> bytes:
    """12,000 rows of Windows-1252 ('é', '€' in the first), one byte Windows-1252 leaves undefined (0x90) later."""
    header, rows = _good_rows(files)
    lines = [f"{rows[i % 5]},note {i}".encode("cp1252") for i in range(12_000)]
    lines[0] = f"{rows[0]},Café €5".encode("cp1252")
    lines[11_000] = f"{rows[0]},n".encode() + b"\x90t"  # line 11,002 of the file
    data = b"\n".join([(header + ",notes").encode(), *lines]) + b"\n"
    assert data.index(b"\x90") > MiB
    return data


@generator
def nul_byte_in_first_rows(files: Path) -> bytes:
    """good.csv with one NUL byte in a measurement of its second row (within the first 4 KiB)."""
    header, rows = _good_rows(files)
    fields = rows[1].split(",")
    fields[2] = fields[2] + "\x00"
    return ("\n".join([header, rows[0], ",".join(fields), *rows[2:]]) + "\n").encode()

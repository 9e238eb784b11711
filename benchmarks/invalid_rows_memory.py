"""Peak memory of reading a file whose every row is invalid, against a valid file of the same size.

Two files of the same size and rows are written: ``valid`` (a 31-column header, the WDBC features and a ``note``
column, every row of 32 fields) and ``invalid`` (the same rows under a header without ``note``: every row has one
field more than the header, and is rejected). Each is read in a fresh Python process as the pipeline reads it
(``CsvChunks`` with the default ``CHUNK_ROWS``; each chunk converted, and its rejects built into the frame that
is staged, then dropped as a staged chunk is), and the process reports its peak RSS (``ru_maxrss``), its seconds
and the most invalid records one chunk handed over. Scoring and the warehouse are left out: they are the same
for both files, and this measures what the reader holds.

Run: ``PYTHONPATH=src:. .venv/bin/python benchmarks/invalid_rows_memory.py [--mb 200] [--src DIR]``
(``--src``: another ``src`` folder to measure, e.g. an export of an older commit's). Writes
benchmarks/out/invalid_rows_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
FEATURES_CSV = REPO_ROOT / "tests" / "corpus" / "files" / "good.csv"


def write_files(folder: Path, mib: int) -> dict[str, Path]:
    header, *rows = FEATURES_CSV.read_text(encoding="utf-8").splitlines()
    body = "".join(f"{row},x\n" for row in rows).encode()
    repeats = max(1, (mib << 20) // len(body))
    paths = {"valid": folder / "valid.csv", "invalid": folder / "invalid.csv"}
    for kind, first in (("valid", header + ",note\n"), ("invalid", header + "\n")):
        with paths[kind].open("wb") as out:
            out.write(first.encode())
            for _ in range(repeats):
                out.write(body)
    return paths


def child(path: Path, chunk_rows: int) -> dict[str, Any]:
    """Read one file as the pipeline does (without scoring and staging) and report what it cost."""
    from pipeline.csv_reader import CsvChunks
    from pipeline.features import convert_features
    from pipeline.output import rejects_frame

    features = FEATURES_CSV.read_text(encoding="utf-8").splitlines()[0].split(",")[1:]
    lineage = {"SOURCE_BUCKET": "b", "SOURCE_KEY": "k", "SOURCE_VERSION": "v", "LOAD_ID": "l"}
    start = time.perf_counter()
    rows = rejected = most_invalid = 0
    with path.open("rb") as raw:
        chunks = CsvChunks(raw, required=features, chunk_rows=chunk_rows, max_uncompressed_bytes=1 << 40)  # type: ignore[arg-type]
        for chunk in chunks:
            converted = convert_features(chunk.table, features, decimal_mark=chunks.decimal_mark)
            frame = rejects_frame(chunk, chunks.columns, chunks.delimiter, converted.problems, lineage, 4096)
            rows += chunk.num_rows
            rejected += 0 if frame is None else len(frame)
            most_invalid = max(most_invalid, len(chunk.invalid))
            del frame, converted, chunk
    return {
        "rows": rows,
        "rejected": rejected,
        "most_invalid_per_chunk": most_invalid,
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of each file in MiB")
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--src", type=Path, default=REPO_ROOT / "src", help="the src folder to measure")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.chunk_rows)))
        return
    env = {**os.environ, "PYTHONPATH": f"{args.src.resolve()}{os.pathsep}{REPO_ROOT}"}
    results: dict[str, Any] = {"mb": args.mb, "chunk_rows": args.chunk_rows, "src": str(args.src)}
    with tempfile.TemporaryDirectory() as folder:
        for kind, path in write_files(Path(folder), args.mb).items():
            command = [sys.executable, __file__, "--child", str(path), "--chunk-rows", str(args.chunk_rows)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
            print(kind, results[kind], flush=True)
    results["invalid_over_valid_rss"] = round(results["invalid"]["peak_rss_mb"] / results["valid"]["peak_rss_mb"], 2)
    out = REPO_ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "invalid_rows_memory.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

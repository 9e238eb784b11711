"""Large, realistic benchmark CSVs made from the 569 real rows of ``data/breast_cancer.csv``.

Every generated row starts from a real row picked at random and moves each feature by Gaussian jitter of
``--jitter`` (default 5 %) of that feature's standard deviation across the data set; the result is clipped to
the feature's observed [min, max] (so every value stays plausible: no negative areas, no concavity above the
worst real case) and rounded to the number of decimals the real column is written with. Sample ids are
unique (``SYN-<seed>-<n>``). ``--bad-rate`` replaces that fraction of rows' cells with a blank or a
non-numeric value, to exercise the rejects path (default 0: every row scores).

Run: ``PYTHONPATH=src:. .venv/bin/python tools/make_files.py --rows 500000 5000000 [--gzip]``.
Writes ``benchmarks/out/files/rows-<N>.csv`` (and ``.csv.gz``); an existing file of the same name is kept
unless ``--force``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = REPO_ROOT / "data" / "breast_cancer.csv"
OUT_DIR = REPO_ROOT / "benchmarks" / "out" / "files"
BLOCK_ROWS = 200_000


def _load_sample() -> tuple[list[str], npt.NDArray[np.float64], list[int]]:
    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    values = np.array([[float(v) for v in r[1:]] for r in body], dtype=np.float64)
    decimals = [max(len(r[j + 1].partition(".")[2]) for r in body) for j in range(values.shape[1])]
    return header, values, decimals


def _format_block(
    start: int,
    n: int,
    rng: np.random.Generator,
    seed: int,
    base: npt.NDArray[np.float64],
    decimals: list[int],
    jitter: float,
    bad_rate: float,
) -> str:
    spread = base.std(axis=0)
    lo, hi = base.min(axis=0), base.max(axis=0)
    picked = base[rng.integers(0, len(base), n)]
    values = np.clip(picked + rng.normal(0.0, 1.0, picked.shape) * (spread * jitter), lo, hi)
    columns: list[npt.NDArray[np.str_]] = [np.char.mod(f"SYN-{seed}-%09d", np.arange(start, start + n))]
    for j, places in enumerate(decimals):
        columns.append(np.char.mod(f"%.{places}f", np.round(values[:, j], places)))
    if bad_rate > 0:
        bad_rows = np.flatnonzero(rng.random(n) < bad_rate)
        for i in bad_rows:
            j = int(rng.integers(1, len(columns)))
            columns[j] = columns[j].astype(object)
            columns[j][i] = "" if rng.random() < 0.5 else "n/a"
    lines = columns[0].astype(object)
    for col in columns[1:]:
        lines = lines + "," + col.astype(object)
    return "\n".join(lines.tolist()) + "\n"


def make_file(
    rows: int,
    path: Path,
    *,
    seed: int = 7,
    jitter: float = 0.05,
    bad_rate: float = 0.0,
) -> Path:
    """Write a CSV of ``rows`` data rows (plus the header) to ``path``; gzip if it ends with ``.gz``."""
    header, base, decimals = _load_sample()
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(tmp, "wt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
        fh.write(",".join(header) + "\n")
        for start in range(0, rows, BLOCK_ROWS):
            n = min(BLOCK_ROWS, rows - start)
            fh.write(_format_block(start, n, rng, seed, base, decimals, jitter, bad_rate))
    tmp.replace(path)
    return path


def ensure_file(rows: int, *, gz: bool = False, out_dir: Path = OUT_DIR, force: bool = False, **kwargs: float) -> Path:
    """The benchmark file of ``rows`` rows, generated once and reused."""
    tag = f"-bad{kwargs['bad_rate']:g}" if kwargs.get("bad_rate") else ""
    plain = out_dir / f"rows-{rows}{tag}.csv"
    if force or not plain.exists():
        make_file(rows, plain, **kwargs)  # type: ignore[arg-type]
    if not gz:
        return plain
    packed = plain.with_name(plain.name + ".gz")
    if force or not packed.exists():
        tmp = packed.with_name(packed.name + ".part")
        with plain.open("rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp.replace(packed)
    return packed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[500_000, 5_000_000])
    parser.add_argument("--gzip", action="store_true", help="also write a .csv.gz of each")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jitter", type=float, default=0.05, help="fraction of each feature's std dev")
    parser.add_argument("--bad-rate", type=float, default=0.0, help="fraction of rows with one bad cell")
    parser.add_argument("--force", action="store_true", help="regenerate files that exist")
    args = parser.parse_args(argv)
    for rows in args.rows:
        t0 = time.perf_counter()
        options = {"seed": args.seed, "jitter": args.jitter, "bad_rate": args.bad_rate}
        plain = ensure_file(rows, out_dir=args.out_dir, force=args.force, **options)
        made = [plain]
        if args.gzip:
            made.append(ensure_file(rows, gz=True, out_dir=args.out_dir, **options))
        for p in made:
            print(f"{p}  {p.stat().st_size / 1e6:.1f} MB  ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

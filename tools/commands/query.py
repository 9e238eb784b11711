"""Query the emulated Snowflake that `make demo` / `make score` left in .local/snowflake.

    make query SQL="SELECT CONDITION, COUNT(*) FROM TUMOUR_SCORES GROUP BY 1"
    .venv/bin/python tools/commands/query.py "SELECT * FROM TUMOUR_SCORE_LOADS"     # from any directory

Prints the result as tab-separated lines, with a header. A query Snowflake (here: the emulator) refuses
prints its message and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from another directory
    sys.path.insert(0, str(ROOT))

from tools.commands.score import DB_PATH  # noqa: E402
from tools.emulated.local_stack import DATABASE, local_stack  # noqa: E402

DEFAULT_SQL = "SELECT CONDITION, COUNT(*) FROM TUMOUR_SCORES GROUP BY 1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sql", nargs="?", default=DEFAULT_SQL)
    parser.add_argument("--db-path", type=Path, default=DB_PATH)
    args = parser.parse_args(argv)
    if not (args.db_path / f"{DATABASE}.db").exists():
        parser.error(f"no emulated database in {args.db_path}: run `make demo` or `make score FILE=...` first")
    import snowflake.connector.errors

    with local_stack(args.db_path, seed=False) as stack:
        conn = stack.snowflake_connect()
        try:
            cur = conn.cursor()
            try:
                cur.execute(args.sql)
            except snowflake.connector.errors.Error as exc:
                print(f"query failed: {exc.msg or exc}", file=sys.stderr)
                return 1
            names = [d[0] for d in cur.description or []]
            print("\t".join(names))
            for row in cur.fetchall():
                print("\t".join("" if v is None else str(v) for v in row))
        finally:
            conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Query the emulated Snowflake that `make demo` left in .local/snowflake: `python -m tools.query "SQL"`."""

from __future__ import annotations

import argparse
from pathlib import Path

from tools.demo import DB_PATH
from tools.local_stack import local_stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sql", nargs="?", default="SELECT CONDITION, COUNT(*) FROM TUMOUR_SCORES GROUP BY 1")
    parser.add_argument("--db-path", type=Path, default=DB_PATH)
    args = parser.parse_args()
    if not (args.db_path / "TUMOURS.db").exists():
        parser.error(f"no emulated database in {args.db_path}: run `make demo` first")
    with local_stack(args.db_path, seed=False) as stack:
        conn = stack.snowflake_connect()
        cur = conn.cursor()
        cur.execute(args.sql)
        names = [d[0] for d in cur.description or []]
        print("\t".join(names))
        for row in cur.fetchall():
            print("\t".join("" if v is None else str(v) for v in row))
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

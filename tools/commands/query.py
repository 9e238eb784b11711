"""Query the emulated Snowflake that `make demo` / `make score` left in .local/snowflake/<model version>/.

    make query SQL="SELECT CONDITION, COUNT(*) FROM TUMOUR_SCORES GROUP BY 1"
    .venv/bin/python tools/commands/query.py "SELECT * FROM TUMOUR_SCORE_LOADS"     # from any directory

The served model's folder (``$MODEL_DIR``, else model/) unless ``--db-path`` names another: `make query
MODEL_DIR=<dir>` reads what `make demo MODEL_DIR=<dir>` loaded.

Prints the result as tab-separated lines, with a header. A query Snowflake (here: the emulator) refuses
prints its message and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from another directory
    sys.path.insert(0, str(ROOT))

from tools.commands.score import EXIT_RETRIABLE, default_db_path  # noqa: E402
from tools.emulated.local_stack import (  # noqa: E402
    DATABASE,
    LOCK_FILE,
    DatabaseInUseError,
    hold_database,
    local_stack,
)

DEFAULT_SQL = "SELECT CONDITION, COUNT(*) FROM TUMOUR_SCORES GROUP BY 1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sql", nargs="?", default=DEFAULT_SQL)
    parser.add_argument("--db-path", type=Path, help="default: the served model's, .local/snowflake/<version>/")
    args = parser.parse_args(argv)
    args.db_path = args.db_path or default_db_path()
    if (args.db_path / LOCK_FILE).exists():  # in use: say so first (the database file may not be written yet)
        try:
            with hold_database(args.db_path):
                pass
        except DatabaseInUseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_RETRIABLE
    if not (args.db_path / f"{DATABASE}.db").exists():
        parser.error(f"no emulated database in {args.db_path}: run `make demo` or `make score FILE=...` first")
    import snowflake.connector.errors

    with contextlib.ExitStack() as running:
        try:
            stack = running.enter_context(local_stack(args.db_path, seed=False))
        except DatabaseInUseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_RETRIABLE
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

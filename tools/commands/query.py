"""Query the emulated Snowflake that `make demo` / `make score` left in .local/snowflake/<model version>/.

    make query SQL="SELECT CONDITION, COUNT(*) FROM TUMOUR_SCORES GROUP BY 1"
    .venv/bin/python tools/commands/query.py "SELECT * FROM TUMOUR_SCORE_LOADS"     # from any directory

The served model's folder (``$MODEL_DIR``, else model/) unless ``--db-path`` names another: `make query
MODEL_DIR=<dir>` reads what `make demo MODEL_DIR=<dir>` loaded. ``--real-account`` (`make query REAL=1`) reads a
real account instead, named by the SNOWFLAKE_* variables (tools/commands/connection.py).

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

from tools.commands.connection import CannotConnectError, Connection, add_arguments, open_connection  # noqa: E402
from tools.commands.score import EXIT_USAGE  # noqa: E402

DEFAULT_SQL = "SELECT CONDITION, COUNT(*) FROM TUMOUR_SCORES GROUP BY 1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sql", nargs="?", default=DEFAULT_SQL)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        with open_connection(args) as connection:
            return run(connection, args.sql)
    except CannotConnectError as exc:
        if exc.status == EXIT_USAGE and not args.real_account:
            parser.error(str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return exc.status


def run(connection: Connection, sql: str) -> int:
    import snowflake.connector.errors

    cur = connection.conn.cursor()
    try:
        cur.execute(sql)
    except snowflake.connector.errors.Error as exc:
        print(f"query failed: {exc.msg or exc}", file=sys.stderr)
        return 1
    names = [d[0] for d in cur.description or []]
    print("\t".join(names))
    for row in cur.fetchall():
        print("\t".join("" if v is None else str(v) for v in row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

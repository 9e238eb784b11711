"""`make report`: the model-monitoring report, one self-contained HTML file, read from the warehouse.

    make report [MODEL_VERSION=<version>] [LAST=<n>] [OUT=<file.html>] [REAL=1]
    .venv/bin/python -m tools.commands.report [--out PATH] [--model-version V] [--last N] [--db-path DIR]
    .venv/bin/python tools/commands/report.py --real-account ...          # from any directory; a real account

It reads the monitoring table (``MONITORING_TABLE``, default ``TUMOUR_SCORE_MONITORING``: one row per load, written
in the load's own transaction) with each load's status from the ledger (``LEDGER_TABLE``), where `make query`
reads: the emulated Snowflake of the served model (``$MODEL_DIR``, else model/) in .local/snowflake/<version>/, the
folder ``--db-path`` names, or, with ``--real-account``, the account the SNOWFLAKE_* variables name
(tools/commands/connection.py). ``--model-version`` keeps one model version's loads, ``--last`` the N most recent.

The page (default .local/report.html; plots inline, nothing fetched) has a section per model version: drift per
feature over the loads, the estimated accuracy with its interval, the predicted malignant share against the
reference, and the most recent loads. Its path is printed.

Exit status: 0 written; 1 a query Snowflake refused (its message is printed); 2 nothing to report (no emulated
database, no monitoring table, no row in it for what was asked) or a bad setting; 3 the emulated Snowflake is in
use by another process, or the account could not be reached: a retry may help. Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from another directory
    sys.path.insert(0, str(ROOT))

from tools.commands.connection import CannotConnectError, add_arguments, open_connection  # noqa: E402
from tools.commands.report_data import LEDGER_TABLE, MONITORING_TABLE, NothingToReportError, read_monitoring  # noqa: E402
from tools.commands.score import EXIT_USAGE, make_importable  # noqa: E402

DEFAULT_OUT = ROOT / ".local" / "report.html"


def main(argv: list[str] | None = None) -> int:
    make_importable()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: .local/report.html")
    parser.add_argument("--model-version", help="only this model version's loads (default: every one, a section each)")
    parser.add_argument("--last", type=_positive, help="only the N most recent loads (default: all)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    import snowflake.connector.errors

    from pipeline.settings import validate_identifier

    try:
        monitoring = validate_identifier(os.environ.get("MONITORING_TABLE") or MONITORING_TABLE, "MONITORING_TABLE")
        ledger = validate_identifier(os.environ.get("LEDGER_TABLE") or LEDGER_TABLE, "LEDGER_TABLE")
        with open_connection(args) as connection:
            read = read_monitoring(
                connection,
                monitoring_table=monitoring,
                ledger_table=ledger,
                model_version=args.model_version,
                last=args.last,
            )
    except (ValueError, NothingToReportError) as exc:
        return _error(str(exc), EXIT_USAGE)
    except CannotConnectError as exc:
        return _error(str(exc), exc.status)
    except snowflake.connector.errors.Error as exc:
        return _error(f"query failed: {exc.msg or type(exc).__name__}", 1, prefix="")
    from tools.commands.report_html import ReadContext, render

    context = ReadContext(connection.described, datetime.now(UTC), args.model_version, args.last)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(read, context), encoding="utf-8")
    print(_shown(args.out))
    return 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of loads, 1 or more: {text!r}")
    return int(text)


def _error(message: str, status: int, prefix: str = "error: ") -> int:
    print(prefix + " ".join(message.split()), file=sys.stderr)  # one line, whatever the message held
    return status


def _shown(path: Path) -> Path:
    """The path as given, or relative to the working directory when it lies under it."""
    absolute = path.resolve()
    return absolute.relative_to(Path.cwd()) if absolute.is_relative_to(Path.cwd()) else absolute


if __name__ == "__main__":
    raise SystemExit(main())

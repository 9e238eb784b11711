"""Capture every log line the function emits, at DEBUG, including the connector's and botocore's.

Used two ways:
* ``capture_function_logs()``: a context manager for in-process tests (tests/hardening/test_no_leaks.py);
* as a pytest plugin, ``-p tests.hardening.leak_guard`` with ``LEAK_GUARD_OUT=<file>``: wraps
  ``handler.app.lambda_handler`` for a whole test run (the integration suite, run by test_no_leaks.py in a
  subprocess) and appends every captured line to the file. With ``LEAK_GUARD_PASSWORD`` set, the local stack's
  Snowflake secret carries that password, so the scan can look for it.

Only records emitted by the thread running the handler are kept: the test harness's own uploads (botocore
logs request bodies at DEBUG) and the emulators' server threads are not the function.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import traceback
from collections.abc import Iterator
from typing import Any

DEBUG_LOGGERS = ("snowflake.connector", "botocore", "boto3", "urllib3", "aws_lambda_powertools", "s3transfer")


class _Capture(logging.Handler):
    def __init__(self, thread: int) -> None:
        super().__init__(logging.DEBUG)
        self.thread = thread
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is still worth scanning
            text = f"{record.msg!r} {record.args!r}"
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        parts = [f"{record.name} {record.levelname} {text}"]
        if extras:
            parts.append(repr(extras))
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        self.lines.append(" ".join(parts))


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def capture_function_logs() -> Iterator[list[str]]:
    """Every log record of this thread, from every logger, at DEBUG, for the duration of the block."""
    capture = _Capture(threading.get_ident())
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in DEBUG_LOGGERS), _function_logger()]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.DEBUG)
            lg.addHandler(capture)
        yield capture.lines
    finally:
        for lg, level, propagate in saved:
            lg.removeHandler(capture)
            lg.setLevel(level)
            lg.propagate = propagate


def _function_logger() -> logging.Logger:
    from handler import app

    return logging.getLogger(app.logger.name)  # Powertools' Logger writes through this one, not propagating


# --- as a pytest plugin ---------------------------------------------------------------------------------------
def pytest_configure(config: Any) -> None:
    out = os.environ.get("LEAK_GUARD_OUT")
    if not out:
        return
    password = os.environ.get("LEAK_GUARD_PASSWORD")
    if password:
        import tools.emulated.local_stack as local_stack

        local_stack.FAKE_CREDENTIALS = {**local_stack.FAKE_CREDENTIALS, "password": password}

    from handler import app

    original = app.lambda_handler

    def guarded(event: Any, context: Any) -> Any:
        with capture_function_logs() as lines:
            try:
                return original(event, context)
            finally:
                with open(out, "a", encoding="utf-8") as fh:
                    fh.writelines(line.replace("\n", "\\n") + "\n" for line in lines)

    app.lambda_handler = guarded

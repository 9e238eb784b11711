"""`make demo`: the whole job on the embedded defaults, with no AWS or Snowflake account.

Starts moto (S3, SQS + Secrets Manager, real HTTP) and fakesnow (HTTP, file-backed under
.local/snowflake/<model version>/), wired as template.yaml wires the stack, uploads the sample CSV (or `make demo
CSV=your.csv`), lets the local poller deliver S3's notification from the queue to the function, and prints what
landed. The run itself is `make score`'s (tools/commands/score.py). Each model version has its own emulated
Snowflake, so `make demo MODEL_DIR=<another model>` scores the sample afresh with that model.
"""

from __future__ import annotations

from tools.commands.score import ROOT, default_key

SAMPLE = ROOT / "data" / "breast_cancer.csv"
SAMPLE_KEY = "incoming/2026/11/wdbc sample+1.csv"  # a space and a `+`: the event carries it URL-encoded


def main(argv: list[str] | None = None) -> int:
    """The sample file (or ``--csv``, the same as ``make score FILE=...``) through the handler; see score.py."""
    from tools.commands.score import parse_args, run_with_status

    args = parse_args(argv, default_file=SAMPLE)
    key = args.key or (SAMPLE_KEY if args.file.resolve() == SAMPLE else default_key(args.file))
    return run_with_status(args.file, key, args.db_path)


if __name__ == "__main__":
    raise SystemExit(main())

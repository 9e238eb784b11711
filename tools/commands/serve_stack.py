"""`make local-stack`: moto + fakesnow as long-running servers for `sam local invoke`, until Ctrl-C.

    python -m tools.commands.serve_stack [--host 127.0.0.1] [--aws-port 4566] [--snowflake-port 4567]

Uploads an object for every sample event in events/ and writes the patched events and the env file to .local/.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from pathlib import Path

from tools.commands.score import default_db_path
from tools.emulated.containers import DOCKER_NETWORK, SAM_ENV_FILE, SAM_EVENTS_DIR, docker_network_gateway, sam_env_vars
from tools.emulated.local_stack import REGION, DatabaseInUseError, local_stack
from tools.emulated.sample_events import make_uploader, patch_event


def serve(argv: list[str] | None = None) -> int:
    """`make local-stack`: moto + fakesnow as long-running servers for `sam local invoke`, until Ctrl-C."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m tools.commands.serve_stack", description=serve.__doc__)
    parser.add_argument("--network", default=DOCKER_NETWORK, help="Docker network whose gateway the stack binds")
    parser.add_argument("--host", help="bind here instead (e.g. 127.0.0.1 when no container needs the stack)")
    parser.add_argument("--aws-port", type=int, default=4566)
    parser.add_argument("--snowflake-port", type=int, default=4567)
    parser.add_argument("--db-path", type=Path, help="default: the model's, .local/snowflake/<model version>/")
    parser.add_argument("--env-file", type=Path, default=SAM_ENV_FILE)
    parser.add_argument("--events", type=Path, default=Path("events"), help="sample events to upload objects for")
    parser.add_argument("--events-out", type=Path, default=SAM_EVENTS_DIR)
    parser.add_argument("--data", type=Path, default=Path("data") / "breast_cancer.csv")
    parser.add_argument(
        "--invoke-image", default="official", help="the image to name in the printed command; 'official' = SAM's"
    )
    args = parser.parse_args(argv)
    args.db_path = args.db_path or default_db_path()

    host = args.host or docker_network_gateway(args.network)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a kill (also when started in the background)
        signal.signal(signum, lambda *_: stopping.set())
    with contextlib.ExitStack() as running:
        try:
            stack = running.enter_context(
                local_stack(
                    args.db_path,
                    host=host,
                    aws_port=args.aws_port,
                    snowflake_port=args.snowflake_port,
                    owner="make local-stack: python -m tools.commands.serve_stack",
                )
            )
        except DatabaseInUseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        upload = make_uploader(stack, args.data.read_bytes(), versioned=True)  # as deployed: each start, new versions
        args.events_out.mkdir(parents=True, exist_ok=True)
        for event_file in sorted(args.events.glob("*.json")):
            if event_file.name == "env.json":
                continue
            event = json.loads(event_file.read_text(encoding="utf-8"))
            patched = patch_event(event, upload)
            (args.events_out / event_file.name).write_text(json.dumps(patched, indent=2), encoding="utf-8")
        args.env_file.parent.mkdir(parents=True, exist_ok=True)
        env_vars = sam_env_vars(stack)
        args.env_file.write_text(json.dumps(env_vars, indent=2) + "\n", encoding="utf-8")
        network = "" if args.host else f" --docker-network {args.network}"
        image = "" if args.invoke_image == "official" else f" --invoke-image {args.invoke_image} --skip-pull-image"
        print(json.dumps(env_vars, indent=2))
        print(
            f"\nLocal stack up: S3 + Secrets Manager at {stack.aws_endpoint}, Snowflake at http://{host}:"
            f"{stack.snowflake_port} (data in {args.db_path}/).\n"
            f"Env file: {args.env_file}; sample events with their objects uploaded: {args.events_out}/\n"
            f"In another shell:\n"
            f"  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local sam local invoke ScoringFunction"
            f" -e {args.events_out}/s3-put.json --env-vars {args.env_file}{network} --region {REGION}{image}\n"
            f"Backfill a prefix of its bucket: make backfill LOCAL=1 S3=s3://{stack.bucket}/incoming/\n"
            f"Ctrl-C stops the stack.",
            flush=True,
        )
        while not stopping.wait(0.5):
            pass
        print("\nLocal stack stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve())

"""`make deploy-local`: the real `sam deploy` of the built artifact into a local AWS emulator, then checks.

1. Starts LocalStack's community core on 127.0.0.1 (tools/emulated/localstack_offline.py, its own venv:
   `make localstack`), without Docker. Where this machine allows it (root, or user namespaces), everything runs in
   a network namespace of its own with only a loopback interface: no request can leave the machine, whatever any
   tool tries. The checks are in deploy_checks.py, the stack's names and the report in deploy_stack.py.
2. Runs `sam deploy --resolve-s3` (the pinned SAM CLI, build-cache/venv-sam) of .aws-sam/build/template.yaml.
3. Checks what was built through the emulator's APIs (boto3), never by re-reading the template: queues, event
   source mapping, function, role, bucket, log group, alarms, outputs.
4. Checks behaviour: uploads inside and outside the notification filter, a poison message reaching the DLQ after
   maxReceiveCount receives, a second deploy with a changed parameter updating in place, and a stack delete that
   keeps the bucket and the dead-letter queue.
5. Prints a summary (passed, failed, and the emulator's gaps, listed as such and never counted as passes), writes
   it to .local/deploy-local/summary.json, and stops what it started. Exit status 1 when any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from tools.commands.deploy_checks import check_behaviour, check_delete, check_update, check_wiring
from tools.commands.deploy_stack import (
    ACCESS_LOG_BUCKET,
    ALARM_TOPIC,
    BUILT_TEMPLATE,
    EMULATOR_TEMPLATE,
    NETNS_FLAG,
    PARAMETERS,
    REGION,
    ROOT,
    STACK,
    UNCHECKABLE,
    UPDATED,
    WORK,
    Check,
    Clients,
    Report,
)

# --- the emulator -------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def emulator(venv: Path, report: Report) -> Iterator[str]:
    """LocalStack on 127.0.0.1:<free port>, stopped (its whole process group) on the way out."""
    port = free_port()
    data = WORK / "localstack"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    log = (WORK / "localstack.log").open("w")
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} missing: run `make localstack`")
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(python), str(ROOT / "tools" / "emulated" / "localstack_offline.py"), f"127.0.0.1:{port}", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=WORK,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the emulator exited ({proc.returncode}): see {WORK / 'localstack.log'}")
            try:
                with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the emulator did not answer in 180 s: see {WORK / 'localstack.log'}")
            time.sleep(0.5)
        report.timings["emulator start"] = round(time.monotonic() - started, 1)
        print(f"[deploy-local] emulator up on {endpoint} ({report.timings['emulator start']} s)", file=sys.stderr)
        yield endpoint
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        print("[deploy-local] emulator stopped", file=sys.stderr)


def aws_env(endpoint: str) -> dict[str, str]:
    """Fake credentials (the emulator accepts any; real keys never reach it) and the emulator's endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "SAM_CLI_TELEMETRY": "0",
            "SAM_CLI_POLL_DELAY": "1",
            "NO_PROXY": "*",
        }
    )
    return env


# --- sam deploy ---------------------------------------------------------------------------------------------------


def emulator_template(report: Report) -> Path:
    """The built template as sam deploy takes it, without DeploymentPreference.Alarms (deploy_stack.EMULATOR_TEMPLATE
    says why); everything else unchanged."""
    import yaml

    template = yaml.safe_load(BUILT_TEMPLATE.read_text(encoding="utf-8"))
    removed = []
    for name, body in template.get("Resources", {}).items():
        props = body.get("Properties", {})
        if props.get("DeploymentPreference", {}).pop("Alarms", None) is not None:
            removed.append(name)
        if isinstance(props.get("CodeUri"), str):  # relative to the built template, which stays where it is
            props["CodeUri"] = str((BUILT_TEMPLATE.parent / props["CodeUri"]).resolve())
    EMULATOR_TEMPLATE.write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
    report.notes.append(f"deployed without DeploymentPreference.Alarms of {removed} (LocalStack hangs on them)")
    return EMULATOR_TEMPLATE


def sam_deploy(sam: Path, endpoint: str, parameters: dict[str, str], label: str, report: Report) -> bool:
    overrides = [f"{k}={v}" for k, v in parameters.items()]
    template = EMULATOR_TEMPLATE if EMULATOR_TEMPLATE.exists() else BUILT_TEMPLATE
    command = [
        str(sam),
        "deploy",
        "--template-file",
        str(template),
        "--stack-name",
        STACK,
        "--resolve-s3",
        "--region",
        REGION,
        "--capabilities",
        "CAPABILITY_IAM",
        "--no-confirm-changeset",
        "--no-fail-on-empty-changeset",
        "--no-progressbar",
        "--parameter-overrides",
        *overrides,
    ]
    log = WORK / f"sam-deploy-{label}.log"
    print(f"[deploy-local] sam deploy ({label}; log: {log.relative_to(ROOT)})", file=sys.stderr, flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=aws_env(endpoint), cwd=ROOT)
    report.timings[f"sam deploy ({label})"] = round(time.monotonic() - started, 1)
    text = log.read_text(encoding="utf-8", errors="replace")
    tail = " | ".join(text.strip().splitlines()[-3:])
    return report.check(f"sam deploy ({label}) exits 0", proc.returncode == 0, f"exit {proc.returncode}: {tail}")


def prepare(c: Clients) -> str:
    """What the optional parameters point at: an SNS topic for the alarms, a bucket for access logs."""
    c.s3.create_bucket(Bucket=ACCESS_LOG_BUCKET)
    arn: str = c.sns.create_topic(Name=ALARM_TOPIC)["TopicArn"]
    return arn


# --- isolation and main -------------------------------------------------------------------------------------------


def isolate(argv: list[str]) -> None:
    """Re-run in a new network namespace (loopback only) where the kernel allows it; else go on, saying so."""
    if os.environ.get(NETNS_FLAG):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare and ip:
        for flags in (["-n"], ["-rn"]):
            probe = subprocess.run([unshare, *flags, ip, "link", "set", "lo", "up"], capture_output=True)
            if probe.returncode == 0:
                env = {**os.environ, NETNS_FLAG: " ".join(flags)}
                os.execvpe(unshare, [unshare, *flags, sys.executable, "-m", "tools.commands.deploy_local", *argv], env)
    print(
        "[deploy-local] no network namespace here (unshare not permitted): running on the host's network,"
        " with telemetry off and every endpoint on 127.0.0.1",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sam", type=Path, default=ROOT / "build-cache" / "venv-sam" / "bin" / "sam")
    parser.add_argument("--localstack-venv", type=Path, default=ROOT / "build-cache" / "venv-localstack")
    parser.add_argument("--no-isolate", action="store_true", help="run on the host's network (loopback endpoints)")
    args = parser.parse_args(argv)
    if not args.no_isolate:
        isolate(argv)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")  # unwinds through `emulator`, which stops it

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    if not BUILT_TEMPLATE.exists():
        raise SystemExit(f"{BUILT_TEMPLATE} missing: run `make build`")
    WORK.mkdir(parents=True, exist_ok=True)
    report = Report()
    netns = os.environ.get(NETNS_FLAG)
    report.notes.append(
        f"network: own namespace, loopback only (unshare {netns})" if netns else "network: the host's (no namespace)"
    )
    started = time.monotonic()
    ids: dict[str, str] = {}
    EMULATOR_TEMPLATE.unlink(missing_ok=True)
    emulator_template(report)
    with emulator(args.localstack_venv.resolve(), report) as endpoint:
        c = Clients(endpoint)
        topic_arn = prepare(c)
        if sam_deploy(
            args.sam.resolve(),
            endpoint,
            {**PARAMETERS, "AlarmTopicArn": topic_arn, "InputBucketAccessLogBucket": ACCESS_LOG_BUCKET},
            "create",
            report,
        ):
            checks = time.monotonic()
            ids = check_wiring(c, report, topic_arn)
            check_behaviour(c, report, ids)
            report.timings["checks"] = round(time.monotonic() - checks, 1)
            second = {
                **PARAMETERS,
                **UPDATED,
                "AlarmTopicArn": topic_arn,
                "InputBucketAccessLogBucket": ACCESS_LOG_BUCKET,
            }
            if sam_deploy(args.sam.resolve(), endpoint, second, "update", report):
                check_update(c, report, ids)
            check_delete(c, report, ids)
    report.timings["total"] = round(time.monotonic() - started, 1)
    for name, reason in UNCHECKABLE.items():
        report.checks.append(Check(name, "gap", reason))
    summary = {
        "passed": report.count("pass"),
        "failed": report.count("fail"),
        "gaps": report.count("gap"),
        "checks": [asdict(c) for c in report.checks],
        "timings_s": report.timings,
        "notes": report.notes,
    }
    (WORK / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print("\n[deploy-local] summary", file=sys.stderr)
    for check in report.checks:
        if check.status != "pass":
            print(f"  {check.status.upper():4} {check.name}: {check.detail}", file=sys.stderr)
    print(
        f"  {summary['passed']} passed, {summary['failed']} failed; {summary['gaps']} emulator gaps (not passes);"
        f" timings {report.timings}; {'; '.join(report.notes)}",
        file=sys.stderr,
    )
    return 1 if summary["failed"] or not ids else 0


if __name__ == "__main__":
    sys.exit(main())

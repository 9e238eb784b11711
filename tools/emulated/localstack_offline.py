"""LocalStack's community core, run on this machine without Docker and without reaching beyond it.

Run with the emulator's own interpreter (build-cache/venv-localstack, `make localstack`), never the project's
.venv: `build-cache/venv-localstack/bin/python tools/emulated/localstack_offline.py 127.0.0.1:PORT DATA_DIR`.
`tools.commands.deploy_local` starts and stops it.

What is changed, and why:
* Telemetry and the update checks are off (DISABLE_EVENTS and friends); no DNS server (DNS_ADDRESS=0): it would
  listen on 0.0.0.0:53 and forward to the machine's resolver.
* The gateway listens on the loopback address given, nothing else (GATEWAY_LISTEN).
* Lambda: a function is created, configured and wired (its event source mappings too), but no code runs. LocalStack
  would prepare each new function version by downloading its runtime emulator (lambda-runtime-init, from GitHub) and
  pulling the runtime's container image; both are replaced here by a no-op, and starting an execution environment
  raises. `tools.commands.deploy_local` disables the event source mapping before it sends messages, and lists
  "the function runs" as an emulator gap (the artifact runs under `make invoke` and `make sam-local-invoke`).
"""

from __future__ import annotations

import os
import sys


def configure(listen: str, data_dir: str) -> None:
    os.environ.update(
        {
            "GATEWAY_LISTEN": listen,
            "OVERRIDE_IN_DOCKER": "0",
            "DISABLE_EVENTS": "1",  # no analytics events
            "DISABLE_CORS_CHECKS": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",  # a self-signed certificate instead of downloading LocalStack's
            "DNS_ADDRESS": "0",
            "LOCALSTACK_VOLUME_DIR": data_dir,
            "FILESYSTEM_ROOT": data_dir,
            "PERSISTENCE": "0",
            "EAGER_SERVICE_LOADING": "0",
            "LAMBDA_RUNTIME_EXECUTOR": "docker",  # patched below: never starts a container
            "LOCALSTACK_HOST": listen,  # queue URLs name 127.0.0.1, not a public DNS name
            "SQS_ENDPOINT_STRATEGY": "path",
        }
    )
    # Proxies would send requests elsewhere; loopback only.
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(key, None)


class NoLambdaRuntimeError(RuntimeError):
    """deploy-local's emulator runs no function code (nothing may be downloaded or pulled)."""


def patch_lambda() -> None:
    from localstack.services.lambda_.invocation import docker_runtime_executor as docker_executor

    def prepare_version(cls: type, function_version: object) -> None:
        return None  # no runtime-init download, no image pull: the function is Active but cannot run

    def cleanup_version(cls: type, function_version: object) -> None:
        return None

    def start(self: object, *args: object, **kwargs: object) -> None:
        raise NoLambdaRuntimeError("deploy-local's emulator runs no Lambda code (no runtime download, no Docker)")

    def validate_environment(cls: type) -> bool:
        return True

    executor = docker_executor.DockerRuntimeExecutor
    executor.prepare_version = classmethod(prepare_version)  # type: ignore[method-assign,assignment]
    executor.cleanup_version = classmethod(cleanup_version)  # type: ignore[method-assign,assignment]
    executor.validate_environment = classmethod(validate_environment)  # type: ignore[method-assign,assignment]
    executor.start = start  # type: ignore[method-assign,assignment]


def die_with_parent() -> None:
    """SIGTERM when the process that started us dies, however it dies (Linux): no emulator is left behind."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl
        sys.exit("the process that started the emulator is gone")


def main(argv: list[str]) -> None:
    die_with_parent()
    if len(argv) != 2:
        sys.exit("usage: localstack_offline.py 127.0.0.1:PORT DATA_DIR")
    listen, data_dir = argv
    if not listen.startswith("127."):
        sys.exit(f"loopback only, not {listen}")
    configure(listen, data_dir)
    patch_lambda()
    from localstack.runtime.main import main as localstack_main

    localstack_main()


if __name__ == "__main__":
    main(sys.argv[1:])

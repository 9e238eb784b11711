"""The local stack for a function in a container (`make local-stack`, `make sam-local-invoke`): our own Docker
bridge network whose gateway the stack binds, and the `sam local invoke --env-vars` file pointed at the stack."""

from __future__ import annotations

from pathlib import Path

from tools.emulated.local_stack import LocalStack

DOCKER_NETWORK = "tumour-scoring-local"
SAM_ENV_FILE = Path(".local") / "sam-env.json"
SAM_EVENTS_DIR = Path(".local") / "events"


def docker_network_gateway(name: str = DOCKER_NETWORK) -> str:
    """The gateway address of our own Docker bridge network (created if missing): where the stack listens.

    A container started by `sam local invoke --docker-network <name>` reaches the host at this address. It is
    an address of this machine (the bridge's end on the host), reachable from the host and from containers
    only; the stack is never bound to an address outside this machine.
    """
    import ipaddress
    import subprocess

    def gateway() -> str | None:
        proc = subprocess.run(
            ["docker", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}", name],
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.split() else None

    address = gateway()
    if address is None:
        subprocess.run(
            ["docker", "network", "create", "--driver", "bridge", "--label", "project=tumour-scoring", name],
            capture_output=True,
            text=True,
            check=True,
        )
        address = gateway()
    if address is None or not ipaddress.ip_address(address).is_private:
        raise RuntimeError(f"docker network {name}: no private gateway address ({address!r})")
    return address


def sam_env_vars(stack: LocalStack, logical_id: str = "ScoringFunction") -> dict[str, dict[str, str]]:
    """The `sam local invoke --env-vars` file: the variables template.yaml declares, pointed at the stack.

    SAM passes only variables the template declares (AWS_ENDPOINT_URL, SNOWFLAKE_HOST/PORT/PROTOCOL are
    declared for this, empty by default); credentials and region come from SAM's own environment.
    """
    env = stack.function_env()
    declared = (
        "AWS_ENDPOINT_URL",
        "SNOWFLAKE_HOST",
        "SNOWFLAKE_PORT",
        "SNOWFLAKE_PROTOCOL",
        "SNOWFLAKE_SECRET_NAME",
        "SNOWFLAKE_DATABASE",
        "SNOWFLAKE_SCHEMA",
        "SNOWFLAKE_WAREHOUSE",
    )
    return {logical_id: {name: env[name] for name in declared}}

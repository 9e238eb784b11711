"""The function's environment as Lambda and `sam local invoke` build it (template.yaml, env.json, the local
stack's wiring), and what an invocation returned and left behind; for both ways tools/commands/invoke.py runs it.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tools.sam_template import FUNCTION_ID, ROOT, TEMPLATE, function_spec, load_template

SAMPLE_CSV = ROOT / "data" / "breast_cancer.csv"  # uploaded for every object an event names


def function_environment(
    env_vars_file: Path | None,
    stack_env: dict[str, str],
    parameter_overrides: dict[str, str] | None = None,
    logical_id: str = FUNCTION_ID,
) -> tuple[Any, dict[str, str]]:
    """The function's environment as `sam local invoke --env-vars F --parameter-overrides P` would build it."""
    template = load_template(TEMPLATE)
    env_json: dict[str, Any] = json.loads(env_vars_file.read_text(encoding="utf-8")) if env_vars_file else {}
    spec = function_spec(template, logical_id, {**stack_parameters(), **(parameter_overrides or {})})
    env = dict(spec.environment)
    # env.json: "Parameters" applies to every function, then the function's own section. As with SAM, only
    # variables the template declares can be set this way.
    overrides = {**env_json.get("Parameters", {}), **env_json.get(logical_id, {})}
    for name, value in overrides.items():
        if name in env or name in spec.unresolved:
            env[name] = str(value)
        else:
            print(f"[invoke] env.json: {name} is not declared in template.yaml; SAM would ignore it", file=sys.stderr)
    # The local stack's wiring (endpoints, fake credentials) wins: it is what makes this run offline.
    env.update(stack_env)
    return spec, env


def stack_parameters() -> dict[str, str]:
    """Template parameters pointed at the local stack (tools/emulated/local_stack.py)."""
    from tools.emulated import local_stack

    return {
        "SnowflakeSecretName": local_stack.SECRET_NAME,
        "SnowflakeDatabase": local_stack.DATABASE,
        "SnowflakeSchema": local_stack.SCHEMA,
        "SnowflakeWarehouse": local_stack.WAREHOUSE,
    }


def lambda_environment(spec: Any, function_env: dict[str, str], artifact: Path, runtime_dir: Path) -> dict[str, str]:
    """What Lambda itself sets, then the function's variables (a clean environment: nothing of this shell)."""
    name = f"tumour-scoring-{spec.logical_id}"
    region = function_env.get("AWS_REGION", "us-east-1")
    base = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(artifact),
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_SAM_LOCAL": "true",  # as `sam local invoke` sets it (Powertools then skips X-Ray)
    }
    return {**base, **function_env}


def function_raised(response: Any) -> bool:
    """Whether a response is the runtime's error payload (the function raised), as Lambda reports it."""
    return isinstance(response, dict) and {"errorMessage", "errorType"} <= set(response)


def count_rows(stack: Any, env: dict[str, str]) -> dict[str, int]:
    """Rows in the target, rejects and ledger tables afterwards (for the summary and the tests)."""
    counts: dict[str, int] = {}
    tables = {
        "target": env.get("TARGET_TABLE") or "TUMOUR_SCORES",
        "rejects": env.get("REJECTS_TABLE") or "TUMOUR_SCORE_REJECTS",
        "ledger": env.get("LEDGER_TABLE") or "TUMOUR_SCORE_LOADS",
    }
    try:
        conn = stack.snowflake_connect()
    except Exception as exc:  # the counts are informational
        print(f"[invoke] cannot count rows: {exc}", file=sys.stderr)
        return counts
    try:
        cur = conn.cursor()
        for what, table in tables.items():
            try:
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                counts[what] = int(cur.fetchone()[0])
            except Exception:
                counts[what] = 0  # not created: nothing was written there
    finally:
        conn.close()
    return counts

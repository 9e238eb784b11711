"""The local stack's wiring for a function in a container (no Docker needed for these)."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import pytest

from tools.emulated.containers import sam_env_vars
from tools.emulated.local_stack import LocalStack, _put_over_http
from tools.sam_template import FUNCTION_ID, load_template

STAGE = '"TUMOURS"."SCORING"."SNOWPARK_TEMP_STAGE_X"'


def _call(body: dict[str, Any], path: str = "/queries/v1/query-request") -> tuple[dict[str, Any], dict[bytes, bytes]]:
    """Send one gzipped JSON request through the wrapper; return what the wrapped app received."""
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        seen["headers"] = dict(scope["headers"])
        raw = message["body"]
        seen["body"] = json.loads(gzip.decompress(raw) if seen["headers"].get(b"content-encoding") == b"gzip" else raw)

    payload = gzip.compress(json.dumps(body).encode())
    messages = [{"type": "http.request", "body": payload[:10], "more_body": True}]
    messages.append({"type": "http.request", "body": payload[10:], "more_body": False})

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {"type": "http", "path": path, "headers": [(b"content-encoding", b"gzip")]}
    asyncio.run(_put_over_http(app)(scope, receive, None))
    return seen["body"], seen["headers"]


def test_write_pandas_put_with_a_bound_stage_is_sent_without_the_binding() -> None:
    # Given write_pandas' PUT, the stage bound as parameter 1
    body = {
        "sqlText": "PUT 'file:///tmp/x/file0.txt' ? parallel=4",
        "bindings": {"1": {"type": "TEXT", "value": STAGE}},
    }
    # When it passes through the wrapper
    received, headers = _call(body)
    # Then fakesnow sees the stage inline and no bindings (so it answers with an upload over HTTP)
    assert received == {"sqlText": f"PUT 'file:///tmp/x/file0.txt' {STAGE} parallel=4"}
    assert b"content-encoding" not in headers
    assert headers[b"content-length"] == str(len(json.dumps(received).encode())).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"sqlText": "SELECT ?", "bindings": {"1": {"type": "FIXED", "value": "1"}}}, id="not-a-put"),
        pytest.param({"sqlText": "PUT 'file:///tmp/x' @stage"}, id="put-without-binding"),
    ],
)
def test_other_requests_pass_unchanged(body: dict[str, Any]) -> None:
    # Given any other query request; When it passes through the wrapper; Then it arrives as sent
    assert _call(body)[0] == body


def test_the_env_file_sets_only_variables_the_template_declares() -> None:
    # Given a stack on a Docker network's gateway
    stack = LocalStack(aws_endpoint="http://172.30.0.1:4566", snowflake_host="172.30.0.1", snowflake_port=4567,
                       snowflake_db_path=None)  # fmt: skip
    # When the env file for `sam local invoke --env-vars` is made
    env = sam_env_vars(stack)[FUNCTION_ID]
    # Then every variable is declared in template.yaml (SAM drops the others) and points at the stack
    declared = load_template()["Resources"][FUNCTION_ID]["Properties"]["Environment"]["Variables"]
    assert set(env) <= set(declared)
    assert env["AWS_ENDPOINT_URL"] == "http://172.30.0.1:4566"
    assert (env["SNOWFLAKE_HOST"], env["SNOWFLAKE_PORT"], env["SNOWFLAKE_PROTOCOL"]) == ("172.30.0.1", "4567", "http")

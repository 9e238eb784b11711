"""Every setting the function reads can be set on the deployed stack, and the four places that say so agree:
`src/pipeline/settings.py` (what is read), `template.yaml` (the parameters and the variables they set), the
README's configuration table (variable -> parameter, or "none: <why>") and docs/deploy.md's parameter table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import ENVIRONMENT, Settings

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"SNOWFLAKE_SECRET_NAME": "s", "SNOWFLAKE_DATABASE": "D", "SNOWFLAKE_SCHEMA": "S"}
NAME = re.compile(r"`([A-Za-z_]+)`")


def _table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``heading`` (a line of the document), header row excluded."""
    lines = markdown.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def readme_table() -> dict[str, str | None]:
    """Variable -> the template parameter the README names for it (None: the README says why not)."""
    table: dict[str, str | None] = {}
    for cells in _table_rows((ROOT / "README.md").read_text(encoding="utf-8"), "\n## Configuration\n"):
        variables, parameter_cell = NAME.findall(cells[0]), cells[1]
        if parameter_cell.startswith("none:"):
            assert len(parameter_cell) > len("none: ") + 5, f"{variables}: 'none:' needs a reason"
            table.update(dict.fromkeys(variables, None))
            continue
        parameters = NAME.findall(parameter_cell)
        assert len(parameters) == len(variables), f"README row {cells[0]}: one parameter per variable"
        table.update(zip(variables, parameters, strict=True))
    return table


def deploy_md_parameters() -> set[str]:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    rows = _table_rows(text, "`sam deploy --guided` asks for these parameters")
    return {name for cells in rows for name in NAME.findall(cells[0])}


def template_variables(template: dict[str, Any]) -> dict[str, str]:
    """Variables the function's environment takes from a parameter -> that parameter."""
    variables = template["Resources"]["ScoringFunction"]["Properties"]["Environment"]["Variables"]
    return {name: value["Ref"] for name, value in variables.items() if isinstance(value, dict) and "Ref" in value}


def test_the_readme_lists_every_variable_the_function_reads(template: dict[str, Any]) -> None:
    # Given what the settings read and what the template sets from parameters (e.g. POWERTOOLS_LOG_LEVEL)
    read = set(ENVIRONMENT) | set(template_variables(template))

    # When the README's configuration table is read
    documented = set(readme_table())

    # Then it lists exactly those variables
    assert sorted(read - documented) == [], "missing from README's configuration table"
    assert sorted(documented - read) == [], "in README's configuration table but read by nothing"


def test_each_variable_is_set_by_the_parameter_the_readme_names(template: dict[str, Any]) -> None:
    # Given the template's variables and the README's table
    in_template = template_variables(template)

    # When each README row is compared with the template
    mismatches = {
        var: (param, in_template.get(var)) for var, param in readme_table().items() if in_template.get(var) != param
    }

    # Then every named parameter sets that variable, and every "none:" variable is absent from the template
    assert mismatches == {}, "variable: (README's parameter, template's parameter)"


def test_deploy_md_lists_every_template_parameter(template: dict[str, Any]) -> None:
    # Given the template's parameters
    declared = set(template["Parameters"])

    # When docs/deploy.md's parameter table is read
    documented = deploy_md_parameters()

    # Then the two agree
    assert sorted(declared - documented) == [], "missing from docs/deploy.md's parameter table"
    assert sorted(documented - declared) == [], "in docs/deploy.md but not a template parameter"


def _defaults(template: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return [
        (var, param, template["Parameters"][param]["Default"])
        for var, param in template_variables(template).items()
        if var in ENVIRONMENT and str(template["Parameters"][param].get("Default", "")) != ""
    ]


def test_template_defaults_equal_the_settings_defaults(template: dict[str, Any]) -> None:
    # Given every parameter with a non-empty default that sets a setting
    cases = _defaults(template)
    assert cases, "no parameter defaults found: the template's shape changed"

    # When the function reads each default as its variable
    unset = Settings.from_env(REQUIRED)
    differences = {}
    for var, param, default in cases:
        if var in REQUIRED:
            continue
        field = ENVIRONMENT[var]
        deployed = getattr(Settings.from_env(REQUIRED | {var: str(default)}), field)
        if deployed != getattr(unset, field):
            differences[param] = (default, getattr(unset, field))

    # Then it gets the value it has when the variable is not set at all
    assert differences == {}, "parameter: (template default, settings default)"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("| `CHUNK_ROWS` | none: | 200000 | rows |", "needs a reason"),
        ("| `MAX_OBJECT_BYTES`, `MAX_UNCOMPRESSED_BYTES` | `MaxObjectBytes` | | |", "one parameter per variable"),
    ],
)
def test_a_malformed_readme_row_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: str, problem: str
) -> None:
    # Given a README whose configuration table has a row without a reason or without all its parameters
    (tmp_path / "README.md").write_text(f"# x\n\n## Configuration\n\n| a | b | c | d |\n|---|---|---|---|\n{row}\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)

    # When it is read, Then the reader says what is wrong
    with pytest.raises(AssertionError, match=problem):
        readme_table()


def test_a_publish_always_fits_in_the_functions_timeout(template: dict[str, Any]) -> None:
    # Given the function's timeout, the largest SnowflakeLockTimeout the template allows, and the local runs' context
    from pipeline.process import PUBLISH_MARGIN_SECONDS
    from tools.emulated.local_stack import LambdaContext

    timeout = template["Resources"]["ScoringFunction"]["Properties"]["Timeout"]
    largest_lock_wait = template["Parameters"]["SnowflakeLockTimeout"]["MaxValue"]

    # When a publish needs its longest (the lock wait plus the margin)
    # Then an invocation still has time to stage before it, and local runs count down from the same timeout
    assert largest_lock_wait + PUBLISH_MARGIN_SECONDS <= timeout * 3 / 4
    assert LambdaContext().timeout_seconds == timeout

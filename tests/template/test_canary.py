"""Gradual, reversible deployments in the deployed (translated) template: versions behind the alias "live", the ingest
queue invoking that alias, CodeDeploy shifting traffic as DeploymentType says, and rolling back when the new version
raises or, with ModelVersion, when its model drifts or its estimated accuracy falls (docs/deploy.md, "A canary for
every new version"). The local deploy checks what LocalStack can build of it (tools/commands/deploy_checks.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from samtranslator.model.preferences.deployment_preference_collection import CODEDEPLOY_PREDEFINED_CONFIGURATIONS_LIST

from tests.template.test_queue import event_source, resources_of_type
from tools.commands import deploy_model_version
from tools.sam_template import FUNCTION_ID, ROOT, translate

ALIAS = f"{FUNCTION_ID}Aliaslive"
GROUP = f"{FUNCTION_ID}DeploymentGroup"
ROLLBACK_ALARMS = ["NewVersionErrorsAlarm", "ModelVersionDriftAlarm", "ModelVersionAccuracyAlarm"]
METADATA_VERSION = json.loads((ROOT / "model" / "metadata.json").read_text(encoding="utf-8"))["model_version"]


def _version_id(translated: dict[str, Any]) -> str:
    versions = resources_of_type(translated, "AWS::Lambda::Version")
    assert len(versions) == 1, versions
    return next(iter(versions))


def _holds(translated: dict[str, Any], condition: str, parameters: dict[str, str]) -> bool:
    """Evaluate one of the template's conditions (Fn::Not, Fn::Equals, Ref to a parameter) for parameter values."""
    values = {name: str(spec.get("Default", "")) for name, spec in translated["Parameters"].items()} | parameters

    def value(node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            return values[node["Ref"]]
        if isinstance(node, dict) and "Fn::Not" in node:
            return not value(node["Fn::Not"][0])
        if isinstance(node, dict) and "Fn::Equals" in node:
            left, right = node["Fn::Equals"]
            return value(left) == value(right)
        if isinstance(node, dict) and "Condition" in node:
            return value(translated["Conditions"][node["Condition"]])
        return node

    return bool(value(translated["Conditions"][condition]))


def _deployed(translated: dict[str, Any], parameters: dict[str, str]) -> tuple[set[str], list[str]]:
    """(the alarms CloudFormation creates, the alarms the deployment group rolls back on) for parameter values."""
    alarms = {
        name
        for name, body in resources_of_type(translated, "AWS::CloudWatch::Alarm").items()
        if "Condition" not in body or _holds(translated, body["Condition"], parameters)
    }
    configuration = translated["Resources"][GROUP]["Properties"]["AlarmConfiguration"]
    if "Fn::If" in configuration:
        condition, yes, no = configuration["Fn::If"]
        configuration = yes if _holds(translated, condition, parameters) else no
    assert configuration.get("Enabled") is True
    return alarms, [alarm["Name"]["Ref"] for alarm in configuration.get("Alarms", [])]


def test_each_deployment_publishes_a_version_behind_the_alias_live(translated: dict[str, Any]) -> None:
    # Given the function's alias in the deployed template
    aliases = resources_of_type(translated, "AWS::Lambda::Alias")
    # Then there is one, "live", on the function, pointing at the version this deployment publishes
    assert list(aliases) == [ALIAS]
    props = aliases[ALIAS]["Properties"]
    assert props["Name"] == "live"
    assert props["FunctionName"] == {"Ref": FUNCTION_ID}
    assert props["FunctionVersion"] == {"Fn::GetAtt": [_version_id(translated), "Version"]}
    # And CodeDeploy, not CloudFormation, moves the alias (through the function's deployment group)
    assert aliases[ALIAS]["UpdatePolicy"] == {
        "CodeDeployLambdaAliasUpdate": {
            "ApplicationName": {"Ref": "ServerlessDeploymentApplication"},
            "DeploymentGroupName": {"Ref": GROUP},
        }
    }


def test_the_ingest_queue_invokes_the_alias_not_the_unpublished_function(translated: dict[str, Any]) -> None:
    # Given the function's one event source mapping
    props = event_source(translated)
    # Then it invokes the alias, so that each SQS batch goes to whichever version CodeDeploy routes it to
    assert props["FunctionName"] == {"Ref": ALIAS}


def test_the_deployment_type_offers_sams_configurations_and_defaults_to_a_canary(template: dict[str, Any]) -> None:
    # Given the DeploymentType parameter and the function's deployment preference
    parameter = template["Parameters"]["DeploymentType"]
    preference = template["Resources"][FUNCTION_ID]["Properties"]["DeploymentPreference"]
    # Then it allows exactly SAM's predefined Lambda configurations (canary, linear, all at once), a canary by default
    assert sorted(parameter["AllowedValues"]) == sorted(CODEDEPLOY_PREDEFINED_CONFIGURATIONS_LIST)
    assert parameter["Default"] == "Canary10Percent5Minutes"
    # And it is what the deployment preference uses
    assert preference["Type"] == {"Ref": "DeploymentType"}


@pytest.mark.parametrize("deployment_type", ["Canary10Percent5Minutes", "Linear10PercentEvery1Minute", "AllAtOnce"])
def test_the_chosen_deployment_type_becomes_the_groups_codedeploy_configuration(deployment_type: str) -> None:
    # Given the template translated as CloudFormation's SAM transform does, with a DeploymentType
    translated = translate(parameters={"DeploymentType": deployment_type})
    # When the deployment group is read
    group = translated["Resources"][GROUP]["Properties"]
    # Then its configuration is CodeDeploy's predefined one of that name, with traffic control (blue/green)
    assert group["DeploymentConfigName"] == {
        "Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": deployment_type}]
    }
    assert group["DeploymentStyle"] == {"DeploymentType": "BLUE_GREEN", "DeploymentOption": "WITH_TRAFFIC_CONTROL"}
    # And the stack says which one it uses
    assert translated["Outputs"]["DeploymentType"]["Value"] == {"Ref": "DeploymentType"}


def test_a_deployment_rolls_back_on_failure_on_alarm_and_on_request(translated: dict[str, Any]) -> None:
    # Given the deployment group
    group = translated["Resources"][GROUP]["Properties"]
    # Then a failed deployment, a rollback alarm and a manual stop all send the traffic back to the old version
    assert group["AutoRollbackConfiguration"] == {
        "Enabled": True,
        "Events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"],
    }


def test_the_new_versions_errors_are_a_rollback_alarm(translated: dict[str, Any]) -> None:
    # Given the alarm on the errors of the version the deployment publishes
    alarm = translated["Resources"]["NewVersionErrorsAlarm"]["Properties"]
    # Then it reads Lambda's Errors for the alias and the executed version: the new version's errors alone
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": FUNCTION_ID}},
        {"Name": "Resource", "Value": {"Fn::Sub": "${ScoringFunction}:live"}},
        {"Name": "ExecutedVersion", "Value": {"Fn::GetAtt": [_version_id(translated), "Version"]}},
    ]
    # And one error in a minute fires it (a 5-minute canary gets several evaluations)
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 60, 0)
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert "Condition" not in translated["Resources"]["NewVersionErrorsAlarm"]


@pytest.mark.parametrize(
    ("metric", "service_wide"),
    [("DriftDetected", "DriftAlarm"), ("EstimatedAccuracy", "AccuracyAlarm")],
)
def test_the_model_versions_drift_and_accuracy_alarms_read_what_the_function_writes(
    translated: dict[str, Any], metric: str, service_wide: str
) -> None:
    # Given the per-model-version alarm on the metric, and the metric the function writes for one loaded file
    [name] = [n for n in ROLLBACK_ALARMS[1:] if translated["Resources"][n]["Properties"]["MetricName"] == metric]
    alarm = translated["Resources"][name]["Properties"]
    from pipeline import observability

    written = io.StringIO()
    with contextlib.redirect_stdout(written):
        observability.monitored(
            SimpleNamespace(
                monitoring_failed=None,
                drift_detected=True,
                estimated_accuracy=0.5,
                challenger_agreement=None,
                model_version="v1",
            )
        )
    emitted = [json.loads(line) for line in written.getvalue().splitlines() if f'"{metric}"' in line]
    # Then the alarm watches that namespace, and exactly the dimensions the function writes per model version
    mapping = translated["Mappings"]["Observability"]["Metrics"]
    assert alarm["Namespace"] == {"Fn::FindInMap": ["Observability", "Metrics", "Namespace"]}
    assert [m["_aws"]["CloudWatchMetrics"][0]["Namespace"] for m in emitted] == [mapping["Namespace"]]
    assert [m["_aws"]["CloudWatchMetrics"][0]["Dimensions"] for m in emitted] == [[["service", "ModelVersion"]]]
    assert alarm["Dimensions"] == [
        {"Name": "service", "Value": {"Fn::FindInMap": ["Observability", "Metrics", "Service"]}},
        {"Name": "ModelVersion", "Value": {"Ref": "ModelVersion"}},
    ]
    assert emitted[0]["service"] == mapping["Service"]
    # And it fires as the service-wide alarm does (same statistic, comparison and threshold), each minute
    other = translated["Resources"][service_wide]["Properties"]
    for key in ("Statistic", "ComparisonOperator", "Threshold", "EvaluationPeriods", "TreatMissingData"):
        assert alarm[key] == other[key], key
    assert alarm["Period"] == 60
    # And it exists only when ModelVersion is set
    assert translated["Resources"][name]["Condition"] == "HasModelVersion"


@pytest.mark.parametrize(
    ("model_version", "rollback_on"),
    [
        ("", ["NewVersionErrorsAlarm"]),
        (METADATA_VERSION, ROLLBACK_ALARMS),
    ],
    ids=["no-model-version", "model-version-set"],
)
def test_drift_and_accuracy_roll_back_only_when_the_model_version_is_known(
    translated: dict[str, Any], template: dict[str, Any], model_version: str, rollback_on: list[str]
) -> None:
    # Given a deployment with ModelVersion empty (the default) or set to the shipped model's version
    assert template["Parameters"]["ModelVersion"]["Default"] == ""
    # When the template's conditions are evaluated for it
    created, rolled_back_on = _deployed(translated, {"ModelVersion": model_version})
    # Then the deployment rolls back on exactly those alarms, and the per-version alarms exist only when it is set
    assert rolled_back_on == rollback_on
    assert set(ROLLBACK_ALARMS) & created == set(rollback_on)


def test_codedeploys_role_is_the_templates_own_and_may_only_move_this_functions_alias(
    translated: dict[str, Any],
) -> None:
    # Given the role the deployment group uses
    group = translated["Resources"][GROUP]["Properties"]
    role = translated["Resources"]["CodeDeployRole"]["Properties"]
    # Then it is the template's own (SAM's would attach AWSCodeDeployRoleForLambdaLimited: everything on "*")
    assert group["ServiceRoleArn"] == {"Fn::GetAtt": ["CodeDeployRole", "Arn"]}
    assert "CodeDeployServiceRole" not in translated["Resources"]
    assert role.get("ManagedPolicyArns", []) == []
    # And only CodeDeploy, for this account, may assume it
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "codedeploy.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }
    ]
    # And it may read and move this function's alias, and nothing else of Lambda; no statement names "*"
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert actions == {
        "lambda:GetAlias",
        "lambda:UpdateAlias",
        "lambda:GetProvisionedConcurrencyConfig",
        "cloudwatch:DescribeAlarms",
    }
    # (by name: a reference back to the function or the alarms sends LocalStack's updates into endless recursion)
    prefix = "arn:${AWS::Partition}:${Service}:${AWS::Region}:${AWS::AccountId}:"
    [alias_statement] = [s for s in statements if "lambda:UpdateAlias" in s["Action"]]
    assert alias_statement["Resource"] == {
        "Fn::Sub": prefix.replace("${Service}", "lambda") + "function:${AWS::StackName}-ScoringFunction-*"
    }
    # And it may read the three rollback alarms, by the names they are given, and no other alarm
    [alarm_statement] = [s for s in statements if s["Action"] == "cloudwatch:DescribeAlarms"]
    names = [translated["Resources"][alarm]["Properties"]["AlarmName"]["Fn::Sub"] for alarm in ROLLBACK_ALARMS]
    assert alarm_statement["Resource"] == [
        {"Fn::Sub": prefix.replace("${Service}", "cloudwatch") + f"alarm:{name}"} for name in names
    ]
    assert all(name.startswith("${AWS::StackName}-") and "*" not in name for name in names)
    assert all(s["Effect"] == "Allow" and s["Resource"] != "*" for s in statements)


def test_the_stack_names_the_alias_and_its_deployments(translated: dict[str, Any]) -> None:
    # Given the stack's outputs (docs/deploy.md's commands read them)
    outputs = {name: body["Value"] for name, body in translated["Outputs"].items()}
    # Then they name the alias, the CodeDeploy application and group, the watched model version and the errors alarm
    assert outputs["ScoringFunctionAliasArn"] == {"Ref": ALIAS}
    assert outputs["CodeDeployApplicationName"] == {"Ref": "ServerlessDeploymentApplication"}
    assert outputs["CodeDeployDeploymentGroupName"] == {"Ref": GROUP}
    assert outputs["ModelVersion"] == {"Ref": "ModelVersion"}
    assert outputs["NewVersionErrorsAlarmName"] == {"Ref": "NewVersionErrorsAlarm"}


def test_the_shipped_model_version_fits_the_parameter(template: dict[str, Any]) -> None:
    # Given the ModelVersion parameter's pattern and the model the artifact ships
    pattern = template["Parameters"]["ModelVersion"]["AllowedPattern"]
    # Then its version (and empty, the default) are allowed values
    assert re.fullmatch(pattern, METADATA_VERSION)
    assert re.fullmatch(pattern, "")
    assert deploy_model_version.model_version() == METADATA_VERSION


@pytest.mark.parametrize(
    ("samconfig", "saved"),
    [
        ("", []),
        (
            "[default.deploy.parameters]\n"
            'parameter_overrides = "SnowflakeDatabase=\\"TUMOURS\\" ModelVersion=\\"old\\""\n',
            ['SnowflakeDatabase="TUMOURS" ModelVersion="old"'],
        ),
        (
            '[default.deploy.parameters]\nparameter_overrides = ["SnowflakeDatabase=TUMOURS", "LoadMode=upsert"]\n',
            ["SnowflakeDatabase=TUMOURS", "LoadMode=upsert"],
        ),
    ],
    ids=["nothing-saved", "saved-string", "saved-list"],
)
def test_make_deploy_adds_the_shipped_model_version_after_the_saved_parameters(
    tmp_path: Path, samconfig: str, saved: list[str]
) -> None:
    # Given samconfig.toml with or without saved parameter overrides (a ModelVersion from an earlier deploy included)
    config = tmp_path / "samconfig.toml"
    config.write_text(samconfig, encoding="utf-8")
    # When the deploy helper builds the sam command for a built artifact
    command = _helper_command(tmp_path, config)
    # Then it passes the saved overrides unchanged, then ModelVersion and the fingerprint last (SAM keeps a key's
    # last value)
    assert command[:-1] == ["sam", "deploy", "--parameter-overrides", *saved, f"ModelVersion={METADATA_VERSION}"]
    assert re.fullmatch(r"ConfigurationFingerprint=[0-9a-f]{32}", command[-1])


def _helper_command(tmp_path: Path, config: Path, code: bytes = b"print('v1')") -> list[str]:
    artifact = tmp_path / "artifact"
    (artifact / "handler").mkdir(parents=True, exist_ok=True)
    (artifact / "handler" / "app.py").write_bytes(code)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        deploy_model_version.main(
            ["--samconfig", str(config), "--artifact", str(artifact), "--print", "--", "sam", "deploy"]
        )
    result: list[str] = json.loads(printed.getvalue())
    return result


def test_the_fingerprint_changes_with_the_code_or_the_parameters_and_only_then(tmp_path: Path) -> None:
    # Given a deployment's saved parameters and built code
    config = tmp_path / "samconfig.toml"
    config.write_text('[default.deploy.parameters]\nparameter_overrides = "LoadMode=append"\n', encoding="utf-8")
    first = _helper_command(tmp_path, config)[-1]
    # When nothing changed, Then the fingerprint is the same (no new version, no traffic shift)
    assert _helper_command(tmp_path, config)[-1] == first
    # When the code changes, or a parameter alone, Then it differs (a new version, shifted as DeploymentType says)
    assert _helper_command(tmp_path, config, code=b"print('v2')")[-1] != first
    config.write_text('[default.deploy.parameters]\nparameter_overrides = "LoadMode=upsert"\n', encoding="utf-8")
    assert _helper_command(tmp_path, config)[-1] != first


def test_the_fingerprint_decides_the_published_version(template: dict[str, Any]) -> None:
    # Given the function's version trigger: SAM hashes the code and the unresolved properties, so a parameter's new
    # value alone would publish nothing (the alias would keep the old version's environment)
    assert template["Resources"][FUNCTION_ID]["Properties"]["AutoPublishCodeSha256"] == {
        "Ref": "ConfigurationFingerprint"
    }
    # When the template is translated with two fingerprints, and twice with the same one
    ids = [
        _version_id(translate(parameters={"ConfigurationFingerprint": fingerprint}))
        for fingerprint in ("aaaaaaaaaaaaaaaa1111", "bbbbbbbbbbbbbbbb1111", "bbbbbbbbbbbbbbbb1111")
    ]
    # Then each fingerprint is a version of its own, and the same one the same version
    assert ids[0] != ids[1] == ids[2]


def test_a_model_version_the_parameter_cannot_hold_is_refused(tmp_path: Path) -> None:
    # Given a model whose model_version has a space (an imported model's config may say anything)
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"model_version": "my model 2"}), encoding="utf-8")
    # When make deploy asks for it, Then it stops before SAM runs, saying why
    with pytest.raises(SystemExit, match="does not fit the template's ModelVersion"):
        deploy_model_version.model_version(metadata)


@pytest.mark.parametrize("target", ["deploy", "deploy-guided"])
def test_make_deploy_and_deploy_guided_go_through_the_helper(target: str) -> None:
    # Given mk/sam.mk's recipe for the target
    recipe = (ROOT / "mk" / "sam.mk").read_text(encoding="utf-8").split(f"\n{target}: ", 1)[1].split("\n\n", 1)[0]
    # Then sam deploy runs through the helper that adds ModelVersion
    assert "$(DEPLOY_MODEL_VERSION) $(SAM) deploy" in recipe
    assert "DEPLOY_MODEL_VERSION := $(PY) -m tools.commands.deploy_model_version --" in (
        ROOT / "mk" / "sam.mk"
    ).read_text(encoding="utf-8")

"""The monitoring alarms in the deployed (translated) template read the metrics the function writes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.template.test_queue import resources_of_type


def _alarm(translated: dict[str, Any], metric: str) -> dict[str, Any]:
    """The service-wide alarm on the metric (the per-ModelVersion rollback alarms: tests/template/test_canary.py)."""
    alarms = [
        body["Properties"]
        for body in resources_of_type(translated, "AWS::CloudWatch::Alarm").values()
        if body["Properties"]["MetricName"] == metric and len(body["Properties"]["Dimensions"]) == 1
    ]
    assert len(alarms) == 1, f"one service-wide alarm on {metric} expected, found {len(alarms)}"
    return alarms[0]


def _function_env(translated: dict[str, Any]) -> dict[str, Any]:
    function = next(iter(resources_of_type(translated, "AWS::Lambda::Function").values()))
    env: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return env


@pytest.mark.parametrize("metric", ["DriftDetected", "EstimatedAccuracy"])
def test_the_alarm_watches_the_namespace_and_service_the_function_writes(
    translated: dict[str, Any], metric: str
) -> None:
    # Given the function's Powertools settings and the alarm on a monitoring metric
    env, alarm = _function_env(translated), _alarm(translated, metric)
    mapping = translated["Mappings"]["Observability"]["Metrics"]
    resolved = {"Fn::FindInMap": ["Observability", "Metrics", "Namespace"]}
    # Then both name the same namespace and service (Powertools adds the service dimension)
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == resolved == alarm["Namespace"]
    assert env["POWERTOOLS_SERVICE_NAME"] == {"Fn::FindInMap": ["Observability", "Metrics", "Service"]}
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert mapping["Namespace"] == "TumourScoring" and mapping["Service"] == "tumour-scoring"
    # And it notifies the optional topic
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert alarm["AlarmActions"] == notify == alarm["OKActions"]


def test_the_drift_alarm_fires_on_n_consecutive_drifted_periods(translated: dict[str, Any]) -> None:
    alarm = _alarm(translated, "DriftDetected")
    # Every file of each period drifted (minimum 1), in N consecutive periods with files; none without files
    assert alarm["Statistic"] == "Minimum" and alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == {"Ref": "DriftAlarmConsecutiveFiles"}
    assert alarm["TreatMissingData"] == "missing"
    parameter = translated["Parameters"]["DriftAlarmConsecutiveFiles"]
    assert parameter["Type"] == "Number" and parameter["MinValue"] >= 1


def test_the_accuracy_alarm_fires_below_its_threshold(translated: dict[str, Any]) -> None:
    alarm = _alarm(translated, "EstimatedAccuracy")
    assert alarm["Statistic"] == "Minimum" and alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == {"Ref": "AccuracyAlarmThreshold"}
    assert alarm["TreatMissingData"] == "notBreaching"


def test_the_function_is_told_its_monitoring_table(translated: dict[str, Any]) -> None:
    assert _function_env(translated)["MONITORING_TABLE"] == {"Ref": "MonitoringTable"}

"""The bounded trigger in the deployed (translated) template: S3 -> IngestQueue -> function, a DLQ and its alarm."""

from __future__ import annotations

from typing import Any

import pytest

from tools.sam_template import FUNCTION_ID, function_spec

QUEUE = "IngestQueue"
DLQ = "DeadLetterQueue"
SNOWFLAKE_LOCK_WAITERS = 20  # Snowflake aborts the 21st statement waiting for one table's lock (000625)


def resources_of_type(translated: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in translated["Resources"].items() if body["Type"] == kind}


def event_source(translated: dict[str, Any]) -> dict[str, Any]:
    mappings = resources_of_type(translated, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 1, mappings
    props: dict[str, Any] = next(iter(mappings.values()))["Properties"]
    return props


def test_the_function_has_no_direct_s3_trigger(translated: dict[str, Any]) -> None:
    # Given the translated template
    notifications = translated["Resources"]["InputBucket"]["Properties"]["NotificationConfiguration"]
    # Then the bucket notifies no function, and nothing may invoke the function but the event source mapping
    assert "LambdaConfigurations" not in notifications
    assert resources_of_type(translated, "AWS::Lambda::Permission") == {}
    assert resources_of_type(translated, "AWS::Lambda::EventInvokeConfig") == {}


def test_csv_and_csv_gz_under_the_prefix_go_to_the_queue(translated: dict[str, Any]) -> None:
    # Given the bucket's notification configuration
    configs = translated["Resources"]["InputBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    # Then every configuration sends ObjectCreated under the prefix to the ingest queue, one per suffix
    suffixes = set()
    for config in configs:
        assert config["Event"] == "s3:ObjectCreated:*"
        assert config["Queue"] == {"Fn::GetAtt": [QUEUE, "Arn"]}
        rules = {r["Name"]: r["Value"] for r in config["Filter"]["S3Key"]["Rules"]}
        assert rules["prefix"] == {"Ref": "InputPrefix"}
        suffixes.add(rules["suffix"])
    assert suffixes == {".csv", ".csv.gz"}
    assert len(configs) == 2


def test_the_event_source_is_the_queue_with_partial_batch_responses(translated: dict[str, Any]) -> None:
    # Given the function's one event source mapping
    props = event_source(translated)
    # Then it reads the ingest queue, reports failed messages only, and takes its sizes from parameters
    assert props["EventSourceArn"] == {"Fn::GetAtt": [QUEUE, "Arn"]}
    assert props["FunctionName"] == {"Ref": f"{FUNCTION_ID}Aliaslive"}  # the alias (tests/template/test_canary.py)
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == {"Ref": "QueueBatchSize"}
    assert props["MaximumBatchingWindowInSeconds"] == {"Ref": "QueueBatchingWindowSeconds"}
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "QueueMaximumConcurrency"}}


@pytest.mark.parametrize(
    ("parameter", "low", "high"),
    [
        ("QueueMaximumConcurrency", 2, SNOWFLAKE_LOCK_WAITERS // 2),  # well under Snowflake's 20 waiters
        ("QueueBatchSize", 1, 10),  # above 10 Lambda needs a batching window
        ("QueueBatchingWindowSeconds", 0, 300),
        ("QueueMaxReceiveCount", 2, 10),  # a transient error gets retries, a poison message stops
    ],
)
def test_queue_parameters_have_sane_defaults(template: dict[str, Any], parameter: str, low: int, high: int) -> None:
    # Given the parameter's declaration in template.yaml
    spec = template["Parameters"][parameter]
    # Then it is a number whose default is in the range that keeps the bound meaningful
    assert spec["Type"] == "Number"
    assert low <= int(spec["Default"]) <= high
    assert int(spec["MinValue"]) <= int(spec["Default"]) <= int(spec["MaxValue"])


def test_visibility_timeout_is_at_least_six_function_timeouts_plus_the_longest_window(
    translated: dict[str, Any], template: dict[str, Any]
) -> None:
    # Given the function's timeout and the longest batching window the parameter allows
    timeout = function_spec(template).timeout
    window = int(template["Parameters"]["QueueBatchingWindowSeconds"]["MaxValue"])
    # Then a message in flight stays invisible for at least 6 timeouts plus that window (Lambda's guidance)
    visibility = translated["Resources"][QUEUE]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * timeout + window
    assert visibility <= 43_200  # SQS's maximum


def test_the_queue_redrives_to_the_dead_letter_queue_after_max_receive_count(translated: dict[str, Any]) -> None:
    # Given the two queues
    queue = translated["Resources"][QUEUE]["Properties"]
    dlq = translated["Resources"][DLQ]
    # Then N receives move a message to the DLQ, which keeps it longer than the queue would
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [DLQ, "Arn"]},
        "maxReceiveCount": {"Ref": "QueueMaxReceiveCount"},
    }
    assert dlq["Type"] == "AWS::SQS::Queue"
    assert dlq["Properties"]["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    # And both are encrypted with SSE-SQS (S3 cannot send to a queue under the AWS-managed KMS key)
    assert queue["SqsManagedSseEnabled"] is True
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True


def test_an_alarm_watches_the_dead_letter_queue_depth(translated: dict[str, Any]) -> None:
    # Given every CloudWatch alarm
    alarms = [
        body["Properties"]
        for body in resources_of_type(translated, "AWS::CloudWatch::Alarm").values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [DLQ, "QueueName"]}} in body["Properties"]["Dimensions"]
    ]
    # Then one fires as soon as any message is visible in the DLQ
    assert len(alarms) == 1
    alarm = alarms[0]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == 0
    assert alarm["TreatMissingData"] == "notBreaching"


def test_only_the_input_bucket_of_this_account_may_send_to_the_queue(translated: dict[str, Any]) -> None:
    # Given the ingest queue's policy
    policies = [
        body["Properties"]
        for body in resources_of_type(translated, "AWS::SQS::QueuePolicy").values()
        if {"Ref": QUEUE} in body["Properties"]["Queues"]
    ]
    assert len(policies) == 1
    allows = [s for s in policies[0]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    # Then the one Allow is S3's SendMessage, for the bucket's ARN (built from parameters) in this account
    assert len(allows) == 1
    allow = allows[0]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Resource"] == {"Fn::GetAtt": [QUEUE, "Arn"]}
    bucket_arn = "arn:${AWS::Partition}:s3:::${InputBucketBaseName}-${AWS::AccountId}-${AWS::Region}"
    assert allow["Condition"]["ArnEquals"] == {"aws:SourceArn": {"Fn::Sub": bucket_arn}}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # And the bucket's name is the one that ARN names (so the condition matches the real bucket)
    bucket_name = translated["Resources"]["InputBucket"]["Properties"]["BucketName"]
    assert bucket_name == {"Fn::Sub": "${InputBucketBaseName}-${AWS::AccountId}-${AWS::Region}"}


def test_the_bucket_waits_for_the_queue_policy(translated: dict[str, Any]) -> None:
    # Given the bucket (S3 checks its permission to send when the notification configuration is put)
    depends_on = translated["Resources"]["InputBucket"].get("DependsOn", [])
    # Then it is created after the queue policy (test_security's acyclicity test checks this adds no loop)
    assert "IngestQueuePolicy" in ([depends_on] if isinstance(depends_on, str) else depends_on)


@pytest.mark.parametrize("output", ["IngestQueueUrl", "IngestQueueArn", "DeadLetterQueueUrl", "DeadLetterQueueArn"])
def test_the_queues_are_stack_outputs(translated: dict[str, Any], output: str) -> None:
    # Given the stack's outputs (make backfill finds the queue there; re-drive needs the DLQ's ARN)
    value = translated["Outputs"][output]["Value"]
    # Then each names the matching queue
    queue = QUEUE if output.startswith("Ingest") else DLQ
    assert value in ({"Ref": queue}, {"Fn::GetAtt": [queue, "Arn"]})


@pytest.mark.parametrize(
    ("namespace", "metric", "dimension", "threshold"),
    [
        ("AWS/Lambda", "Errors", {"Name": "FunctionName", "Value": {"Ref": FUNCTION_ID}}, 0),
        (
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [QUEUE, "QueueName"]}},
            {"Ref": "AlarmOldestMessageAgeSeconds"},
        ),
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [DLQ, "QueueName"]}},
            0,
        ),
    ],
)
def test_each_alarm_watches_its_metric_and_notifies_the_optional_topic(
    translated: dict[str, Any], namespace: str, metric: str, dimension: dict[str, Any], threshold: Any
) -> None:
    # Given the alarms on the metric for that function or queue as a whole (the rollback alarm on the new version's
    # errors has more dimensions: tests/template/test_canary.py)
    alarms = [
        body["Properties"]
        for body in resources_of_type(translated, "AWS::CloudWatch::Alarm").values()
        if body["Properties"]["MetricName"] == metric and body["Properties"]["Dimensions"] == [dimension]
    ]
    # Then there is one, with the threshold expected
    assert len(alarms) == 1, f"no alarm on {namespace} {metric}"
    alarm = alarms[0]
    assert alarm["Namespace"] == namespace
    assert alarm["Threshold"] == threshold
    assert alarm["TreatMissingData"] == "notBreaching"
    # And it notifies AlarmTopicArn when set (firing and clearing), and nothing when it is empty
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    assert alarm["AlarmActions"] == notify
    assert alarm["OKActions"] == notify
    assert translated["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}

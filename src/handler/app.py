"""Lambda entry point ``handler.app.lambda_handler``, and the composition root.

The concrete adapters (S3, Secrets Manager, Snowflake) and the model are built once per container, at init rather
than on the first event, and handed to the pipeline. What an event asks for happens in pipeline/batch.py.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from adapters.s3 import S3Source
from adapters.secrets import SecretsProvider
from adapters.snowflake import SnowflakeWarehouse
from pipeline.batch import handle
from pipeline.challenger import Challenger, load_challenger
from pipeline.errors import ConfigurationError
from pipeline.observability import logger, metrics
from pipeline.process import Pipeline
from pipeline.settings import Settings, get_settings
from scoring import Scorer

tracer = Tracer()


@lru_cache(maxsize=1)
def build_pipeline() -> Pipeline:
    """Everything an invocation needs, built once per container."""
    settings = get_settings()
    scorer = Scorer.load(settings.model_dir, threshold=settings.decision_threshold)
    return compose_pipeline(settings, scorer, load_challenger(settings.challenger_model_dir, scorer))


def compose_pipeline(settings: Settings, scorer: Scorer, challenger: Challenger | None = None) -> Pipeline:
    """One copy of the function: its own S3 client and warehouse (one Snowflake connection, never shared between
    threads) around a scorer, which copies may share (the local poller runs several copies in one process)."""
    return Pipeline(
        settings=settings,
        scorer=scorer,
        source=S3Source.with_default_client(),
        warehouse=SnowflakeWarehouse(settings, SecretsProvider(settings.secret_name).credentials),
        challenger=challenger,
    )


try:
    build_pipeline()
except ConfigurationError:
    # Reported, with the variable's name, on every invocation until the configuration is fixed.
    logger.exception("configuration invalid at init")


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, build_pipeline(), time_left=lambda: context.get_remaining_time_in_millis() / 1000)

"""Pure scoring: a float32 [N, 30] batch in, probabilities, classes and labels out.

Nothing here knows about S3, Snowflake or Lambda events.
"""

from scoring.errors import InvalidFeaturesError, ModelLoadError, ScoringError
from scoring.metadata import ModelMetadata
from scoring.scorer import Scorer, Scores

__all__ = [
    "InvalidFeaturesError",
    "ModelLoadError",
    "ModelMetadata",
    "Scorer",
    "Scores",
    "ScoringError",
]

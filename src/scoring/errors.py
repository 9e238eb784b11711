"""Typed scoring errors. Messages name rows and columns, never measurement values."""


class ScoringError(Exception):
    """Base class for every scoring failure."""


class ModelLoadError(ScoringError):
    """The model file or its metadata is missing, altered, or does not match the expected signature.

    Permanent: retrying with the same artifact cannot help.
    """


class InvalidFeaturesError(ScoringError, ValueError):
    """The batch handed to the scorer is not a finite float [N, n_features] array with N >= 1."""

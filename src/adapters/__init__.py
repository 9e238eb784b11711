"""Small adapters around the outside world (S3, Secrets Manager, Snowflake).

Each turns third-party failures into the project's own typed errors (pipeline.errors).
"""

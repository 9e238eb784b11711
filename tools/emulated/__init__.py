"""The emulated cloud: moto (S3, SQS, Secrets Manager) and fakesnow stand in for AWS and Snowflake."""

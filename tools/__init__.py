"""Developer tools, never shipped: tools/emulated/ (the cloud that stands in for AWS and Snowflake), tools/commands/
(what a user runs), tools/model_import/ (make import-model's steps). Layout: docs/architecture.md."""

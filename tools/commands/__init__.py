"""The commands a user runs (make score, query, backfill, import-model, demo, invoke, artifact-report)."""

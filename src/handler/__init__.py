"""The Lambda entry point (thin): parse the event, run the pipeline for each object, return a summary."""

"""Developer tools: the local AWS + Snowflake stack, the demo, the sam-local-invoke stand-in. Never shipped."""

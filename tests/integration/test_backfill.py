"""tools/backfill.py against moto server + fakesnow: the same idempotent path as the handler, in parallel."""

from __future__ import annotations

from typing import Any

from tools.backfill import backfill


def test_backfill_skips_objects_already_loaded(harness: Any, make_csv: Any, monkeypatch: Any) -> None:
    # Given 5 objects under a prefix (plain and gzip), 2 of them already loaded through the handler
    prefix = f"backfill-{harness.tables['target'].lower()}/"
    sizes = [50, 60, 70, 80, 90]
    events = [
        harness.put(f"{prefix}part-{i}.csv" + (".gz" if i % 2 else ""), make_csv(n), gz=bool(i % 2))
        for i, n in enumerate(sizes)
    ]
    harness.put(f"{prefix}notes.txt", b"not a CSV, not listed")
    for event in events[:2]:
        assert harness.invoke(event)["objects"][0]["status"] == "loaded"
    assert harness.count() == sizes[0] + sizes[1]

    # When the backfill runs over the prefix with 3 workers
    for name, value in harness.env.items():
        monkeypatch.setenv(name, value)
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    summary = backfill(harness.bucket, prefix, workers=3, progress=False, s3=harness.stack.client("s3"))

    # Then the 3 new objects load, the 2 loaded ones are duplicates, and every row is there exactly once
    assert summary["objects"] == 5
    assert summary["loaded"] == 3
    assert summary["duplicate"] == 2
    assert summary["failed"] == summary["errors"] == 0
    assert summary["rows_loaded"] == sum(sizes[2:])
    assert harness.count() == sum(sizes)
    assert harness.count("ledger", "STATUS = 'LOADED'") == 5

    # And a second backfill finds everything loaded
    again = backfill(harness.bucket, prefix, workers=3, progress=False, s3=harness.stack.client("s3"))
    assert again["duplicate"] == 5
    assert again["loaded"] == 0
    assert harness.count() == sum(sizes)

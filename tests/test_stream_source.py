"""The runner's source over the real corpus in the S3 layout: the same events and columns as
the `cloudtrail` view, never digests, and with a checkpoint only new files on the next run."""

from __future__ import annotations

import shutil

import pytest

from loader.stream.source import stream_events

pytestmark = pytest.mark.spark


def _run_once(spark, source: str, checkpoint: str) -> list:
    """Process what is there (availableNow), batch by batch; return the rows seen."""
    rows: list = []

    def collect(batch, _batch_id):
        rows.extend(batch.select("eventID", "source_file", "account", "dt").collect())

    events = stream_events(spark, source, max_files_per_trigger=20)
    query = (
        events.writeStream.foreachBatch(collect)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    return rows


def test_stream_reads_the_view_s_events_and_only_new_files_on_restart(
    spark, corpus_tables, tmp_path
):
    root, _, _ = corpus_tables
    view = spark.table("corpus.cloudtrail")
    session = spark.newSession()
    # a copy holding all but one log file; that one lands later
    source = tmp_path / "logs"
    shutil.copytree(root, source)
    logs = sorted(p for p in source.rglob("*_CloudTrail_*.json.gz"))
    late = logs[len(logs) // 2]
    late_copy = tmp_path / "late.json.gz"
    shutil.move(late, late_copy)
    checkpoint = str(tmp_path / "checkpoint")

    first = _run_once(session, str(source), checkpoint)
    assert stream_events(session, str(source)).columns == view.columns
    late_events = view.where(view.source_file.endswith(late.name)).count()
    assert late_events > 0
    assert len(first) == view.count() - late_events
    assert not any("Digest" in r.source_file or "Insight" in r.source_file for r in first)
    assert {(r.account, r.dt) for r in first} <= {
        (r.account, r.dt) for r in view.select("account", "dt").collect()
    }

    shutil.move(late_copy, late)  # the late file lands
    second = _run_once(session, str(source), checkpoint)
    assert len(second) == late_events
    assert {r.source_file.rsplit("/", 1)[-1] for r in second} == {late.name}

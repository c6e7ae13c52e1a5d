"""Oakestra's cpu_percent, memory_percent, logs and histories from the counters node_info reads."""

from __future__ import annotations

from grove_api.jobs.facts import HISTORY_POINTS, host_cpu_percent, usage_changes

NODE = {"memory_mb": 1000, "sampled_at": 110.0}


def instance(cpu_ns, memory=50 * 1024 * 1024, limit=100 * 1024 * 1024, log="ready"):
    return {"usage": {"cpu_ns": cpu_ns, "memory_bytes": memory, "memory_limit_bytes": limit}, "log_tail": log}


def test_the_first_sample_gives_memory_and_logs_and_the_second_gives_cpu():
    first = usage_changes({}, instance(1_000_000_000), dict(NODE, sampled_at=100.0))
    assert first["memory_percent"] == "50"
    assert first["logs"] == "ready"
    assert "cpu_percent" not in first  # one sample of a cumulative counter says nothing yet
    # Half a core busy over the 10 s between the two samples.
    second = usage_changes(first, instance(6_000_000_000), NODE)
    assert second["cpu_percent"] == "50"
    assert second["cpu_history"] == [{"value": "50", "timestamp": "1970-01-01T00:01:50Z"}]
    assert [p["value"] for p in second["memory_history"]] == ["50", "50"]


def test_without_a_limit_memory_is_a_share_of_the_worker():
    changes = usage_changes({}, instance(None, memory=250 * 1024 * 1024, limit=None), NODE)
    assert changes["memory_percent"] == "25"


def test_a_restarted_instance_does_not_report_negative_cpu():
    before = {"usage_sample": {"cpu_ns": 9_000_000_000, "at": 100.0}}
    assert "cpu_percent" not in usage_changes(before, instance(1_000), NODE)


def test_histories_keep_the_last_hundred_points():
    record = {"memory_history": [{"value": "1", "timestamp": "t"}] * HISTORY_POINTS}
    assert len(usage_changes(record, instance(None), NODE)["memory_history"]) == HISTORY_POINTS


def test_host_cpu_percent_from_two_samples():
    assert host_cpu_percent({"busy": 150, "total": 400}, {"busy": 100, "total": 200}) == 25.0
    assert host_cpu_percent({"busy": 150, "total": 400}, None) is None

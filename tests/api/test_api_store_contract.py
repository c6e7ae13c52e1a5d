"""One contract for both store backends (SQLite, MongoDB): what the services layer relies on."""

from __future__ import annotations

import stat
import threading

import pytest
from grove_api.store.base import KINDS, AnyOf, DuplicateError
from grove_api.store.sqlite import SQLiteStore


def test_insert_assigns_a_24_hex_id_and_get_returns_the_document(any_store):
    doc = any_store.insert("applications", {"application_name": "a", "application_namespace": "b", "n": 1})
    assert len(doc["_id"]) == 24 and int(doc["_id"], 16) >= 0
    assert any_store.get("applications", doc["_id"]) == doc
    assert any_store.get("applications", "0" * 24) is None


def test_documents_keep_nested_values_and_hostile_strings_verbatim(any_store):
    hostile = "{{ lookup('pipe', 'touch /tmp/x') }} $(id) `id`; rm -rf / \"quoted\" \\ \u00e9\x01"
    doc = {"name": "u", "nested": {"list": [1, 2.5, True, None, hostile]}, "text": hostile}
    stored = any_store.insert("users", doc)
    assert any_store.get("users", stored["_id"]) == stored
    assert any_store.find("users", {"text": hostile}) == [stored]


def test_insert_refuses_a_taken_unique_key_and_a_taken_id(any_store):
    any_store.insert("applications", {"_id": "a" * 24, "application_name": "x", "application_namespace": "y"})
    with pytest.raises(DuplicateError) as error:
        any_store.insert("applications", {"application_name": "x", "application_namespace": "y"})
    assert error.value.fields == ("application_name", "application_namespace")
    # Same name, other namespace: a different key.
    any_store.insert("applications", {"application_name": "x", "application_namespace": "z"})
    with pytest.raises(DuplicateError):
        any_store.insert(
            "applications", {"_id": "a" * 24, "application_name": "q", "application_namespace": "y"}
        )
    assert any_store.count("applications") == 2


def test_each_unique_key_of_services_is_enforced_separately(any_store):
    any_store.insert("services", {"job_name": "a.b.c.d", "RR_ip": "10.30.0.2"})
    with pytest.raises(DuplicateError) as by_name:
        any_store.insert("services", {"job_name": "a.b.c.d", "RR_ip": "10.30.0.3"})
    with pytest.raises(DuplicateError) as by_address:
        any_store.insert("services", {"job_name": "a.b.c.e", "RR_ip": "10.30.0.2"})
    assert by_name.value.fields == ("job_name",)
    assert by_address.value.fields == ("RR_ip",)


def test_find_filters_on_equality_and_any_of_and_returns_oldest_first(any_store):
    ids = [
        any_store.insert("jobs", {"state": state, "n": n})["_id"]
        for n, state in enumerate(["queued", "running", "queued", "done"])
    ]
    assert [d["_id"] for d in any_store.find("jobs")] == ids
    assert [d["n"] for d in any_store.find("jobs", {"state": "queued"})] == [0, 2]
    assert [d["n"] for d in any_store.find("jobs", {"state": AnyOf(("queued", "running"))})] == [0, 1, 2]
    assert any_store.find("jobs", {"state": AnyOf(())}) == []
    assert [d["n"] for d in any_store.find("jobs", {"state": "queued", "n": 2})] == [2]
    assert any_store.count("jobs", {"state": "queued"}) == 2
    assert len(any_store.find("jobs", limit=3)) == 3


def test_find_matches_missing_fields_with_none_and_booleans_by_value(any_store):
    any_store.insert("instances", {"service_id": "s", "instance_number": 0, "deleting": True})
    any_store.insert("instances", {"service_id": "s", "instance_number": 1, "deleting": False})
    any_store.insert("instances", {"service_id": "s", "instance_number": 2})
    assert [d["instance_number"] for d in any_store.find("instances", {"deleting": True})] == [0]
    assert [d["instance_number"] for d in any_store.find("instances", {"deleting": False})] == [1]
    assert [d["instance_number"] for d in any_store.find("instances", {"deleting": None})] == [2]


def test_update_sets_fields_only_when_the_expectation_holds(any_store):
    job = any_store.insert("jobs", {"state": "queued", "attempts": 0})
    claimed = any_store.update(
        "jobs", job["_id"], {"state": "running", "run_id": "r1"}, expect={"state": "queued"}
    )
    assert claimed == {**job, "state": "running", "run_id": "r1"}
    assert (
        any_store.update("jobs", job["_id"], {"state": "running", "run_id": "r2"}, expect={"state": "queued"})
        is None
    )
    assert any_store.get("jobs", job["_id"])["run_id"] == "r1"
    assert any_store.update("jobs", "f" * 24, {"state": "x"}) is None
    assert any_store.update("jobs", job["_id"], {"state": "x"}, expect={"state": AnyOf(("running", "y"))})


def test_update_refuses_to_take_a_unique_key_and_changes_nothing(any_store):
    any_store.insert("users", {"name": "alice", "email": "a"})
    bob = any_store.insert("users", {"name": "bob", "email": "b"})
    with pytest.raises(DuplicateError):
        any_store.update("users", bob["_id"], {"name": "alice", "email": "changed"})
    assert any_store.get("users", bob["_id"]) == bob


def test_delete_removes_once_and_honours_the_expectation(any_store):
    doc = any_store.insert("runs", {"state": "running"})
    assert any_store.delete("runs", doc["_id"], expect={"state": "done"}) is False
    assert any_store.delete("runs", doc["_id"]) is True
    assert any_store.delete("runs", doc["_id"]) is False
    assert any_store.get("runs", doc["_id"]) is None


def test_delete_where_removes_every_match_and_nothing_else(any_store):
    kept = any_store.insert("job_events", {"run_id": "r2", "seq": 1})
    for seq in range(3):
        any_store.insert("job_events", {"run_id": "r1", "seq": seq})
    assert any_store.delete_where("job_events", {"run_id": "r1"}) == 3
    assert any_store.delete_where("job_events", {"run_id": "r1"}) == 0
    assert any_store.find("job_events") == [kept]
    assert any_store.delete_where("job_events", {"run_id": AnyOf(("r2", "r3"))}) == 1
    # Without a condition it would empty the kind: refused.
    any_store.insert("jobs", {"state": "queued"})
    with pytest.raises(ValueError, match="needs a condition"):
        any_store.delete_where("jobs", {})
    assert any_store.count("jobs") == 1


def test_counters_start_at_one_and_count_separately(any_store):
    assert [any_store.increment("service:a") for _ in range(3)] == [1, 2, 3]
    assert any_store.increment("service:b") == 1
    assert any_store.increment("service:a", by=5) == 8


def _needs_a_real_backend(request) -> None:
    # mongomock applies updates without MongoDB's atomicity (it is not thread-safe): atomicity is
    # a property of the server, tested on SQLite and on a real MongoDB (GROVE_TEST_MONGO_URL).
    if request.node.callspec.id == "mongomock":
        pytest.skip("mongomock is not thread-safe; set GROVE_TEST_MONGO_URL to test MongoDB's atomicity")


def test_concurrent_increments_never_hand_out_a_number_twice(any_store, request):
    _needs_a_real_backend(request)
    numbers: list[int] = []
    lock = threading.Lock()

    def take():
        for _ in range(25):
            value = any_store.increment("burst")
            with lock:
                numbers.append(value)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 101))


def test_concurrent_conditional_updates_let_exactly_one_claim_win(any_store, request):
    _needs_a_real_backend(request)
    job = any_store.insert("jobs", {"state": "queued"})
    winners = []

    def claim(name):
        if any_store.update("jobs", job["_id"], {"state": "running", "by": name}, expect={"state": "queued"}):
            winners.append(name)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert any_store.get("jobs", job["_id"])["by"] == winners[0]


def test_unknown_kinds_and_field_names_are_refused(any_store):
    with pytest.raises(ValueError, match="unknown kind"):
        any_store.insert("nope", {})
    with pytest.raises(ValueError, match="not a field name"):
        any_store.find("users", {"name') OR 1=1 --": "x"})
    assert set(KINDS) >= {"users", "applications", "services", "instances", "jobs"}


def test_sqlite_uses_one_file_in_wal_mode_shared_by_two_handles(tmp_path):
    first, second = SQLiteStore(tmp_path / "g.db"), SQLiteStore(tmp_path / "g.db")
    try:
        doc = first.insert("users", {"name": "x"})
        assert second.get("users", doc["_id"]) == doc
        assert first.increment("c") == 1 and second.increment("c") == 2
        mode = first._db().execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        for name in ("g.db", "g.db-wal"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    finally:
        first.close()
        second.close()

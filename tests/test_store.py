"""The store on both back ends (the ``store`` fixture runs each test on SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given, settings, strategies as st
from twisted.internet import defer, reactor, task, threads

from ucs.store import CDR_FIELDS, LATEST_VERSION, StoreError, StoreURLError, open_store, parse_store_url
from ucs.store.migrations import MIGRATIONS
from ucs.store.base import KV_DELETE, Fence, KVNew
from ucs.store.errors import Fenced, KeyTaken
from ucs.store.url import redact


def full_cdr(uniqueid: str = "1700000000.42", **changes: Any) -> dict[str, Any]:
    cdr = {
        "uniqueid": uniqueid,
        "direction": "INCOMING",
        "caller_number": "+420777123456",
        "caller_name": "Příliš žluťoučký kůň 🐴",
        "called_number": "5000",
        "connected_number": "1001",
        "connected_name": "Алиса Agent 山田",
        "queue": "support",
        "answered_by": "SIP/1001",
        "cause": 3,
        "created": 1700000000.25,
        "connected": 1700000003.5,
        "disconnected": 1700000010.0,
        "account_code": "ACME-001",
        "metadata": {"crm_id": "ticket-7", "tags": ["vip", "česky"], "score": 0.5, "nested": {"a": None}},
        "journey": [
            {"Device": "SIP/carrier", "DeviceType": "trunk", "Description": "Volající", "Duration": "00:00:10"},
            {"Device": "Queue:support", "DeviceType": "queue", "Description": "support", "Duration": "00:00:03"},
            {"Device": "SIP/1001", "DeviceType": "line", "Description": "Alice", "Duration": "00:00:07"},
        ],
        "data": {"uniqueid": uniqueid, "legs": [{"channel": "SIP/carrier-00000001"}], "unicode": "ünï©ødé"},
    }
    cdr.update(changes)
    return cdr


def schema_rows(url: str) -> list[tuple[int, str, float]]:
    """schema_version rows, read outside the store (in a thread: see callers)."""
    parsed = parse_store_url(url)
    if parsed.scheme == "sqlite":
        with sqlite3.connect(parsed.path) as conn:
            return conn.execute("SELECT version, description, applied FROM schema_version ORDER BY version").fetchall()
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version, description, applied FROM schema_version ORDER BY version").fetchall()


def execute(url: str, statement: str) -> None:
    parsed = parse_store_url(url)
    if parsed.scheme == "sqlite":
        with sqlite3.connect(parsed.path) as conn:
            conn.execute(statement)
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            conn.execute(statement)


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]


# --- schema and migrations ---------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_open_migrates_and_records_version(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    assert s.schema_version == LATEST_VERSION
    await s.close()
    rows = await threads.deferToThread(schema_rows, store_url)
    assert [(v, d) for v, d, _ in rows] == [(m.version, m.description) for m in MIGRATIONS]


@pytest_twisted.ensureDeferred
async def test_migrations_are_idempotent(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    await s.save_cdr(full_cdr())
    await s.kv_set("agents", "alice", {"state": "READY"})
    await s.close()
    before = await threads.deferToThread(schema_rows, store_url)

    s = await open_store(store_url, reactor)  # opens again: nothing to apply
    assert s.schema_version == LATEST_VERSION
    assert await s.get_cdr("1700000000.42") == full_cdr()
    assert await s.kv_get("agents", "alice") == {"state": "READY"}
    await s.close()
    assert await threads.deferToThread(schema_rows, store_url) == before


@pytest_twisted.ensureDeferred
async def test_newer_schema_is_refused(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    await s.close()
    await threads.deferToThread(
        execute, store_url, "INSERT INTO schema_version (version, description, applied) VALUES (999, 'future', 0)"
    )
    with pytest.raises(StoreError, match=r"schema is version 999, newer than this UCS knows"):
        await open_store(store_url, reactor)


# --- CDRs ----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_cdr_round_trip_with_unicode(store: Any) -> None:
    cdr = full_cdr()
    await store.save_cdr(cdr)
    got = await store.get_cdr(cdr["uniqueid"])
    assert got == cdr
    assert list(got) == list(CDR_FIELDS)


@pytest_twisted.ensureDeferred
async def test_cdr_upsert_replaces_the_row(store: Any) -> None:
    await store.save_cdr(full_cdr())
    updated = full_cdr(cause=4, answered_by="SIP/1003", journey=[], metadata={"v": 2})
    await store.save_cdr(updated)
    assert await store.get_cdr("1700000000.42") == updated
    assert [c["uniqueid"] for c in await store.list_cdrs()] == ["1700000000.42"]


@pytest_twisted.ensureDeferred
async def test_cdr_missing_fields_are_none(store: Any) -> None:
    await store.save_cdr({"uniqueid": "x.1", "caller_number": "1001", "created": 5})
    got = await store.get_cdr("x.1")
    assert got == {**dict.fromkeys(CDR_FIELDS), "uniqueid": "x.1", "caller_number": "1001", "created": 5.0}
    assert await store.get_cdr("does-not-exist") is None


@pytest.mark.parametrize(
    "cdr, message",
    [
        ({"caller_number": "1"}, r"uniqueid None is not accepted"),
        ({"uniqueid": ""}, r"uniqueid '' is not accepted"),
        ({"uniqueid": "1", "callerid": "x"}, r"CDR keys \['callerid'\] are unknown; accepted: uniqueid, direction"),
        ({"uniqueid": "1", "created": "yesterday"}, r"CDR created 'yesterday' is not accepted; use seconds"),
        ({"uniqueid": "1", "created": float("nan")}, r"CDR created nan is not accepted"),
        ({"uniqueid": "1", "queue": 5}, r"CDR queue 5 is not accepted; use a string or None"),
        ({"uniqueid": "1", "journey": {"a": 1}}, r"CDR journey .* use a list or None"),
        ({"uniqueid": "1", "metadata": {"x": object()}}, r"CDR metadata: cannot be stored as JSON"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_cdr_is_refused_and_nothing_written(store: Any, cdr: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await store.save_cdr(cdr)
    assert await store.list_cdrs() == []


@pytest_twisted.ensureDeferred
async def test_list_cdrs_since_until_limit_order(store: Any) -> None:
    for i in range(10):
        await store.save_cdr({"uniqueid": f"c{i}", "created": 1000.0 + i})
    await store.save_cdr({"uniqueid": "no-time"})

    ids = lambda cdrs: [c["uniqueid"] for c in cdrs]
    assert ids(await store.list_cdrs()) == ["no-time"] + [f"c{i}" for i in range(10)]
    assert ids(await store.list_cdrs(since=1005)) == ["c5", "c6", "c7", "c8", "c9"]
    assert ids(await store.list_cdrs(since=1002, until=1004)) == ["c2", "c3"]
    assert ids(await store.list_cdrs(since=1000, limit=3)) == ["c0", "c1", "c2"]
    assert ids(await store.list_cdrs(limit=2, newest_first=True)) == ["c9", "c8"]
    with pytest.raises(ValueError, match=r"limit 0 is not accepted; use an integer 1-10000"):
        await store.list_cdrs(limit=0)
    with pytest.raises(ValueError, match=r"since 'x' is not accepted"):
        await store.list_cdrs(since="x")


@pytest_twisted.ensureDeferred
async def test_concurrent_saves_land_without_blocking_the_reactor(store: Any) -> None:
    ticks = []
    loop = task.LoopingCall(lambda: ticks.append(reactor.seconds()))
    loop.start(0.0)  # runs once per reactor iteration while the saves are in flight
    n = 200
    saves = [store.save_cdr(full_cdr(f"conc.{i}", created=float(i))) for i in range(n)]
    sets = [store.kv_set("stats", f"k{i}", {"i": i}) for i in range(50)]
    calls_before = len(ticks)
    results = await defer.DeferredList(saves + sets, consumeErrors=True)
    loop.stop()
    assert all(ok for ok, _ in results), [r for ok, r in results if not ok][:3]
    # The reactor kept turning while the database worked.
    assert len(ticks) > calls_before + 1
    cdrs = await store.list_cdrs(limit=1000)
    assert sorted(c["uniqueid"] for c in cdrs) == sorted(f"conc.{i}" for i in range(n))
    assert len(await store.kv_items("stats")) == 50


# --- key-value ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_kv_round_trip(store: Any) -> None:
    values: list[Any] = ["text", "", 0, 42, -1.5, True, False, None, [], [1, "dva", 3.0], {},
                        {"stav": "PŘIPRAVEN", "since": 1700000000.5, "queues": ["support", "sales"]}]
    for i, v in enumerate(values):
        await store.kv_set("ns", f"key{i}", v)
    for i, v in enumerate(values):
        assert await store.kv_get("ns", f"key{i}") == v
    assert await store.kv_get("ns", "missing") is None
    assert await store.kv_get("ns", "missing", default="d") == "d"
    assert await store.kv_get("other", "key0") is None  # namespaces are separate
    await store.kv_set("ns", "key0", {"overwritten": "ano"})
    assert await store.kv_get("ns", "key0") == {"overwritten": "ano"}
    items = await store.kv_items("ns")
    assert items["key0"] == {"overwritten": "ano"} and len(items) == len(values)
    assert await store.kv_delete("ns", "key0") is True
    assert await store.kv_delete("ns", "key0") is False
    assert await store.kv_get("ns", "key0") is None


@pytest_twisted.ensureDeferred
async def test_kv_bad_input(store: Any) -> None:
    with pytest.raises(ValueError, match=r"kv namespace '' is not accepted"):
        await store.kv_set("", "k", 1)
    with pytest.raises(ValueError, match=r"kv key 5 is not accepted"):
        await store.kv_get("ns", 5)
    with pytest.raises(ValueError, match=r"cannot be stored as JSON"):
        await store.kv_set("ns", "k", float("inf"))
    with pytest.raises(ValueError, match=r"cannot be stored as JSON"):
        await store.kv_set("ns", "k", {1, 2})


@pytest_twisted.ensureDeferred
async def test_kv_write_stores_and_deletes_many_in_one_transaction(store: Any) -> None:
    await store.kv_set("ns", "old", "to delete")
    await store.kv_set("ns", "kept", 1)
    await store.kv_write([("ns", f"k{i}", {"i": i, "jméno": "Zoë"}) for i in range(300)]
                         + [("ns", "old", KV_DELETE), ("ns", "k5", "written twice: the last wins"),
                            ("other", "x", [1, 2])])
    items = await store.kv_items("ns")
    assert "old" not in items and items["kept"] == 1 and items["k0"] == {"i": 0, "jméno": "Zoë"}
    assert items["k5"] == "written twice: the last wins" and len(items) == 301
    assert await store.kv_get("other", "x") == [1, 2]
    await store.kv_write([])  # nothing to do
    # One value that cannot be stored: nothing of the batch is written.
    with pytest.raises(ValueError, match=r"kv ns/bad: cannot be stored as JSON"):
        await store.kv_write([("ns", "new", 1), ("ns", "bad", float("nan"))])
    assert await store.kv_get("ns", "new") is None
    with pytest.raises(ValueError, match=r"kv key 5 is not accepted"):
        await store.kv_write([("ns", 5, 1)])


@pytest_twisted.ensureDeferred
async def test_kv_write_of_a_new_key_refuses_a_key_taken_and_writes_nothing(store: Any) -> None:
    """Issue 20: a new directory entity's id is decided by the insert (KVNew)."""
    await store.kv_write([("dir.users", "7", KVNew({"id": 7, "by": "node-a"})), ("ns", "x", 1)])
    assert await store.kv_get("dir.users", "7") == {"id": 7, "by": "node-a"}
    with pytest.raises(KeyTaken, match=r"dir.users/7 exists already") as e:
        await store.kv_write([("ns", "y", 2), ("dir.users", "7", KVNew({"id": 7, "by": "node-b"}))])
    assert (e.value.namespace, e.value.key) == ("dir.users", "7")
    assert await store.kv_get("dir.users", "7") == {"id": 7, "by": "node-a"}  # the first one's
    assert await store.kv_get("ns", "y") is None  # nothing of the refused write
    await store.kv_write([("dir.users", "7", KV_DELETE)])
    await store.kv_write([("dir.users", "7", KVNew({"id": 7, "by": "node-c"}))])  # free again
    assert (await store.kv_get("dir.users", "7"))["by"] == "node-c"


@pytest_twisted.ensureDeferred
async def test_kv_write_under_a_fence_is_kept_only_while_the_election_names_its_term(store: Any,
                                                                                     store_url: str) -> None:
    """Issue 20: an AMI owner's agent documents and interval rows carry its ownership's term; once
    another node has claimed the lock (the term raised) the old owner's writes are refused
    whole, and the new owner's go on.  Without a fence, a write is the same as ever."""
    lock = "1969452801:42"
    await threads.deferToThread(
        execute, store_url, f"INSERT INTO election (lock, node, proved, term) VALUES ('{lock}', 'node-a', 0, 3)")
    old, new = Fence(lock, 3), Fence(lock, 4)
    await store.kv_write([("agents.state", "1", {"by": "a"}), ("agents.state", "2", {"by": "a"})], fence=old)
    assert await store.kv_get("agents.state", "1") == {"by": "a"}

    await threads.deferToThread(execute, store_url,
                                f"UPDATE election SET term = term + 1, node = 'node-b' WHERE lock = '{lock}'")
    with pytest.raises(Fenced, match=r"is at term 4 of node-b, not this writer's term 3") as e:
        await store.kv_write([("agents.state", "1", {"by": "a, late"}), ("agents.state", "2", KV_DELETE),
                              ("agents.state", "3", {"by": "a, late"})], fence=old)
    assert (e.value.term, e.value.now, e.value.node) == (3, 4, "node-b")
    assert await store.kv_items("agents.state") == {"1": {"by": "a"}, "2": {"by": "a"}}  # nothing of it

    await store.kv_write([("agents.state", "1", {"by": "b"})], fence=new)
    await store.kv_write([("agents.state", "2", {"by": "anyone"})])  # no fence: a single node's write
    assert await store.kv_items("agents.state") == {"1": {"by": "b"}, "2": {"by": "anyone"}}
    with pytest.raises(Fenced, match=r"is at no term \(the election row is gone\)"):
        await store.kv_write([("agents.state", "1", {"by": "c"})], fence=Fence("1969452801:7", 1))
    assert await store.kv_get("agents.state", "1") == {"by": "b"}

    # Supervision's interval rows the same way: the old owner's refused whole, the new owner's kept.
    await store.stats_write([("agent", "1", "2026-12-07", 600, {"readytime": 30.0})], fence=new)
    with pytest.raises(Fenced, match=r"is at term 4 of node-b, not this writer's term 3"):
        await store.stats_write([("queue", "support", "2026-12-07", 600, {"offered": 1}),
                                 ("agent", "1", "2026-12-07", 600, {"readytime": 90.0})], fence=old)
    await store.stats_write([("agent", "2", "2026-12-07", 600, {"auxtime": 5.0})])  # no fence: as ever
    assert await store.stats_read("agent", "2026-12-07", "2026-12-07") == [
        ("1", "2026-12-07", 600, {"readytime": 30.0}), ("2", "2026-12-07", 600, {"auxtime": 5.0})]
    assert await store.stats_read("queue", "2026-12-07", "2026-12-07") == []


# --- time -------------------------------------------------------------------------------


def stamps(url: str) -> dict[str, list[Any]]:
    """The times the store stamped: schema_version.applied, cdr.saved, kv.updated (read in a thread)."""
    queries = {"applied": "SELECT applied FROM schema_version ORDER BY version",
               "saved": "SELECT saved FROM cdr ORDER BY uniqueid",
               "updated": "SELECT updated FROM kv ORDER BY namespace, key"}
    parsed = parse_store_url(url)
    if parsed.scheme == "sqlite":
        with sqlite3.connect(parsed.path) as conn:
            return {k: [r[0] for r in conn.execute(q).fetchall()] for k, q in queries.items()}
    import psycopg

    with psycopg.connect(url) as conn:
        return {k: [r[0] for r in conn.execute(q).fetchall()] for k, q in queries.items()}


@pytest_twisted.ensureDeferred
async def test_rows_are_stamped_with_the_injected_clock(store_url: str) -> None:
    clock = task.Clock()
    clock.advance(1_000_000.5)
    s = await open_store(store_url, reactor, clock=clock)
    await s.save_cdr(full_cdr("1"))
    await s.kv_set("ns", "a", 1)
    clock.advance(10)
    await s.save_cdr(full_cdr("2"))
    await s.kv_write([("ns", "b", 2)])
    clock.advance(10)
    await s.save_cdr(full_cdr("1", cause=4))  # the upsert stamps the row again
    await s.close()
    rows = await threads.deferToThread(stamps, store_url)
    assert rows == {"applied": [1_000_000.5] * len(MIGRATIONS),
                    "saved": [1_000_020.5, 1_000_010.5],
                    "updated": [1_000_000.5, 1_000_010.5]}


# --- life cycle ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_closed_store_refuses_work(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    pending = s.save_cdr(full_cdr())  # in flight when close() starts: close waits for it
    await s.close()
    await pending
    await s.close()  # twice is harmless
    with pytest.raises(StoreError, match=r"is closed"):
        await s.get_cdr("x")
    s = await open_store(store_url, reactor)
    assert await s.get_cdr("1700000000.42") == full_cdr()
    await s.close()


@pytest_twisted.ensureDeferred
async def test_sqlite_file_survives_reopen_in_wal_mode(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "sub" / "dir" / "ucs.db")  # directories are created
    s = await open_store(url, reactor)
    await s.save_cdr(full_cdr())
    await s.kv_set("agents", "bob", {"state": "AUX", "reason": "Oběd"})
    await s.close()
    path = tmp_path / "sub" / "dir" / "ucs.db"
    assert await threads.deferToThread(journal_mode, path) == "wal"
    s = await open_store(url, reactor)
    assert await s.get_cdr("1700000000.42") == full_cdr()
    assert await s.kv_get("agents", "bob") == {"state": "AUX", "reason": "Oběd"}
    await s.close()


@pytest_twisted.ensureDeferred
async def test_sqlite_memory_store() -> None:
    s = await open_store("sqlite:///:memory:", reactor)
    await s.kv_set("a", "b", 1)
    assert await s.kv_get("a", "b") == 1
    await s.close()


@pytest_twisted.ensureDeferred
async def test_sqlite_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=rf"cannot open store sqlite:///{path}: file is not a database"):
        await open_store(f"sqlite:///{path}", reactor)


@pytest_twisted.ensureDeferred
async def test_postgres_unreachable_names_url_without_password() -> None:
    url = "postgresql://ucs:s3cret@127.0.0.1:1/ucs"
    with pytest.raises(StoreError) as e:
        await open_store(url, reactor)
    message = str(e.value)
    assert message.startswith("cannot connect to store postgresql://ucs:***@127.0.0.1:1/ucs: ")
    assert "s3cret" not in message and "\n" not in message


@pytest_twisted.ensureDeferred
async def test_bad_url_is_refused() -> None:
    with pytest.raises(StoreURLError, match=r"^'mysql://x' is not supported; use sqlite:///PATH or postgresql://"):
        await open_store("mysql://x", reactor)


# --- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://x", r"'mysql://x' is not supported; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"),
        ("ucs.db", r"'ucs.db' is not a URL"),
        ("sqlite://ucs.db", r"has no database path"),
        ("sqlite:///", r"has no database path"),
        ("sqlite:///var/", r"names a directory"),
        ("postgresql:///db", r"has no host"),
        ("postgresql://u@h:5432", r"has no database name"),
        ("postgresql://u@h:99999/db", r"is not a valid URL"),
        ("postgresql://u:pw@h:0/db", r"'postgresql://u:\*\*\*@h:0/db' has port 0"),
        (5, r"5 is not a string"),
    ],
)
def test_parse_store_url_errors(url: Any, message: str) -> None:
    with pytest.raises(StoreURLError, match=message):
        parse_store_url(url)


def test_parse_store_url(tmp_path: Path) -> None:
    u = parse_store_url("sqlite:///var/ucs.db", base_dir=str(tmp_path))
    assert (u.scheme, u.path) == ("sqlite", os.path.join(str(tmp_path), "var", "ucs.db"))
    assert parse_store_url("sqlite:////abs/ucs.db").path == "/abs/ucs.db"
    assert parse_store_url("sqlite:///:memory:").path == ":memory:"
    pg = parse_store_url("postgres://ucs:pw@db.example.com:5433/ucs?sslmode=require")
    assert pg.scheme == "postgresql"
    assert str(pg) == "postgres://ucs:***@db.example.com:5433/ucs?sslmode=require"
    assert redact("postgresql://ucs@h/db") == "postgresql://ucs@h/db"


# --- anything a PBX or a client may send ------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def generated_examples(n: int) -> list[tuple[str, str, dict[str, Any], Any]]:
    """Hypothesis-made examples, collected by calling a @given function directly.

    (pytest-twisted cannot run @given tests that take fixtures, and the store
    is a fixture: so Hypothesis makes the data and the test below uses it.)
    """
    examples = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None)
    @given(
        uniqueid=st.text(min_size=1, max_size=30),
        name=st.text(),
        metadata=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
        value=json_values,
    )
    def collect(uniqueid: str, name: str, metadata: dict[str, Any], value: Any) -> None:
        examples.append((uniqueid, name, metadata, value))

    collect()
    return examples


@pytest_twisted.ensureDeferred
async def test_any_text_and_json_round_trips(store: Any) -> None:
    for i, (uniqueid, name, metadata, value) in enumerate(generated_examples(100)):
        uniqueid = f"{i}:{uniqueid}"
        cdr = {"uniqueid": uniqueid, "caller_name": name, "metadata": metadata, "journey": [value]}
        await store.save_cdr(cdr)
        got = await store.get_cdr(uniqueid)
        assert got is not None
        assert (got["caller_name"], got["metadata"], got["journey"]) == (
            without_nul(name), without_nul(metadata), [without_nul(value)]
        ), cdr
        await store.kv_set("prop", uniqueid, value)
        assert await store.kv_get("prop", uniqueid) == without_nul(value), value

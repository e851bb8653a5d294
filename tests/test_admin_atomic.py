"""An import, and a queue's members, applied all or nothing (issue 19).

On SQLite and PostgreSQL, over the real WebSocket of a running UCS with a logged-in
agent bar: a file whose last row is refused -- by the checks, or by the database
itself (a trigger, as a full disk or a revoked grant would) -- leaves the store as it
was (compared document by document, and the audit log), the directory in memory as it
was, nothing published on the bus and no ``config.change`` at the bar; a change made by
another administrator between the preview and the apply that makes a row bad refuses
the whole file.  ``config.queues.setMembers`` sets every member or none, and a member
it removes leaves the simulated Asterisk's queue (``QueueStatus`` over AMI).  The
directory's batch itself: a step may name what an earlier step adds, a refused step is
named, a batch computed on an old revision is refused as stale.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from serverkit import start_demo
from test_admin import write_center, write_config
from test_audit_store import _execute
from test_web_api import CallError, Client, connect, ready_agent, settle
from twisted.internet import reactor

from ucs import demo
from ucs.admin.cli import run
from ucs.bus import EventBus
from ucs.directory.directory import KINDS, Directory, Stale, Step, StepRefused
from ucs.events import EVENT_CONFIG_CHANGE, EVENT_USER_CHANGE
from ucs.server import UCSServer
from ucs.store import open_store


def refuse_rows_containing(store_url: str, marker: str) -> list[str]:
    """SQL making the database refuse to write a directory document that contains ``marker``."""
    if store_url.startswith("sqlite"):  # an edit is an UPDATE (written over its revision), an add an INSERT
        return [f"CREATE TRIGGER refuse_marked{i} BEFORE {op} ON kv WHEN instr(NEW.value, '{marker}') > 0 "
                "BEGIN SELECT RAISE(ABORT, 'row refused by the database'); END"
                for i, op in enumerate(("INSERT", "UPDATE"))]
    return ["CREATE FUNCTION refuse_marked() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'row refused by the database'; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER refuse_marked BEFORE INSERT OR UPDATE ON kv FOR EACH ROW "
            f"WHEN (NEW.value::text LIKE '%{marker}%') EXECUTE FUNCTION refuse_marked()"]


def stop_refusing(store_url: str) -> list[str]:
    if store_url.startswith("sqlite"):
        return ["DROP TRIGGER refuse_marked0", "DROP TRIGGER refuse_marked1"]
    return ["DROP TRIGGER refuse_marked ON kv"]


async def stored(store: Any) -> dict[str, Any]:
    """Every directory document the store holds, and its newest audit entry."""
    docs = {kind: await store.kv_items(f"dir.{kind}") for kind in KINDS}
    return {"docs": docs, "audit": (await store.audit_list(limit=1))[0]["id"]}


def in_memory(server: UCSServer) -> dict[str, Any]:
    d = server.get_directory()
    return {kind: {i: (e.to_dict() if kind != "users" else d.user_dict(e)) for i, e in d.table(kind).items()}
            for kind in KINDS}


class Heard:
    """What the bus publishes about the directory (``user.change``, ``config.change``)."""

    def __init__(self, server: UCSServer) -> None:
        self.events: list[tuple[str, str]] = []
        bus = server.get_bus()
        bus.subscribe(EVENT_USER_CHANGE, lambda e, args: self.events.append(("user.change", args["action"])))
        bus.subscribe(EVENT_CONFIG_CHANGE, lambda e, args: self.events.append((args["kind"], args["action"])))


async def nothing_told(server: UCSServer, bar: Client, heard: Heard) -> None:
    """No directory event on the bus, and none sent to the bar once the hub has settled."""
    assert heard.events == []
    await settle(server, bar)
    assert "config.change" not in bar.events()


async def admin_client(server: UCSServer) -> Client:
    client = await connect(server.get_web_service().ws_url)
    await client.call("login", ["admin", demo.ADMIN_PASSWORD])
    return client


USERS = ("username,firstname,email,lines,queues,password\n"
         "agent1,Renamed,,SIP/1001,support:1,\n"                     # an edit
         "amy,Amy,amy@example.com,SIP/1003,sales:2,amy-password\n"   # an add
         "zed,Zed,zed@example.com,,support:0,zed-password\n")        # the last row


@pytest_twisted.ensureDeferred
async def test_an_import_whose_last_row_is_refused_changes_nothing(tmp_path: Path, store_url: str) -> None:
    server = await start_demo(tmp_path, store={"url": store_url})
    bar = await ready_agent(server, 2)
    root = await admin_client(server)
    store = server.get_store()
    try:
        heard = Heard(server)
        before, memory = await stored(store), in_memory(server)

        # Refused by the checks (no preview first): the last row's email.
        bad = USERS.replace("zed@example.com", "zed-at-example")
        with pytest.raises(CallError) as refused:
            await root.call("config.import", {"kind": "users", "csv": bad, "dry_run": False, "file": "users.csv"})
        assert refused.value.error["error"] == "invalid_data"
        assert refused.value.error["fields"] == {"line 4, email": "'zed-at-example' is not accepted; give an "
                                                                  "address like name@example.com"}
        assert await stored(store) == before and in_memory(server) == memory
        await nothing_told(server, bar, heard)

        # Refused by the database itself, in the same transaction as the rows before it.
        await _execute(store_url, refuse_rows_containing(store_url, "zed@example.com"))
        preview = await root.call("config.import", {"kind": "users", "csv": USERS})
        assert preview["problems"] == [] and len(preview["added"]) == 2 and len(preview["changed"]) == 1
        with pytest.raises(CallError) as refused:
            await root.call("config.import", {"kind": "users", "csv": USERS, "dry_run": False, "file": "users.csv"})
        assert refused.value.error["error"] == "processing_error"
        message = refused.value.error["message"]
        assert "the import of users.csv (3 changes) could not be stored" in message
        assert "row refused by the database" in message and "nothing was changed" in message
        assert await stored(store) == before and in_memory(server) == memory
        assert server.get_directory().user_by_username("amy") is None
        assert server.get_directory().user_by_username("agent1").firstname != "Renamed"  # type: ignore[union-attr]
        await nothing_told(server, bar, heard)
        assert (await bar.call("state"))["status"] == "READY"  # the bar went on

        # The database takes it again: the whole file in one transaction, with its summary.
        await _execute(store_url, stop_refusing(store_url))
        done = await root.call("config.import", {"kind": "users", "csv": USERS, "dry_run": False,
                                                 "file": "users.csv"})
        assert done["applied"] and [a["key"] for a in done["added"]] == ["amy", "zed"]
        assert [c["key"] for c in done["changed"]] == ["agent1"]
        entries = (await root.call("audit.list", {"filters": {"source": "import"}}))["entries"]
        assert [(e["action"], e["entity_id"]) for e in entries] == [
            ("import", "users.csv"), ("add", str(done["added"][1]["id"])), ("add", str(done["added"][0]["id"])),
            ("edit", str(done["changed"][0]["id"]))]
        assert entries[0]["after"] == {"file": "users.csv", "added": 2, "changed": 1, "unchanged": 0}
        assert len({e["at"] for e in entries}) == 1
        amy = server.get_directory().user_by_username("amy")
        assert amy is not None and await server.get_directory().verify_password(amy, "amy-password")
        assert (await bar.event("config.change"))["data"]["kinds"] == ["users"]
        assert sorted(heard.events) == sorted([("user.change", "edit"), ("users", "edit"), ("user.change", "add"),
                                               ("users", "add"), ("user.change", "add"), ("users", "add")])
    finally:
        bar.close()
        root.close()
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_change_made_between_the_preview_and_the_apply_refuses_the_whole_file(
        tmp_path: Path, store_url: str) -> None:
    server = await start_demo(tmp_path, store={"url": store_url})
    bar = await ready_agent(server, 2)
    root, other = await admin_client(server), await admin_client(server)
    store = server.get_store()
    try:
        queues = ("asterisk_name,name,type\n"
                  "support,Support desk,1\n"
                  "vip,VIP,1\n"
                  "gold,Gold,1\n")
        users = ("username,email,queues\n"
                 "amy,amy@example.com,vip:1\n"   # names a queue the other file adds
                 "zed,zed@example.com,gold:2\n")
        preview = await root.call("config.import", {"kind": "queues", "csv": queues})
        assert preview["problems"] == [] and [a["key"] for a in preview["added"]] == ["vip", "gold"]
        preview = await root.call("config.import", {"kind": "users", "csv": users})
        assert [p["column"] for p in preview["problems"]] == ["queues", "queues"]  # no queue vip yet
        done = await root.call("config.import", {"kind": "queues", "csv": queues, "dry_run": False})
        vip = server.get_directory().queue_by_asterisk_name("vip")
        assert vip is not None and done["added"][0]["id"] == vip.id
        preview = await root.call("config.import", {"kind": "users", "csv": users})
        assert preview["problems"] == [] and [a["key"] for a in preview["added"]] == ["amy", "zed"]
        await settle(server, bar)
        bar.inbox.clear()

        # Another administrator deletes the queue the file's last row names, meanwhile.
        gold = server.get_directory().queue_by_asterisk_name("gold")
        assert gold is not None
        await other.call("config.queues.delete", [gold.id])
        await settle(server, bar)
        bar.inbox.clear()
        heard = Heard(server)
        before, memory = await stored(store), in_memory(server)
        with pytest.raises(CallError) as refused:
            await root.call("config.import", {"kind": "users", "csv": users, "dry_run": False, "file": "users.csv"})
        assert refused.value.error["error"] == "invalid_data"
        assert refused.value.error["fields"] == {"line 3, queues": "there is no queue 'gold'"}
        assert await stored(store) == before and in_memory(server) == memory
        assert server.get_directory().user_by_username("amy") is None
        await nothing_told(server, bar, heard)

        # The same race while the apply is under way (both requests in flight at once): whichever
        # the server takes first, the file is applied whole or not at all -- never amy without zed.
        await root.call("config.import", {"kind": "queues", "csv": queues, "dry_run": False})
        gold = server.get_directory().queue_by_asterisk_name("gold")
        assert gold is not None
        applying = root.request("config.import", {"kind": "users", "csv": users, "dry_run": False})
        deleting = other.request("config.queues.delete", [gold.id])
        applied, deleted = await root.reply(applying), await other.reply(deleting)
        assert "result" in deleted and server.get_directory().queue_by_asterisk_name("gold") is None
        d = server.get_directory()
        amy, zed = d.user_by_username("amy"), d.user_by_username("zed")
        if "error" in applied:
            assert applied["error"]["fields"] == {"line 3, queues": "there is no queue 'gold'"}
            assert amy is None and zed is None
        else:
            assert amy is not None and zed is not None and gold.id not in zed.queues  # the deletion took it out
        names = {u["username"] for u in (await store.kv_items("dir.users")).values()}
        assert {"amy", "zed"} <= names if "result" in applied else not {"amy", "zed"} & names
    finally:
        for c in (bar, root, other):
            c.close()
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_several_files_at_once_are_one_transaction(tmp_path: Path, store_url: str) -> None:
    """``config.importAll`` (``ucs-admin import`` through a running UCS): a user file naming a
    queue the queue file adds; the database refuses the last user: not even the queue is kept."""
    server = await start_demo(tmp_path, store={"url": store_url})
    bar = await ready_agent(server, 1)
    root = await admin_client(server)
    store = server.get_store()
    try:
        files = [{"kind": "users", "csv": "username,email,queues\namy,amy@example.com,vip:1\n"
                                          "zed,zed@example.com,vip:2\n", "file": "users.csv"},
                 {"kind": "queues", "csv": "asterisk_name,name\nvip,VIP\nsales,Sales\n", "file": "queues.csv"}]
        preview = await root.call("config.importAll", {"files": files})
        assert preview["applied"] is False and [f["file"] for f in preview["files"]] == ["queues.csv", "users.csv"]
        assert [a["key"] for a in preview["files"][0]["added"]] == ["vip"]
        assert preview["files"][0]["unchanged"] == [{"line": 3, "key": "sales"}]
        assert [a["key"] for a in preview["files"][1]["added"]] == ["amy", "zed"]

        await _execute(store_url, refuse_rows_containing(store_url, "zed@example.com"))
        heard = Heard(server)
        before, memory = await stored(store), in_memory(server)
        with pytest.raises(CallError) as refused:
            await root.call("config.importAll", {"files": files, "dry_run": False})
        assert refused.value.error["error"] == "processing_error"
        assert "the import of users.csv, queues.csv (3 changes) could not be stored" in refused.value.error["message"]
        assert await stored(store) == before and in_memory(server) == memory
        assert server.get_directory().queue_by_asterisk_name("vip") is None
        await nothing_told(server, bar, heard)

        bad = [files[0], {**files[1], "csv": "asterisk_name,name\nvip,VIP\nsales,\n"}]  # a queue needs a name
        with pytest.raises(CallError) as refused:
            await root.call("config.importAll", {"files": bad, "dry_run": False})
        assert refused.value.error["fields"] == {"queues.csv line 3, name": "must not be empty"}
        with pytest.raises(CallError) as refused:
            await root.call("config.importAll", {"files": [files[0], files[0]]})
        assert "one file per kind" in refused.value.error["fields"]["files"]
        assert await stored(store) == before

        await _execute(store_url, stop_refusing(store_url))
        done = await root.call("config.importAll", {"files": files, "dry_run": False})
        assert done["applied"] is True
        vip = server.get_directory().queue_by_asterisk_name("vip")
        zed = server.get_directory().user_by_username("zed")
        assert vip is not None and zed is not None and zed.queues[vip.id].priority == 2
        summaries = (await root.call("audit.list", {"filters": {"action": "import"}}))["entries"]
        assert {(e["kind"], e["entity_id"]) for e in summaries} == {("queues", "queues.csv"), ("users", "users.csv")}
        assert len({e["at"] for e in summaries}) == 1
    finally:
        bar.close()
        root.close()
        await server.service.stopService()


async def members(server: UCSServer, queue: str) -> dict[str, int]:
    """The phones Asterisk lists in ``queue`` with their penalty: QueueStatus over the AMI link."""
    result = await server.get_ami_client().sendAction("QueueStatus", {"Queue": queue})
    return {e.get("StateInterface") or e.get("Location"): int(e.get("Penalty", 0)) for e in result.events
            if e.get("Event") == "QueueMember" and e.get("Queue") == queue}


@pytest_twisted.ensureDeferred
async def test_a_queues_members_are_set_all_or_nothing_and_leave_asterisk(tmp_path: Path, store_url: str) -> None:
    server = await start_demo(tmp_path, store={"url": store_url})
    bar1, bar2 = await ready_agent(server, 1), await ready_agent(server, 2)
    root = await admin_client(server)
    store = server.get_store()
    d = server.get_directory()
    try:
        sales = d.queue_by_asterisk_name("sales")
        assert sales is not None
        ids = {name: d.user_by_username(name).id for name in ("agent1", "agent2", "agent3", "agent4", "supervisor")}  # type: ignore[union-attr]
        assert set(await members(server, "sales")) >= {"SIP/1001", "SIP/1002"}

        # The database refuses agent2's document: agent1's and agent3's edits are not kept either.
        await _execute(store_url, refuse_rows_containing(store_url, '"agent2"'))
        heard = Heard(server)
        before, memory = await stored(store), in_memory(server)
        wanted = [{"user_id": ids["agent2"], "penalty": 3}, {"user_id": ids["agent3"], "penalty": 1}]
        with pytest.raises(CallError) as refused:
            await root.call("config.queues.setMembers", [sales.id, wanted])
        assert refused.value.error["error"] == "processing_error"
        assert "the members of queue sales could not be stored" in refused.value.error["message"]
        assert await stored(store) == before and in_memory(server) == memory and heard.events == []
        await server.get_agents().settled()
        assert set(await members(server, "sales")) >= {"SIP/1001", "SIP/1002"}

        # Bad arguments are refused before anything, each named.
        for bad, field in (([{"user_id": ids["agent2"], "penalty": 5000}], "members[0].penalty"),
                           ([{"user_id": 999}], "user 999 does not exist"),
                           ([{"user_id": ids["agent2"]}, {"user_id": ids["agent2"]}], "listed twice")):
            with pytest.raises(CallError) as refused:
                await root.call("config.queues.setMembers", [sales.id, bad])
            assert refused.value.error["error"] == "invalid_data" and field in refused.value.error["message"]
        with pytest.raises(CallError) as refused:
            await root.call("config.queues.setMembers", [9999, []])
        assert refused.value.error["error"] == "not_found"
        assert await stored(store) == before and in_memory(server) == memory

        # Taken: agent1, agent4 (and the supervisor) leave the queue, agent2 and agent3 get penalties.
        await _execute(store_url, stop_refusing(store_url))
        done = await root.call("config.queues.setMembers", [sales.id, wanted])
        assert done == {"id": sales.id, "members": sorted(wanted, key=lambda m: m["user_id"])}
        assert sales.id not in d.users[ids["agent1"]].queues and sales.id not in d.users[ids["supervisor"]].queues
        assert d.users[ids["agent2"]].queues[sales.id].priority == 3
        docs = await store.kv_items("dir.users")
        assert str(sales.id) not in docs[str(ids["agent1"])]["queues"]
        assert docs[str(ids["agent3"])]["queues"][str(sales.id)]["priority"] == 1
        entries = (await root.call("audit.list", {"filters": {"kind": "users", "source": "api"}}))["entries"]
        assert sorted(int(e["entity_id"]) for e in entries[:5]) == sorted(ids.values())
        assert len({e["at"] for e in entries[:5]}) == 1  # one transaction
        await server.get_agents().settled()
        now = await members(server, "sales")
        assert "SIP/1001" not in now and "SIP/1002" in now  # agent3 is not logged in: not in Asterisk
        assert "SIP/1001" in await members(server, "support")  # its other queue is left alone
        await settle(server, bar1)
        assert [q["name"] for q in (await bar1.call("state"))["queues"]] == ["Support"]
        assert (await bar1.call("state"))["status"] == "READY"
    finally:
        for c in (bar1, bar2, root):
            c.close()
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_ucs_admin_direct_import_is_one_transaction(tmp_path: Path, store_url: str) -> None:
    cfg = write_config(tmp_path, store_url)
    files = write_center(tmp_path / "center")
    out, err = io.StringIO(), io.StringIO()
    assert await run(["-c", cfg, "list", "users"], reactor, out, err) == 0  # creates the schema
    await _execute(store_url, refuse_rows_containing(store_url, "Sue the Boss"))  # the last user
    out, err = io.StringIO(), io.StringIO()
    code = await run(["-c", cfg, "--direct", "import", *files], reactor, out, err)
    assert code == 1 and "row refused by the database" in err.getvalue() and "nothing was changed" in err.getvalue()
    store = await open_store(store_url, reactor)
    try:
        assert [await store.kv_items(f"dir.{kind}") for kind in KINDS] == [{}] * len(KINDS)
        assert await store.audit_list(source="ucs-admin") == []
    finally:
        await store.close()
    await _execute(store_url, stop_refusing(store_url))
    out, err = io.StringIO(), io.StringIO()
    assert await run(["-c", cfg, "--direct", "import", *files], reactor, out, err) == 0, err.getvalue()
    assert "13 change(s) made (direct)" in out.getvalue()


@pytest_twisted.ensureDeferred
async def test_the_directory_batch(store_url: str) -> None:
    s = await open_store(store_url, reactor)
    try:
        bus = EventBus()
        heard: list[tuple[str, str]] = []
        bus.subscribe(EVENT_CONFIG_CHANGE, lambda e, args: heard.append((args["kind"], args["action"])))
        d = Directory(s, bus, audit=s)
        await d.load()
        await d.ensure_admin("admin-password")
        heard.clear()
        # A later step names what an earlier one adds (the queue's id is the next one).
        qid = d.next_ids()["queues"]
        queue, carol, edited = await d.apply([
            Step("queues", "add", {"name": "VIP", "asterisk_name": "vip"}, label="row 1"),
            Step("users", "add", {"username": "carol", "password": "carol-password",
                                  "queues": {str(qid): {"priorities": 2}}}, label="row 2"),
            Step("queues", "edit", {"name": "V.I.P."}, qid, label="row 3"),
        ], actor="admin", source="api")
        assert queue.id == qid and edited is queue and queue.name == "V.I.P." and d.queues[qid] is queue
        assert carol.queues[qid].priority == 2 and await d.verify_password(carol, "carol-password")
        assert heard == [("queues", "add"), ("users", "add"), ("queues", "edit")]
        stored_users = await s.kv_items("dir.users")
        assert stored_users[str(carol.id)]["password_hash"] == carol.password_hash
        assert (await s.kv_items("dir.queues"))[str(qid)]["name"] == "V.I.P."
        entries = await s.audit_list(limit=3)
        assert [(e["kind"], e["action"]) for e in entries] == [("queues", "edit"), ("users", "add"), ("queues", "add")]
        assert entries[1]["after"]["password"] == "set" and len({e["at"] for e in entries}) == 1

        # A refused step is named; none of the steps before it is kept.
        heard.clear()
        revision, before = d.revision, await s.kv_items("dir.users")
        with pytest.raises(StepRefused) as refused:
            await d.apply([Step("users", "edit", {"firstname": "Caroline"}, carol.id, label="row 1"),
                           Step("queues", "delete", None, qid, label="row 2"),
                           Step("users", "add", {"username": "CAROL"}, label="row 3")])
        assert (refused.value.index, refused.value.label) == (2, "row 3")
        assert refused.value.message == {"row 3, username": f"'CAROL' is taken by user {carol.id}"}
        assert carol.firstname == "" and qid in d.queues and qid in carol.queues
        assert await s.kv_items("dir.users") == before and heard == [] and d.revision == revision
        with pytest.raises(StepRefused, match="row 1, id: .*last superuser"):
            admin = d.user_by_username("admin")
            assert admin is not None
            await d.apply([Step("users", "delete", None, admin.id, label="row 1")])
        # A long batch (checked in a thread): the same, its last step seeing the first one's team.
        many = [Step("teams", "add", {"name": f"Team {i}"}, label=f"row {i}") for i in range(1, 40)]
        with pytest.raises(StepRefused) as refused:
            await d.apply([*many, Step("teams", "add", {"name": "TEAM 1"}, label="row 40")])
        assert refused.value.index == 39 and "row 40, name" in refused.value.message
        assert d.teams == {} and await s.kv_items("dir.teams") == {}
        teams = await d.apply(many)
        assert [t.name for t in teams] == [f"Team {i}" for i in range(1, 40)] and len(d.teams) == 39
        assert len(await s.kv_items("dir.teams")) == 39
        # A batch computed on an old revision: nothing is done.
        await d.edit("users", carol.id, {"firstname": "Caroline"})
        with pytest.raises(Stale):
            await d.apply([Step("users", "edit", {"lastname": "C."}, carol.id)], revision=revision)
        assert carol.lastname == ""
    finally:
        await s.close()

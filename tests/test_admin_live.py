"""Directory changes applied to the running center, and the operations APIs (issue 19).

Over the real WebSocket, with real agent bars (``test_web_api``'s client) and the
administrator's own socket, against the whole server in demo mode: the simulated
Asterisk is asked over AMI (``QueueStatus`` on UCS's own AMI link, a real TCP
socket) who is in its queues.  The stores matter where the change is stored or
audited: those tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from serverkit import start_demo, until, write_plugin
from test_web_api import CallError, Client, connect, ready_agent, settle
from twisted.internet import reactor

from ucs import demo
from ucs.admin.cli import run
from ucs.server import UCSServer


async def members(server: UCSServer, queue: str) -> set[str]:
    """The phones Asterisk lists in ``queue``: QueueStatus over the AMI link."""
    result = await server.get_ami_client().sendAction("QueueStatus", {"Queue": queue})
    return {e.get("StateInterface") or e.get("Location") for e in result.events
            if e.get("Event") == "QueueMember" and e.get("Queue") == queue}


async def admin_bar(server: UCSServer) -> Client:
    c = await connect(server.get_web_service().ws_url)
    await c.call("login", ["admin", demo.ADMIN_PASSWORD])
    return c


def uid(server: UCSServer, username: str) -> int:
    user = server.get_directory().user_by_username(username)
    assert user is not None
    return int(user.id)


async def ucs_admin(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run(list(argv), reactor, out, err)
    return code, out.getvalue(), err.getvalue()


def api_mode(server: UCSServer, tmp_path: Path) -> tuple[str, ...]:
    """``ucs-admin`` arguments that reach this UCS through its API, as the administrator."""
    (tmp_path / "pw").write_text(demo.ADMIN_PASSWORD + "\n")
    cfg = tmp_path / "admin.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "elsewhere.db"}"\n')
    return ("-c", str(cfg), "--api", "--url", server.get_web_service().ws_url, "--password-file", str(tmp_path / "pw"))


@pytest_twisted.ensureDeferred
async def test_a_user_deleted_while_working_is_logged_out_cleanly(tmp_path: Path, store_url: str) -> None:
    server = await start_demo(tmp_path, store={"url": store_url})
    try:
        bus = server.get_bus()
        statuses: list[tuple[str, str]] = []
        bus.subscribe("agent.status", lambda a, args: statuses.append((a.user.username, args["status"].name)))
        bar1, bar2 = await ready_agent(server, 1), await ready_agent(server, 2)
        root = await admin_bar(server)
        assert await members(server, "support") >= {"SIP/1001", "SIP/1002"}

        await root.call("config.users.delete", [uid(server, "agent1")])
        closed = (await bar1.event("session.closed"))["data"]
        assert closed["reason"] == "user deleted" and "deleted by an administrator" in closed["message"]
        assert closed["state"] == "CREDENTIALS"
        with pytest.raises(CallError) as refused:
            await bar1.call("state")  # the bar's session ended: back to the login form
        assert refused.value.error["error"] == "permission_denied"
        await server.get_agents().settled()
        assert "SIP/1001" not in await members(server, "support") | await members(server, "sales")
        assert "SIP/1002" in await members(server, "support")
        assert ("agent1", "OFFLINE") in statuses  # the status change is recorded like any logout
        assert "agent1" not in [a.username for a in server.get_agents().all()]
        # the others' bars are told the directory changed, and keep working
        assert (await bar2.event("config.change"))["data"]["kinds"] == ["users"]
        assert (await bar2.call("state"))["status"] == "READY"
        (entry,) = (await root.call("audit.list", {"filters": {"kind": "users", "action": "delete"}}))["entries"]
        assert entry["actor"] == "admin" and entry["before"]["username"] == "agent1"
        for bar in (bar1, bar2, root):
            bar.close()
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_queue_removed_by_ucs_admin_takes_its_members_out_and_bars_stop_showing_it(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    try:
        bar1, bar2 = await ready_agent(server, 1), await ready_agent(server, 2)
        assert await members(server, "sales") >= {"SIP/1001", "SIP/1002"}
        assert "Sales" in [q["name"] for q in (await bar1.call("state"))["queues"]]
        sales = server.get_directory().queue_by_asterisk_name("sales")
        assert sales is not None
        code, out, err = await ucs_admin(*api_mode(server, tmp_path), "delete", "queues", str(sales.id))
        assert code == 0, err
        changed = (await bar1.event("config.change"))["data"]
        assert "queues" in changed["kinds"]
        await server.get_agents().settled()
        assert not {"SIP/1001", "SIP/1002"} & await members(server, "sales")
        assert {"SIP/1001", "SIP/1002"} <= await members(server, "support")
        for bar in (bar1, bar2):
            assert [q["name"] for q in (await bar.call("state"))["queues"]] == ["Support"]

        # a membership removed: that member leaves that queue only
        agent2 = server.get_directory().users[uid(server, "agent2")]
        support = server.get_directory().queue_by_asterisk_name("support")
        assert support is not None and set(agent2.queues) == {support.id}
        root = await admin_bar(server)
        await root.call("config.users.edit", [{"id": agent2.id, "queues": {}}])
        await server.get_agents().settled()
        assert await members(server, "support") >= {"SIP/1001"} and "SIP/1002" not in await members(server, "support")
        await settle(server, bar2)
        assert (await bar2.call("state"))["queues"] == []
        assert (await bar2.call("state"))["status"] == "READY"  # still logged in, in no queue
        for bar in (bar1, bar2, root):
            bar.close()
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_line_removed_under_an_agent_unpairs_it(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    try:
        bar = await ready_agent(server, 1)
        root = await admin_bar(server)
        line = server.get_directory().line_by_device("SIP/1001")
        assert line is not None
        await root.call("config.lines.delete", [line.id])
        out = (await bar.event("agent.logout"))["data"]
        assert out["reason"] == "line deleted" and out["status"] == "OFFLINE"
        with pytest.raises(CallError) as refused:
            await bar.call("state")  # back to choosing a phone: the bar asks for one
        assert refused.value.error["error"] == "invalid_state"
        info = await bar.call("session.info")
        assert info["state"] == "IDENTIFY" and info["device"] is None and info["user"]["username"] == "agent1"
        await server.get_agents().settled()
        assert "SIP/1001" not in await members(server, "support") | await members(server, "sales")
        assert "SIP/1001" not in [d["device"] for d in await bar.call("devices.list")]
        bar.close()
        root.close()
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_bars_get_config_change_naming_each_kind(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    try:
        bar = await ready_agent(server, 1)
        root = await admin_bar(server)
        added = {
            "groups": {"name": "Brno"}, "teams": {"name": "Blue"}, "queues": {"name": "VIP", "asterisk_name": "vip"},
            "lines": {"device": "SIP/1099"}, "auxreasons": {"name": "Training"}, "callreasons": {"code": "X1"},
            "users": {"username": "zoe"},
        }
        for kind, data in added.items():
            made = await root.call(f"config.{kind}.add", [data])
            assert (await bar.event("config.change"))["data"] == {"kinds": [kind]}
            await root.call(f"config.{kind}.edit", [{"id": made["id"], **data}])
            assert (await bar.event("config.change"))["data"] == {"kinds": [kind]}
            await root.call(f"config.{kind}.delete", [made["id"]])
            assert (await bar.event("config.change"))["data"] == {"kinds": [kind]}
        bar.close()
        root.close()
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_who_is_logged_in_and_a_forced_logout(tmp_path: Path, store_url: str) -> None:
    server = await start_demo(tmp_path, store={"url": store_url})
    try:
        bar1 = await ready_agent(server, 1)
        bar2 = await connect(server.get_web_service().ws_url)
        await bar2.call("login", list(demo.user_of(2)))  # logged in, no phone yet
        root = await admin_bar(server)
        reply = await root.call("ops.sessions")
        assert reply["nodes"] == [{"node": server.get_operations().node, "role": None}] and reply["missing"] == []
        rows = {r["username"]: r for r in reply["users"]}
        assert set(rows) == {"admin", "agent1", "agent2"}
        one = rows["agent1"]
        assert (one["status"], one["role"], one["line"]["device"]) == ("READY", "agent", "SIP/1001")
        assert one["since"] <= reactor.seconds() and one["status_since"] >= one["since"]  # type: ignore[attr-defined]
        (s,) = one["sessions"]
        assert (s["kind"], s["state"], s["address"], s["line"]) == ("ws", "READY", "127.0.0.1", "SIP/1001")
        assert s["node"].startswith("ucs:") and s["node"] == server.get_operations().node
        assert "sid" not in s  # a session id resumes the session: never shown
        assert (rows["agent2"]["status"], rows["agent2"]["line"]) == (None, None)
        assert rows["agent2"]["sessions"][0]["state"] == "IDENTIFY" and rows["admin"]["role"] == "superuser"
        assert rows["admin"]["you"] and not rows["agent1"]["you"]
        with pytest.raises(CallError) as e:
            await root.call("ops.logout", [uid(server, "admin")])
        assert e.value.error["error"] == "invalid_data" and "is you" in e.value.error["message"]

        done = await root.call("ops.logout", [uid(server, "agent1")])
        assert done == {"user_id": uid(server, "agent1"), "username": "agent1", "sessions": 1, "agent": True}
        closed = (await bar1.event("session.closed"))["data"]
        assert closed["reason"] == "logged out by an administrator"
        assert closed["message"] == "You were logged out by an administrator."
        await server.get_agents().settled()
        assert "SIP/1001" not in await members(server, "support") | await members(server, "sales")
        assert "agent1" not in {r["username"] for r in (await root.call("ops.sessions"))["users"]}
        (entry,) = (await root.call("audit.list", {"filters": {"kind": "sessions"}}))["entries"]
        assert (entry["actor"], entry["action"], entry["entity_id"]) == ("admin", "logout", str(uid(server, "agent1")))
        assert entry["before"]["status"] == "READY" and entry["before"]["line"] == "SIP/1001"

        with pytest.raises(CallError) as e:
            await root.call("ops.logout", [uid(server, "agent3")])
        assert e.value.error["error"] == "not_found" and "agent3 is not logged in" in e.value.error["message"]
        with pytest.raises(CallError) as e:
            await root.call("ops.logout", [0])
        assert e.value.error["error"] == "invalid_data" and "positive" in e.value.error["message"]
        for method, args in (("ops.sessions", None), ("ops.logout", [uid(server, "admin")]), ("ops.ami", None),
                             ("plugins.list", None)):
            with pytest.raises(CallError) as e:
                await bar2.call(method, args)
            assert e.value.error["error"] == "permission_denied" and "superuser" in e.value.error["message"]
        assert {r["username"] for r in (await root.call("ops.sessions"))["users"]} == {"admin", "agent2"}
        for bar in (bar1, bar2, root):
            bar.close()
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_plugins_listed_loaded_and_unloaded_over_the_socket(tmp_path: Path) -> None:
    write_plugin(tmp_path, "greeter", "class Greeter:\n    def __init__(self, ucs):\n        self.ucs = ucs\n"
                                      "UCS_PLUGIN = 'Greeter'\n")
    server = await start_demo(tmp_path)
    try:
        root = await admin_bar(server)
        listed = {p["name"]: p for p in await root.call("plugins.list")}
        assert listed["greeter"]["state"] == "running"
        assert (await root.call("plugins.unload", ["greeter"]))["state"] == "stopped"
        write_plugin(tmp_path, "broken", "import no_such_module_here\nUCS_PLUGIN = 'X'\n")
        with pytest.raises(CallError) as e:
            await root.call("plugins.load", ["broken"])
        assert e.value.error["error"] == "processing_error" and "no_such_module_here" in e.value.error["message"]
        listed = {p["name"]: p for p in await root.call("plugins.list")}
        assert listed["broken"]["state"] == "failed" and "no_such_module_here" in listed["broken"]["error"]
        assert (await root.call("plugins.load", ["greeter"]))["state"] == "running"
        assert (await root.call("ops.ami"))["state"] == "up"  # the server went on
        root.close()
    finally:
        await server.service.stopService()


# -- with the simulated Asterisk on a clock: the link dropped, UCS stopped -------------------------


@pytest_twisted.ensureDeferred
async def test_the_ami_link_state_as_it_drops_and_comes_back(tmp_path: Path) -> None:
    from faultkit import Faults

    f = Faults(tmp_path)
    try:
        await f.start()
        root = await admin_bar(f.ucs)
        up = await root.call("ops.ami")
        assert (up["state"], up["version"], up["node"]) == ("up", f.sim.version, f.ucs.get_operations().node)
        assert up["last_resync"]["result"] == "ok" and up["last_resync"]["failed"] == []
        assert up["last_resync"]["queues"] == 2 and up["since"] <= up["last_resync"]["at"] <= reactor.seconds()  # type: ignore[attr-defined]
        assert up["address"] == "%s:%d" % f.ucs.get_demo_pbx().address() and up["last_failure"] is None

        await f.cut_link()
        down = await root.call("ops.ami")
        assert down["state"] == "connecting" and down["since"] >= up["last_resync"]["at"]
        assert down["version"] == f.sim.version  # the last one seen
        assert 0 <= down["last_lost"]["at"] - down["since"] < 1 and down["last_lost"]["why"]
        assert up["last_lost"] is None and down["last_resync"] == up["last_resync"]

        await f.restore_link()
        back = await root.call("ops.ami")
        assert back["state"] == "up" and back["since"] >= down["since"] and back["last_failure"] is None
        assert back["resyncs"] > up["resyncs"] and back["last_resync"]["at"] >= back["since"]
        assert back["last_resync"]["result"] == "ok"
        root.close()
    finally:
        await f.stop()
        f.close_clock()


@pytest_twisted.ensureDeferred
async def test_changes_made_on_the_store_while_ucs_is_stopped_are_picked_up_at_start(tmp_path: Path) -> None:
    from faultkit import Faults
    from serverkit import working_agent

    f = Faults(tmp_path)
    try:
        await f.start()
        await working_agent(f.ucs, 1)
        await working_agent(f.ucs, 2)
        directory = f.ucs.get_directory()
        support = directory.queue_by_asterisk_name("support")
        line4 = directory.line_by_device("SIP/1004")
        assert support is not None and line4 is not None
        zoe = await directory.add("users", {"username": "zoe", "password": "zoe-password-1",
                                            "queues": {str(support.id): {}}, "lines": [line4.id]})
        reg, session = f.ucs.get_registry(), f.ucs.get_sessions().create()
        await reg.call(session, "login", ["zoe", "zoe-password-1"])
        await reg.call(session, "identifier", ["phone-1004"])
        await reg.call(session, "provision")
        await f.settle()
        assert {(q, d) for q, d, _, _ in f.sim_members()} >= {("support", "SIP/1004"), ("sales", "SIP/1002")}
        agent2 = uid(f.ucs, "agent2")
        await f.stop()

        cfg = tmp_path / "admin.toml"
        cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "ucs.db"}"\n')
        code, _, err = await ucs_admin("-c", str(cfg), "--direct", "delete", "users", str(zoe.id))
        assert code == 0, err
        code, _, err = await ucs_admin("-c", str(cfg), "--direct", "edit", "users", str(agent2),
                                       "queues=" + json.dumps({str(support.id): {}}))
        assert code == 0, err
        assert {(q, d) for q, d, _, _ in f.sim_members()} >= {("support", "SIP/1004"), ("sales", "SIP/1002")}

        await f.start()  # the same store and the same (simulated) Asterisk
        await until(lambda: not any(d == "SIP/1004" or (q, d) == ("sales", "SIP/1002") for q, d, _, _ in f.sim_members()))
        assert {(q, d) for q, d, _, _ in f.sim_members()} == {
            ("support", "SIP/1001"), ("sales", "SIP/1001"), ("support", "SIP/1002")}
        assert sorted(a.username for a in f.ucs.get_agents().all()) == ["agent1", "agent2"]
        assert f.ucs.get_directory().user_by_username("zoe") is None
        entries = await (await f.ucs.when_store_open()).audit_list(source="ucs-admin")
        assert [(e["kind"], e["action"]) for e in entries] == [("users", "edit"), ("users", "delete")]
    finally:
        await f.stop()
        f.close_clock()


@pytest_twisted.ensureDeferred
async def test_a_resync_that_could_not_read_a_list_is_shown_incomplete(tmp_path: Path) -> None:
    from twisted.internet.defer import Deferred

    server = await start_demo(tmp_path, ami={"action_timeout": 0.5})
    try:
        root = await admin_bar(server)
        assert (await root.call("ops.ami"))["last_resync"]["result"] == "ok"
        # Asterisk stops answering DeviceStateList (a module stuck): the next resync times it out
        server.get_demo_pbx().server.actions._handlers["devicestatelist"] = lambda s, m: Deferred()
        await server.get_pbx_link().resync()
        shown = await root.call("ops.ami")
        assert shown["state"] == "up" and shown["last_resync"]["result"] == "incomplete"
        failed = shown["last_resync"]["failed"]
        # (the simulator answers in order: the lists asked after it wait behind it, and time out too)
        assert failed[0].startswith("DeviceStateList: no answer from Asterisk")
        assert {f.split(":")[0] for f in failed} <= {"DeviceStateList", "SIPpeers", "PJSIPShowEndpoints"}
        assert shown["last_resync"]["queues"] == 2  # what was read is applied
        root.close()
    finally:
        await server.service.stopService()

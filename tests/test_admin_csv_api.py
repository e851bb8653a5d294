"""``config.import`` / ``config.export`` over the real WebSocket of a running UCS, on SQLite
and PostgreSQL: a preview that changes nothing, an apply that changes the store and is
audited under the importer, a bad file refused whole with each bad row named, a file too
large refused with the limit, export that imports back to nothing, superusers only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from serverkit import start_demo
from test_web_api import CallError, connect

from ucs import demo
from ucs.directory.csv_api import MAX_CSV_BYTES


async def stored(server: Any, kind: str) -> list[dict[str, Any]]:
    """The entities of ``kind`` as the store holds them (not the directory in memory)."""
    docs = await server.get_store().kv_items(f"dir.{kind}")
    return sorted(docs.values(), key=lambda d: d["id"])


async def admin_client(server: Any, username: str = "admin", password: str = demo.ADMIN_PASSWORD) -> Any:
    client = await connect(server.get_web_service().ws_url)
    await client.call("login", [username, password])
    return client


@pytest_twisted.ensureDeferred
async def test_preview_apply_refuse_and_export_over_the_websocket(tmp_path: Path, store_url: str) -> None:
    server = await start_demo(tmp_path, store={"url": store_url})
    client = await admin_client(server)
    try:
        queues = ("asterisk_name,name,type,require_reason,record,number\n"
                  "support,Support desk,1,no,no,5000\n"   # changed: name
                  "sales,Sales,1,no,no,5001\n"            # as it is
                  "billing,Billing,1,yes,no,5002\n")      # added
        preview = await client.call("config.import", {"kind": "queues", "csv": queues, "file": "queues.csv"})
        assert preview["applied"] is False and preview["problems"] == []
        assert [(a["line"], a["key"]) for a in preview["added"]] == [(4, "billing")]
        assert preview["added"][0]["after"]["require_reason"] == "yes"
        assert preview["changed"] == [{"line": 2, "key": "support", "id": 1, "before": {"name": "Support"},
                                       "after": {"name": "Support desk"}}]
        assert preview["unchanged"] == [{"line": 3, "key": "sales"}]
        # A preview changes nothing, in memory or in the store.
        assert [q["name"] for q in await stored(server, "queues")] == ["Support", "Sales"]
        assert server.get_directory().queue_by_asterisk_name("billing") is None

        done = await client.call("config.import", {"kind": "queues", "csv": queues, "dry_run": False,
                                                   "file": "queues.csv"})
        assert done["applied"] is True and len(done["added"]) == 1 and len(done["changed"]) == 1
        assert [q["name"] for q in await stored(server, "queues")] == ["Support desk", "Sales", "Billing"]
        entries = (await client.call("audit.list", [{"source": "import"}]))["entries"]
        summary = entries[0]
        assert (summary["actor"], summary["action"], summary["kind"], summary["entity_id"]) == \
            ("admin", "import", "queues", "queues.csv")
        assert summary["after"] == {"file": "queues.csv", "added": 1, "changed": 1, "unchanged": 1}
        assert {(e["action"], e["actor"]) for e in entries[1:]} == {("add", "admin"), ("edit", "admin")}
        again = await client.call("config.import", {"kind": "queues", "csv": queues, "dry_run": False})
        assert again["applied"] is False and again["added"] == again["changed"] == [] and len(again["unchanged"]) == 3

        # A user file with members named, not numbered, and two bad rows: refused whole.
        users_before = await stored(server, "users")
        users = ("username,firstname,email,lines,queues,password\n"
                 "carol,Carol,carol@example.com,SIP/1001,billing:3,carol-password\n"
                 "dave,Dave,not-an-address,SIP/9999,,dave-password\n"
                 "erin,Erin,erin@example.com,,nosuchqueue:1,erin-password\n")
        bad = await client.call("config.import", {"kind": "users", "csv": users})
        assert {(p["line"], p["column"]) for p in bad["problems"]} == {(3, "email"), (3, "lines"), (4, "queues")}
        assert "SIP/9999" in next(p["message"] for p in bad["problems"] if p["column"] == "lines")
        with pytest.raises(CallError) as refused:
            await client.call("config.import", {"kind": "users", "csv": users, "dry_run": False})
        assert refused.value.error["error"] == "invalid_data"
        assert set(refused.value.error["fields"]) == {"line 3, email", "line 3, lines", "line 4, queues"}
        assert await stored(server, "users") == users_before
        assert server.get_directory().user_by_username("carol") is None

        good = users.splitlines()[:2]
        done = await client.call("config.import", {"kind": "users", "csv": "\n".join(good) + "\n", "dry_run": False})
        carol = server.get_directory().user_by_username("carol")
        assert done["added"][0]["id"] == carol.id
        billing = server.get_directory().queue_by_asterisk_name("billing")
        assert carol.queues[billing.id].priority == 3 and await server.get_directory().verify_password(carol, "carol-password")
        assert "password_hash" in next(u for u in await stored(server, "users") if u["username"] == "carol")

        # Export: every user, members by name; importing it back changes nothing.
        exported = await client.call("config.export", ["users"])
        assert exported["file"] == "users.csv"
        lines = exported["csv"].splitlines()
        assert lines[0].startswith("username,") and "password" not in lines[0]
        assert any(line.startswith("carol,Carol,") and "billing:3" in line for line in lines)
        back = await client.call("config.import", {"kind": "users", "csv": exported["csv"]})
        assert back["added"] == back["changed"] == back["problems"] == []
        assert len(back["unchanged"]) == len(server.get_directory().users)

        # Bad arguments, each named.
        with pytest.raises(CallError) as e:
            await client.call("config.import", {"kind": "robots", "csv": "name\nx\n"})
        assert "kinds" in e.value.error["fields"]["kind"] or "accepted" in e.value.error["fields"]["kind"]
        header = await client.call("config.import", {"kind": "teams", "csv": "colour\nred\n"})
        assert {(p["line"], p["column"]) for p in header["problems"]} == {(1, "colour"), (1, "name")}
    finally:
        client.close()
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_too_large_a_file_is_refused_with_the_limit_and_only_superusers_may(tmp_path: Path) -> None:
    server = await start_demo(tmp_path, web={"max_request_size": 4 << 20, "max_frame_size": 4 << 20})
    client = await admin_client(server)
    agent = await admin_client(server, *demo.user_of(1))
    supervisor = await admin_client(server, "supervisor", "supervisor-demo")
    try:
        big = "name\n" + "".join(f"team {i:07d}\n" for i in range(MAX_CSV_BYTES // 13 + 1))
        with pytest.raises(CallError) as e:
            await client.call("config.import", {"kind": "teams", "csv": big})
        assert f"at most {MAX_CSV_BYTES} bytes" in e.value.error["fields"]["csv"]
        assert server.get_directory().teams == {}
        # What spreadsheets and mistakes produce: a byte-order mark is read past; a field over
        # the csv module's limit, a NUL or a line break in a name are problems of their line.
        bom = await client.call("config.import", {"kind": "teams", "csv": "\ufeffname\nRed\n"})
        assert bom["problems"] == [] and [a["key"] for a in bom["added"]] == ["Red"]
        odd = await client.call("config.import", {"kind": "teams", "csv": 'name\nRed\n"Two\nlines"\nN\x00L\n'
                                                                        + "x" * 200_000 + "\n"})
        assert [(p["line"], p["column"]) for p in odd["problems"]] == [(4, "name"), (5, "name"), (6, "-")]
        assert "line breaks" in odd["problems"][0]["message"] and "field limit" in odd["problems"][2]["message"]
        for who in (agent, supervisor):
            for method, args in (("config.import", {"kind": "teams", "csv": "name\nRed\n", "dry_run": False}),
                                 ("config.export", ["users"])):
                with pytest.raises(CallError) as e:
                    await who.call(method, args)
                assert e.value.error["error"] == "permission_denied", method
        assert server.get_directory().teams == {}
    finally:
        for c in (client, agent, supervisor):
            c.close()
        await server.service.stopService()

"""``ucs-admin`` for real: on a store (SQLite and PostgreSQL) while no UCS runs, through a
running UCS's WebSocket API, and discovering a simulated Asterisk over AMI TCP."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest_twisted
from serverkit import start_demo
from twisted.internet import reactor
from twisted.internet.task import Clock

from ucs.admin.cli import run
from ucs.directory.directory import Directory
from ucs.sim.lab import matrix_lab
from ucs.sim.testing import SimHarness
from ucs.store import open_store
from ucs.store.locks import WriterLock

CENTER = {
    "groups.csv": "name\nBrno\nPraha\n",
    "teams.csv": "name\nBlue\n",
    "auxreasons.csv": "name\nLunch\nBreak\n",
    "queues.csv": "asterisk_name,name,type,require_reason,record,number\n"
                  "support,Support,1,no,no,5000\nsales,Sales,1,yes,no,5001\n",
    "lines.csv": "device,name,identifiers,auto_answer\n"
                 "SIP/1001,Desk 1,00:15:65:AA:BB:01;desk-1,sip-notify\nPJSIP/2001,Desk 2,desk-2,none\n",
    "callreasons.csv": "code,parent,name\nUPSELL,SALES,Upsell\nSALES,,Sales\n",
    "users.csv": "username,firstname,lastname,displayname,email,locale,group,superuser,supervisor,external_id,"
                 "number,lines,primary_extension,queues,password\n"
                 "alice,Alice,Agent,,alice@example.com,cs,Brno,no,no,e-1,+420777123456,SIP/1001,SIP/1001,"
                 "support:0:Blue;sales:2,alice-password\n"
                 "sue,Sue,Boss,Sue the Boss,,en,Praha,no,yes,,,,,support:0:Blue:yes,\n",
}


def write_config(tmp_path: Path, store_url: str, **extra: str) -> str:
    path = tmp_path / "ucs.toml"
    body = f"[store]\nurl = {json.dumps(store_url)}\n"
    for section, text in extra.items():
        body += f"[{section}]\n{text}\n"
    path.write_text(body)
    return str(path)


def write_center(directory: Path, **changes: str) -> list[str]:
    directory.mkdir(exist_ok=True)
    for name, text in {**CENTER, **changes}.items():
        (directory / name).write_text(text)
    return [str(directory / name) for name in {**CENTER, **changes}]


async def admin(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run(list(argv), reactor, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest_twisted.ensureDeferred
async def test_import_export_on_the_store_while_ucs_is_stopped(tmp_path: Path, store_url: str) -> None:
    cfg = write_config(tmp_path, store_url)
    files = write_center(tmp_path / "center")

    code, out, err = await admin("-c", cfg, "import", *files, "--dry-run")
    assert code == 0, err
    assert "would add user alice" in out and "would add callreason SALES/UPSELL" in out and "13 change(s) would be made" in out
    code, out, _ = await admin("-c", cfg, "list", "users")
    assert code == 0 and out == ""  # the dry run changed nothing

    code, out, err = await admin("-c", cfg, "--direct", "import", *files)
    assert code == 0, err
    assert "13 change(s) made (direct)" in out
    code, out, _ = await admin("-c", cfg, "import", *files)
    assert (code, out.strip()) == (0, "0 change(s); nothing to do")  # the same files again: nothing

    store = await open_store(store_url, reactor)
    try:
        d = Directory(store)
        await d.load()
        alice = d.user_by_username("alice")
        assert alice is not None and await d.verify_password(alice, "alice-password")
        assert [d.queues[q].asterisk_name for q in alice.queues] == ["support", "sales"]
        assert d.line_by_identifier("001565aabb01").device == "SIP/1001"  # type: ignore[union-attr]
        upsell = next(r for r in d.callreasons.values() if r.code == "UPSELL")
        assert d.callreasons[upsell.parent_id].code == "SALES"  # type: ignore[index]
        entries = await store.audit_list(kind="users")
        assert {e["source"] for e in entries} == {"ucs-admin"} and entries[0]["after"]["password"] == ""
        assert entries[1]["after"]["password"] == "set" and "password_hash" not in entries[1]["after"]
    finally:
        await store.close()

    # export, then import the export: nothing changes; the users' file reads as written
    code, out, _ = await admin("-c", cfg, "export", "--dir", str(tmp_path / "out"))
    assert code == 0
    exported = sorted(str(p) for p in (tmp_path / "out").glob("*.csv"))
    assert len(exported) == 7
    code, out, _ = await admin("-c", cfg, "import", *exported)
    assert "nothing to do" in out
    users = (tmp_path / "out" / "users.csv").read_text().splitlines()
    assert users[1].startswith("alice,Alice,Agent,Alice Agent,alice@example.com,cs,Brno,no,no,e-1,+420777123456,SIP/1001,"
                               "SIP/1001,support:0:Blue;sales:2")

    # a change, and bad rows: each named by line and column, nothing applied
    bad_users = CENTER["users.csv"].replace("Sue,Boss,Sue the Boss,,en,Praha", "Sue,Boss,Sue the Boss,x@,en,Nowhere")
    bad_users += "carol,,,,,,,maybe,,,,SIP/9999,,,\n"
    files = write_center(tmp_path / "bad", **{"users.csv": bad_users,
                                             "queues.csv": CENTER["queues.csv"].replace("Sales,1,yes", "Sales,1,no")})
    code, out, _ = await admin("-c", cfg, "import", *files)
    assert code == 1
    problems = [line for line in out.splitlines() if "users.csv" in line]
    assert any(":3: email:" in p for p in problems) and any(":3: group: there is no group 'Nowhere'" in p for p in problems)
    assert any(":4: superuser:" in p for p in problems) and any(":4: lines: there is no line 'SIP/9999'" in p
                                                                for p in problems)
    assert "nothing was changed" in out
    code, out, _ = await admin("-c", cfg, "export", "queues")
    assert "sales,Sales,1,yes" in out  # the good queue row was not applied either

    code, out, _ = await admin("-c", cfg, "edit", "queues", "2", "require_reason=false")
    assert code == 0 and json.loads(out)["require_reason"] is False
    code, out, _ = await admin("-c", cfg, "audit", "--kind", "queues", "--limit", "1")
    entry = json.loads(out.splitlines()[0])
    assert entry["action"] == "edit" and entry["before"]["require_reason"] is True
    assert entry["after"]["require_reason"] is False and out.splitlines()[1] == f"# more: --before {entry['id']}"


@pytest_twisted.ensureDeferred
async def test_the_store_is_refused_while_ucs_holds_it_and_ucs_while_admin_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ucs.db'}"
    cfg = write_config(tmp_path, url, web='port = 1\nlisten = "127.0.0.1"')
    store = await open_store(url, reactor)
    try:
        node = WriterLock(store, reactor, "ucs:elsewhere:1", lambda name: name == "admin")
        await node.take()
        code, _, err = await admin("-c", cfg, "--direct", "list", "users")
        assert code == 1 and "ucs:elsewhere:1" in err and "UCS runs on this store" in err
        code, _, err = await admin("-c", cfg, "list", "users")  # auto: the API, which does not answer here
        assert code == 1 and "cannot reach UCS at ws://127.0.0.1:1/ws" in err
        await node.release()
        held = WriterLock(store, reactor, "admin", lambda name: name.startswith("ucs:"))
        await held.take()
        failed = []
        server = None
        try:
            from serverkit import demo_config
            from ucs.server import UCSServer

            server = UCSServer(demo_config(tmp_path), reactor, on_fatal=failed.append)
            server.service.startService()
            await server.service.whenStarted()
            assert failed and "ucs-admin" in failed[0] and "writes the directory in this store" in failed[0]
        finally:
            await held.release()
            if server is not None:
                await server.service.stopService()
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_through_a_running_ucs_api(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    try:
        url = server.get_web_service().ws_url
        cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'ucs.db'}")
        (tmp_path / "pw").write_text("admin-demo\n")
        files = write_center(tmp_path / "center", **{"queues.csv": CENTER["queues.csv"].replace(
            "support,Support,1,no,no,5000\n", "support,Support,1,no,no,5000\nsupport2,Second,1,no,no,\n")})
        files.remove(str(tmp_path / "center" / "callreasons.csv"))
        base = ("-c", cfg, "--url", url, "--password-file", str(tmp_path / "pw"))
        code, out, err = await admin(*base, "import", *files, "--dry-run")
        assert code == 0, err
        assert "would add queue support2" in out and "would add user alice" in out
        assert server.get_directory().user_by_username("alice") is None
        code, out, err = await admin(*base, "import", *files)  # auto: UCS holds the store, so the API
        assert code == 0, err
        assert "made (api)" in out
        alice = server.get_directory().user_by_username("alice")
        assert alice is not None and await server.get_directory().verify_password(alice, "alice-password")
        code, out, _ = await admin(*base, "import", *files)
        assert "nothing to do" in out

        code, _, err = await admin("-c", cfg, "--direct", "list", "users")
        assert code == 1 and "UCS runs on this store" in err  # never both writing

        code, out, _ = await admin(*base, "passwd", "alice", "--new-password-file", str(tmp_path / "pw"))
        assert code == 0 and await server.get_directory().verify_password(alice, "admin-demo")
        code, out, err = await admin(*base, "audit", "--kind", "users", "--actor", "admin", "--limit", "5")
        entries = [json.loads(line) for line in out.splitlines() if not line.startswith("#")]
        assert entries[0]["after"]["username"] == "alice" and entries[0]["source"] == "api"
        assert entries[0]["before"]["password"] == "set"
        code, out, err = await admin(*base, "add", "teams", "name=Red")
        assert code == 0 and json.loads(out)["name"] == "Red"
        code, out, err = await admin(*base, "add", "teams", "name=Red")
        assert code == 1 and "name: 'Red' is taken by team" in err
        code, _, err = await admin("-c", cfg, "--url", url, "--user", "agent1", "--password-file", str(tmp_path / "pw"),
                                   "list", "users")
        assert code == 1
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_discover_queues_and_lines_from_asterisk(tmp_path: Path) -> None:
    h = await SimHarness.start(matrix_lab(Clock()))
    try:
        cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'ucs.db'}",
                           ami=f'host = "127.0.0.1"\nport = {h.portnum}\nusername = "ucs"\nsecret = "ucslab"')
        code, out, err = await admin("-c", cfg, "discover", "--dir", str(tmp_path / "found"))
        assert code == 0, err
        queues = (tmp_path / "found" / "queues.csv").read_text().splitlines()
        lines = (tmp_path / "found" / "lines.csv").read_text().splitlines()
        assert sorted(queues[1:]) == ["sales,Sales,1", "support,Support,1"] and queues[0] == "asterisk_name,name,type"
        assert lines[0] == "device,identifiers"
        assert "SIP/1001,127.0.0.11" in lines and "SIP/carrier" not in "".join(lines)  # a trunk
        assert "PJSIP/2001,127.0.0.31" in lines and any(line.startswith("PJSIP/2004,") for line in lines)
        code, out, err = await admin("-c", cfg, "discover", "--dry-run")
        assert code == 0 and "would add line SIP/1001" in out and "would add queue support" in out
        code, out, err = await admin("-c", cfg, "discover", "--apply")
        assert code == 0, err
        code, out, _ = await admin("-c", cfg, "export", "lines")
        assert "SIP/1001,,127.0.0.11,none" in out
        code, out, _ = await admin("-c", cfg, "discover", "--apply")
        assert "nothing to do" in out
    finally:
        await h.stop()

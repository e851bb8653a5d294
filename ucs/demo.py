"""The demo's fixed directory: users, phones, queues and reasons anyone can try.

``twistd -n ucs --demo`` puts these in the directory on start (only what is
missing, so a demo store can be reused).  README lists them; outside tests
rely on them, so change them only together with README.
"""

from __future__ import annotations

from typing import Any

from ucs.directory.directory import Directory
from ucs.sim.lab import DEMO_NAMES

ADMIN_PASSWORD = "admin-demo"
SSO_SECRET = "demo-sso-secret"
QUEUES = (("Support", "support", "5000"), ("Sales", "sales", "5001"))
AUX_REASONS = ("Lunch", "Break", "Meeting")
CALL_REASONS = {"SALES": ("NEW", "UPGRADE"), "SUPPORT": ("BUG", "QUESTION")}


def user_of(i: int) -> tuple[str, str]:
    """(user name, password) of demo agent ``i`` (1-based)."""
    return f"agent{i}", f"demo-pass-{i}"


def line_of(i: int) -> tuple[str, str, str]:
    """(device, pairing identifier, IP address) of demo phone ``i`` (1-based)."""
    n = 1000 + i
    return f"SIP/{n}", f"phone-{n}", f"127.0.0.{10 + i}"


async def seed(directory: Directory, phones: int) -> None:
    async def ensure(kind: str, match: dict[str, Any], data: dict[str, Any]) -> Any:
        for entity in directory.table(kind).values():
            if all(getattr(entity, k) == v for k, v in match.items()):
                return entity
        return await directory.add(kind, {**match, **data})

    queues = [await ensure("queues", {"asterisk_name": name}, {"name": label, "type": 1, "number": number})
              for label, name, number in QUEUES]
    for reason in AUX_REASONS:
        await ensure("auxreasons", {"name": reason}, {})
    for code, subs in CALL_REASONS.items():
        top = await ensure("callreasons", {"code": code, "parent_id": None}, {"name": code.title()})
        for sub in subs:
            await ensure("callreasons", {"code": sub, "parent_id": top.id}, {"name": sub.title()})
    for i in range(1, phones + 1):
        device, identifier, ip = line_of(i)
        line = await ensure("lines", {"device": device}, {"name": f"Desk phone {1000 + i}",
                                                          "identifiers": [identifier, ip],
                                                          "auto_answer": "sip-notify"})
        username, password = user_of(i)
        name = DEMO_NAMES[i - 1] if i <= len(DEMO_NAMES) else f"Agent {1000 + i}"
        first, _, last = name.partition(" ")
        await ensure("users", {"username": username}, {
            "password": password, "firstname": first, "lastname": last, "lines": [line.id],
            "queues": {str(q.id): {"priorities": 0} for q in queues}, "locale": "en",
        })
    if directory.user_by_username("supervisor") is None:
        await directory.add("users", {"username": "supervisor", "password": "supervisor-demo",
                                      "displayname": "Sam Supervisor", "supervisor": True,
                                      "queues": {str(q.id): {"supervisor": True} for q in queues}})


#: The demo's softphone agent (``[demo] softphone``): its line is the browser.
SOFTPHONE_USER = ("webagent", "demo-pass-web")


async def seed_softphone(directory: Directory, ws_url: str, device: str, sip_username: str,
                         sip_password: str) -> None:
    """The WebRTC line and its agent, once the simulated PBX's SIP WebSocket listens:
    ``ws_url`` is only known then (and may differ from the last run's, on a reused store)."""
    fields = {"name": "This browser (softphone)", "kind": "webrtc", "ws_url": ws_url,
              "sip_username": sip_username, "sip_password": sip_password}
    line = next((ln for ln in directory.lines.values() if ln.device == device), None)
    if line is None:
        line = await directory.add("lines", {"device": device, "identifiers": ["softphone"], **fields})
    elif (line.kind, line.ws_url, line.sip_username, line.sip_password) != (
            "webrtc", ws_url, sip_username, sip_password):
        line = await directory.edit("lines", line.id, fields)
    username, password = SOFTPHONE_USER
    if directory.user_by_username(username) is None:
        queues = [q for q in directory.queues.values() if q.asterisk_name in {name for _, name, _ in QUEUES}]
        await directory.add("users", {
            "username": username, "password": password, "firstname": "Wendy", "lastname": "Web",
            "lines": [line.id], "queues": {str(q.id): {"priorities": 0} for q in queues}, "locale": "en",
        })

"""``ucs-admin discover``: queues and phones read from Asterisk over AMI, as import files.

Asks, logged in as ``[ami]``'s user: ``QueueSummary`` (each queue: a queue
named as in queues.conf), ``SIPpeers`` (chan_sip peers) and
``PJSIPShowEndpoints`` (PJSIP endpoints): each peer or endpoint a line, its
registered address (chan_sip's ``IPaddress``, the host of PJSIP's
``Contacts``) one of its pairing identifiers.  Trunks (``[calls] trunks``, or
a non-numeric name when that is empty) are left out.  A channel driver that
Asterisk has not loaded (its action unknown) is skipped.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from ucs.ami.auth import login
from ucs.ami.errors import AMIActionError
from ucs.ami.protocol import AMIProtocol
from ucs.config import Config

#: The columns discover fills: an import of its files leaves the others as they are.
DISCOVERED = {"queues": ("asterisk_name", "name", "type"), "lines": ("device", "identifiers")}

_CONTACT_HOST = re.compile(r"sips?:(?:[^@;>,]*@)?(\[[0-9A-Fa-f:.]+\]|[^:;>,/]+)")


def _is_trunk(config: Config, device: str) -> bool:
    from fnmatch import fnmatchcase

    c = config.calls
    if any(fnmatchcase(device, p) for p in c.lines):
        return False
    if c.trunks:
        return any(fnmatchcase(device, p) for p in c.trunks)
    return not device.split("/", 1)[1].isdigit()


def _address(value: str) -> str | None:
    value = (value or "").strip()
    if not value or value in ("-none-", "(null)", "(Unspecified)"):
        return None
    return value


async def _list(proto: AMIProtocol, action: str) -> list[dict[str, Any]]:
    try:
        result = await proto.sendAction(action)
    except AMIActionError as e:
        if "Invalid/unknown command" in str(e):
            return []  # that channel driver (or app_queue) is not loaded
        raise
    return [dict(m) for m in result]


async def discover(config: Config, reactor: Any, host: str | None = None, port: int | None = None) -> dict[str, list[dict[str, str]]]:
    """Rows for ``queues`` and ``lines`` (the columns of :data:`DISCOVERED`), from Asterisk."""
    from ucs.pbx.connection import ami_credentials

    username, secret = ami_credentials(config)
    proto = AMIProtocol(clock=reactor, timeout=config.ami.action_timeout)
    endpoint = TCP4ClientEndpoint(reactor, host or config.ami.host, port or config.ami.port, timeout=10)
    await connectProtocol(endpoint, proto)
    try:
        await proto.whenReady()
        await login(proto, username, secret, events=False, authType=config.ami.auth,  # type: ignore[arg-type]
                    timeout=config.ami.action_timeout)
        summary = await _list(proto, "QueueSummary")
        peers = await _list(proto, "SIPpeers")
        endpoints = await _list(proto, "PJSIPShowEndpoints")
    finally:
        if proto.transport is not None:
            proto.transport.loseConnection()
    queues: list[dict[str, str]] = []
    for q in summary:
        name = q.get("Queue", "")
        if name and name != "default" and name not in {r["asterisk_name"] for r in queues}:
            queues.append({"asterisk_name": name, "name": name.replace("_", " ").replace("-", " ").title(),
                           "type": "1"})
    lines: list[dict[str, str]] = []
    for p in peers:
        device = f"SIP/{p.get('ObjectName', '')}"
        if p.get("ObjectName") and not _is_trunk(config, device):
            ip = _address(p.get("IPaddress", ""))
            lines.append({"device": device, "identifiers": ip or ""})
    for e in endpoints:
        device = f"PJSIP/{e.get('ObjectName', '')}"
        if e.get("ObjectName") and not _is_trunk(config, device):
            hosts = []
            for contact in (e.get("Contacts") or "").split(","):
                m = _CONTACT_HOST.search(contact)
                host = m.group(1).strip("[]") if m else None
                if host and host not in hosts:
                    hosts.append(host)
            lines.append({"device": device, "identifiers": ";".join(hosts)})
    return {"queues": [{c: r[c] for c in DISCOVERED["queues"]} for r in queues],
            "lines": [{c: r[c] for c in DISCOVERED["lines"]} for r in lines]}

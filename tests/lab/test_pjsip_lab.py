"""PJSIP first-class against the real Asterisk (issue 18): the bar's Answer on a PJSIP
phone that answers on request (``auto_answer = "sip-notify"``) sends ``PJSIPNotify`` with
``Variable: Event=talk``, and Asterisk carries a NOTIFY ``Event: talk`` to the phone
(seen in Asterisk's own SIP log); and a PJSIP phone that registers is paired by the
address it registered from.

sipp cannot tie a NOTIFY to the call it rings (an out-of-dialog request, answered by
``-aa``), so the phone answers after its usual ring; what is proved here is that UCS's
request is one Asterisk accepts and turns into the NOTIFY such phones obey."""

from __future__ import annotations

import re

import pytest_twisted
from labkit import Lab, LabUCS, Phones, open_bar, phones_of


def sip_log(lab: Lab) -> str:
    try:
        return (lab.run / "log" / "messages").read_text(errors="replace")
    except OSError:
        return ""


@pytest_twisted.ensureDeferred
async def test_answer_from_the_bar_sends_a_pjsip_notify_event_talk(lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    c = phones_of(lab, "pj")["c"]
    d = ucs.server.get_directory()
    line = d.line_by_device(c.device)
    assert line is not None
    await d.edit("lines", line.id, {"auto_answer": "sip-notify"})
    bar = await ucs.agent(c)
    await lab.acli("pjsip set logger on")
    try:
        phones.phone(c)  # rings 1.5 s, then answers
        phones.customer(c.number, talk_ms=3000)
        await bar.event("call.ringing")
        await bar.call("call.answer")  # resolves once the phone answered
        assert (await bar.event("call.connect"))["caller_number"] == "420777123456"
        await ucs.until(lambda: re.search(rf"NOTIFY sip:{c.number}@{re.escape(c.ip)}:5060 SIP/2.0.*?Event: talk",
                                          sip_log(lab), re.S) is not None,
                        f"Asterisk sent {c.device} a NOTIFY with Event: talk")
        end = await bar.event("call.hangup", timeout=15)
        assert end["cause"] == 3
    finally:
        await lab.acli("pjsip set logger off")
    assert not [w for w in ucs.warnings if "PJSIPNotify" in w], ucs.warnings


@pytest_twisted.ensureDeferred
async def test_a_registering_pjsip_phone_is_paired_by_its_address(lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """PJSIP/2004 registers from 127.0.0.34 (sipp); the agent's bar at that address pairs it
    with the address alone (the line's identifiers do not list it)."""
    d = ucs.server.get_directory()
    line = await d.add("lines", {"device": "PJSIP/2004", "name": "Heidi's desk", "identifiers": ["heidi-desk"]})
    await d.add("users", {"username": "heidi", "password": "lab-pass", "firstname": "Heidi", "lastname": "Agent",
                          "lines": [line.id], "locale": "en"})
    bar = await open_bar(ucs.server.get_web_service().ws_url, "heidi")
    ucs.bars.append(bar)
    await bar.call("login", "heidi", "lab-pass")
    # It stays registered for 3 s, then unregisters (the scenario).
    phones.start("uac_register", "127.0.0.34", lab.pjsip_port, "-key", "user", "2004", "-au", "2004", "-ap", "lab2004",
                 name="2004-registers", local_port=5064)
    pbx = ucs.server.get_pbx()
    await ucs.until(lambda: pbx.devices.get("PJSIP/2004") is not None and pbx.devices["PJSIP/2004"].address == "127.0.0.34",
                    "UCS knows PJSIP/2004 registered from 127.0.0.34")
    paired = await bar.call("identifier", "127.0.0.34")
    assert paired["device"] == "PJSIP/2004"

"""Issue 17 on the real Asterisk: a supervisor with their own phone (phone c), in no
queue, listens to and then barges into agent a's queue call (Originate to ChanSpy);
Asterisk says ChanSpyStart with the two channels, the supervisor's channel runs
ChanSpy, answered, in no bridge; when the customer hangs up, ChanSpyStop and (option
E) the supervisor's phone is hung up too.  What the simulator does (tests/test_supervisor.py)
is what this checks on Asterisk 20."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from labkit import Lab, LabUCS, Phones, open_bar, phones_of

SIP = pytest.param("sip", marks=pytest.mark.chan_sip, id="sip")


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_supervisor_listens_then_the_call_ends(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    p = phones_of(lab, driver)
    a, c = p["a"], p["c"]
    server = ucs.server
    directory = server.get_directory()
    await directory.add("users", {"username": "boss", "password": "lab-pass", "firstname": "Sue", "lastname": "Boss",
                                  "supervisor": True, "queues": {str(q.id): {"supervisor": True}
                                                                 for q in directory.queues.values()}})
    seen: list[dict[str, Any]] = []
    link = server.get_pbx_link()
    original = link.eventReceived

    def record(message: Any) -> None:
        if message.get("Event") in ("ChanSpyStart", "ChanSpyStop") or any(
                str(message.get(k, "")).startswith(f"{c.device}-") for k in ("Channel", "SpyerChannel")) or (
                message.get("Event") == "Hangup" and message.get("Channel", "").startswith(f"{a.device}-")):
            seen.append(dict(message))
        original(message)

    link.eventReceived = record  # type: ignore[method-assign]
    bar = await ucs.agent(a)
    boss = await open_bar(server.get_web_service().ws_url, "boss")
    ucs.bars.append(boss)
    await boss.call("login", "boss", "lab-pass")
    await boss.call("identifier", f"phone-{c.number}")
    await boss.call("supervisor.start")
    assert all(c.device not in q.members for q in ucs.queues())  # never put in a queue

    phones.phone(a)
    customer = phones.customer("5000", talk_ms=8000)
    await bar.event("call.connect")
    phones.phone(c)  # the supervisor's phone answers the Originate
    uid = directory.user_by_username(a.username).id  # type: ignore[union-attr]
    result = await boss.call("supervisor.monitor", uid, "listen")
    assert result["options"] == "qE" and result["channel"].startswith(f"{a.device}-")
    await ucs.until(lambda: any(m.get("Event") == "ChanSpyStart" for m in seen), "ChanSpyStart from Asterisk")
    start = next(m for m in seen if m.get("Event") == "ChanSpyStart")
    assert start["SpyerChannel"].startswith(f"{c.device}-") and start["SpyeeChannel"] == result["channel"]
    assert start["SpyerChannelState"] == "6"
    shown = await lab.acli("core show channels concise")
    spy_lines = [line for line in shown.splitlines() if line.startswith(f"{c.device}-")]
    assert spy_lines and "!ChanSpy!" in spy_lines[0] and "!Up!" in spy_lines[0], shown
    team = await boss.call("supervisor.team")
    row = next(r for r in team if r["id"] == uid)
    assert row["call"]["queue"] == "support" and row["call"]["state"] == 3
    assert [(m["device"], m["by"], m["mode"]) for m in row["monitored"]] == [(c.device, "boss", "listen")]

    await customer.done(timeout=30)
    await ucs.until(lambda: any(m.get("Event") == "ChanSpyStop" for m in seen), "ChanSpyStop from Asterisk")

    async def spy_gone() -> bool:
        return not any(ch.startswith(f"{c.device}-") for ch in await lab.channels())

    for _ in range(100):
        if await spy_gone():
            break
        from twisted.internet import reactor, task
        await task.deferLater(reactor, 0.1, lambda: None)
    assert await spy_gone(), "the supervisor's phone is still up after the call ended (option E)"
    link.eventReceived = original  # type: ignore[method-assign]
    # What Asterisk said, in order (the simulator says the same: tests/test_supervisor.py).
    order = [(m["Event"], (m.get("Channel") or m.get("SpyerChannel", ""))[:len(a.device)]) for m in seen
             if m["Event"] in ("ChanSpyStart", "ChanSpyStop", "Hangup")]
    assert order == [("ChanSpyStart", c.device), ("ChanSpyStop", c.device), ("Hangup", a.device), ("Hangup", c.device)]
    assert next(m for m in seen if m["Event"] == "Hangup" and m["Channel"].startswith(c.device))["Cause"] == "16"
    assert not any(m["Event"] == "SoftHangupRequest" and m["Channel"].startswith(c.device) for m in seen)

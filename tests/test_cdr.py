"""Finished calls land in the store as CDRs, on both back ends, and survive a store outage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from ucs.ami.message import AMIParser
from ucs.calls.cdr import CDRWriter
from ucs.calls.tracker import CallTracker
from ucs.pbx.pbx import PBX
from ucs.pbx.wireclock import WireClock
from ucs.store import open_store


def replay_into(writer: CDRWriter, capture: Path) -> None:
    clock = WireClock()
    pbx = PBX(clock)
    pbx.observers.append(CallTracker(pbx, clock, observers=[writer]))
    for msg in AMIParser().feed(capture.read_bytes()):
        clock.observe(msg)
        pbx.feed(msg)


@pytest_twisted.ensureDeferred
async def test_finished_calls_are_stored(store_url: str, captures_dir: Path) -> None:
    store = await open_store(store_url, reactor)
    try:
        writer = CDRWriter(store, reactor)
        replay_into(writer, captures_dir / "atxfer_complete.ami")
        await writer.flushed()
        (cdr,) = await store.list_cdrs()
        assert cdr["direction"] == "INCOMING" and cdr["queue"] == "support"
        assert cdr["answered_by"] == "SIP/1001" and cdr["cause"] == 3
        assert cdr["connected_number"] == "1003"
        assert [s["Device"] for s in cdr["journey"]] == ["SIP/carrier", "Queue:support", "SIP/1001", "SIP/1003"]
        assert cdr["data"]["transfers"]
        assert cdr["disconnected"] >= cdr["connected"] >= cdr["created"]
    finally:
        await store.close()


@pytest.mark.parametrize("capture, agent, spy", [("sip_chanspy_listen", "SIP/1001", "SIP/1002"),
                                                  ("pj_chanspy_listen", "PJSIP/2001", "PJSIP/2002")])
@pytest_twisted.ensureDeferred
async def test_a_supervisors_listening_is_kept_on_the_call_it_monitored(
        store_url: str, captures_dir: Path, capture: str, agent: str, spy: str) -> None:
    """Real Asterisk 20: a supervisor's phone rung into ChanSpy on the agent's channel (an
    Originate UCS did not make in this replay: recognised from Asterisk's events).  One
    CDR, the customer's, saying who listened and when; none for the supervisor's leg."""
    store = await open_store(store_url, reactor)
    try:
        writer = CDRWriter(store, reactor)
        replay_into(writer, captures_dir / f"{capture}.ami")
        await writer.flushed()
        (cdr,) = await store.list_cdrs()
        assert (cdr["direction"], cdr["queue"], cdr["answered_by"], cdr["cause"]) == ("INCOMING", "support", agent, 3)
        (watched,) = cdr["data"]["monitors"]
        assert (watched["by"], watched["device"], watched["spied"], watched["mode"]) == (None, spy, agent, "listen")
        assert watched["channel"].startswith(spy + "-")
        # ChanSpyStart a second after the answer; ChanSpyStop just before the customer's hang-up.
        assert cdr["connected"] < watched["started"] < watched["stopped"] <= cdr["disconnected"]
        assert await store.list_cdrs(devices=[spy]) == []  # not in the supervisor's recent calls
    finally:
        await store.close()


class SwitchableStore:
    """The real store, behind a switch that makes it fail as a stopped database would:
    later, not while the writer is still asking (on ``clock``, advanced by the test)."""

    def __init__(self, store: Any, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.down = True

    def save_cdr(self, cdr: dict[str, Any]) -> Deferred[None]:
        if self.down:
            d: Deferred[None] = Deferred()
            self.clock.callLater(0, d.errback, ConnectionRefusedError("store is down"))
            return d
        return self.store.save_cdr(cdr)


@pytest_twisted.ensureDeferred
async def test_cdrs_wait_for_the_store_and_none_is_lost(tmp_path: Path, captures_dir: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'ucs.db'}", reactor)
    try:
        clock = Clock()
        flaky = SwitchableStore(store, clock)
        writer = CDRWriter(flaky, clock, retry=5.0)
        for name in ("queue_answered_caller_hangup", "caller_abandons", "click_to_dial"):
            replay_into(writer, captures_dir / f"{name}.ami")
        clock.advance(0)  # the store answers: refused
        assert len(writer.pending) == 3 and writer.failures == 1
        clock.advance(5)  # the retry, refused at once (its answer is due at the same time)
        assert len(writer.pending) == 3 and writer.failures == 2  # still down: kept, retried later
        flaky.down = False
        clock.advance(5)
        await writer.flushed()
        assert writer.pending == type(writer.pending)()
        cdrs = await store.list_cdrs()
        assert sorted(c["direction"] for c in cdrs) == ["INCOMING", "INCOMING", "OUTGOING"]
    finally:
        await store.close()

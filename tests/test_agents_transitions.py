"""The status table, status and reason checks, and what a status is in a queue (no PBX needed)."""

from __future__ import annotations

import pytest

from ucs.agents.transitions import (
    TRANSITIONS,
    Target,
    check_reason,
    check_transition,
    parse_status,
    target,
)
from ucs.constants import AgentStatus
from ucs.error import InvalidDataInput, InvalidState
from ucs.pbx.model import Member

OFFLINE, READY, AUX, ACW = AgentStatus.OFFLINE, AgentStatus.READY, AgentStatus.AUX, AgentStatus.ACW


def test_statuses_by_name_or_number() -> None:
    assert parse_status("aux") is AUX and parse_status(3) is ACW and parse_status(READY) is READY
    for bad in ("BUSY", 7, True, None, 1.0):
        with pytest.raises(InvalidDataInput, match="give one of OFFLINE, READY, AUX, ACW"):
            parse_status(bad)


def test_the_table() -> None:
    assert (OFFLINE, ACW) not in TRANSITIONS
    assert all((s, t) in TRANSITIONS for s in AgentStatus for t in AgentStatus if (s, t) != (OFFLINE, ACW))
    with pytest.raises(InvalidState, match="from OFFLINE: OFFLINE, READY, AUX"):
        check_transition(OFFLINE, ACW)


def test_reasons() -> None:
    assert check_reason(READY, "ignored", ["Lunch"]) == "" and check_reason(ACW, None, ()) == ""
    assert check_reason(AUX, " Doctor ", ()) == "Doctor"  # no AUX reasons configured: any short text
    assert check_reason(AUX, "LUNCH", ["Lunch"]) == "Lunch"
    for bad, why in (("", "AUX needs a reason"), ("x" * 65, "at most 64"), ("a\nb", "one line"),
                     ("suspended", "reserved"), (5, "as a string")):
        with pytest.raises(InvalidDataInput, match=why):
            check_reason(AUX, bad, ())
    with pytest.raises(InvalidDataInput, match="'Nap' is not an AUX reason; give one of: Lunch, Coffee"):
        check_reason(AUX, "Nap", ["Lunch", "Coffee"])


def test_what_a_status_is_in_a_queue() -> None:
    assert target(OFFLINE, "", True) == Target(False)
    assert target(READY, "", False) == Target(True) and target(ACW, "", False) == Target(True, True, "ACW")
    assert target(AUX, "Lunch", False) == Target(True, True, "Lunch")
    assert target(READY, "", True) == target(AUX, "Lunch", True) == Target(True, True, "suspended")
    m = Member("support", "SIP/1001", paused=True, paused_reason="Lunch")
    assert Target(True, True, "Lunch").met_by(m) and not Target(True, True, "Coffee").met_by(m)
    assert not Target(True).met_by(m) and not Target(False).met_by(m) and Target(False).met_by(None)
    assert Target(True).met_by(Member("support", "SIP/1001"))


def test_the_machine_has_a_row_for_every_automatic_input() -> None:
    from ucs.agents import transitions as t

    automatic = (t.TALKING, t.HUNG_UP, t.ACW_OVER, t.SEEN_PAUSED, t.SEEN_PAUSED_ACW, t.SEEN_UNPAUSED,
                 t.SEEN_SUSPENDED, t.SUSPEND, t.RESUME, t.RESYNC, t.LOGOUT)
    assert all((s, i) in t.MACHINE for s in t.STATES for i in automatic)  # they follow Asterisk: never refused
    assert t.step(READY, t.TALKING).does == t.PAUSE and t.step(AUX, t.TALKING).does == t.NOTHING
    assert t.step(OFFLINE, t.HUNG_UP).next == t.SAME and t.step(AUX, t.HUNG_UP).next == ACW
    assert t.step(ACW, t.ACW_OVER).next == t.BACK and t.step(READY, t.ACW_OVER).next == t.SAME
    assert t.step(READY, t.seen(True, "Lunch")).next == AUX and t.step(AUX, t.seen(False, "")).next == READY
    assert t.step(READY, t.seen(True, "ACW")).next == ACW and t.step(READY, t.seen(True, "suspended")).does == t.NOTHING
    with pytest.raises(InvalidState, match="cannot go from OFFLINE to ACW"):
        t.step(OFFLINE, t.ASK[ACW])

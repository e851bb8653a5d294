"""Call pickup (cause 7, issue 17) on the matrix's captures of the lab's real Asterisk 20
(``tests/lab/record.py pickup sip|pj``: the customer calls a's extension directly, a
rings and does not answer, c dials ``**`` + a's extension — ``PickupChan`` — and takes
the call).

Asterisk's ``ast_do_pickup`` (main/pickup.c) answers the picker's channel, moves it
into the ringing channel's place (a ``Pickup`` event; its Linkedid follows only at the
bridge) and hangs the ringing one up with cause 26 (answered elsewhere); Dial() then
reports the *picker's* channel answered.  UCS must see one call, answered by the phone
that picked it up, and the phone that rang end with cause 7.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ucs.replay import replay

CAPTURES = Path(__file__).resolve().parent / "data" / "ami-captures"
PHONES = {"sip": ("SIP/1001", "SIP/1003"), "pj": ("PJSIP/2001", "PJSIP/2003")}


@pytest.mark.parametrize("driver", ["sip", "pj"])
def test_a_picked_up_call_is_one_call_and_the_phone_that_rang_gets_cause_7(driver: str) -> None:
    rang, picker = PHONES[driver]
    with (CAPTURES / f"{driver}_pickup.ami").open("rb") as f:
        calls = list(replay(f))
    # The picker's own dialling (**2001) is folded into the customer's call, not a call of its own.
    (call,) = calls
    assert call["direction"] == "INCOMING" and call["caller_number"] == "420777123456"
    assert call["answered_by"] == picker and call["connected_channel"].startswith(picker + "-")
    assert call["called_number"] == rang.partition("/")[2]
    legs = {leg["device"]: leg for leg in call["legs"]}
    assert legs[rang]["answered"] is None and legs[rang]["cause"] == 7  # picked up elsewhere
    assert legs[picker]["answered"] is not None
    assert call["cause"] == 3  # then the customer hung up


def test_a_number_the_carrier_does_not_know_is_cause_2() -> None:
    """The carrier answers 404 Not Found (``sip_click_to_dial_not_found``): chan_sip's
    Dial() says NOANSWER, but the channels end with Q.850 1 (unallocated number)."""
    with (CAPTURES / "sip_click_to_dial_not_found.ami").open("rb") as f:
        (call,) = list(replay(f))
    assert call["direction"] == "OUTGOING" and call["called_number"] == "0420777987654"
    assert call["connected"] is None and call["cause"] == 2

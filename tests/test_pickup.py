"""Call pickup (cause 7, issue 17) on a capture of the lab's real Asterisk 20
(``tests/lab/record.py pickup pj``: the customer calls 2001 directly, 2001 rings and
does not answer, 2003 dials ``**2001`` — ``PickupChan`` — and takes the call).

Asterisk's ``ast_do_pickup`` (main/pickup.c) answers the picker's channel, moves it
into the ringing channel's place (a ``Pickup`` event; its Linkedid follows only at the
bridge) and hangs the ringing one up with cause 26 (answered elsewhere); Dial() then
reports the *picker's* channel answered.  UCS must see one call, answered by the phone
that picked it up, and the phone that rang end with cause 7.
"""

from __future__ import annotations

from pathlib import Path

from ucs.replay import replay

CAPTURE = Path(__file__).resolve().parent / "data" / "pickup" / "pj_pickup.ami"


def test_a_picked_up_call_is_one_call_and_the_phone_that_rang_gets_cause_7() -> None:
    with CAPTURE.open("rb") as f:
        calls = list(replay(f))
    # The picker's own dialling (**2001) is folded into the customer's call, not a call of its own.
    (call,) = calls
    assert call["direction"] == "INCOMING" and call["caller_number"] == "420777123456"
    assert call["answered_by"] == "PJSIP/2003" and call["connected_channel"].startswith("PJSIP/2003-")
    legs = {leg["device"]: leg for leg in call["legs"]}
    assert legs["PJSIP/2001"]["answered"] is None and legs["PJSIP/2001"]["cause"] == 7  # picked up elsewhere
    assert call["cause"] == 3  # then the customer hung up

"""PJSIP first-class (issue 18): a PJSIP phone that registers (a DHCP desk phone, a
softphone on the agent's PC) is paired by the address it registered from, also when it
registered before UCS connected: the resync's ``PJSIPShowEndpoints`` carries each
endpoint's contact. The whole UCS on the simulated Asterisk over a real AMI socket, the
bar over a real WebSocket (its address is 127.0.0.1, as the phone's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from serverkit import demo_config, until
from test_web_api import CallError, connect, ws_url
from twisted.internet import reactor

from ucs import demo
from ucs.server import UCSServer


@pytest_twisted.ensureDeferred
async def test_a_registered_pjsip_phone_is_paired_by_the_address_it_registered_from(tmp_path: Path) -> None:
    server = UCSServer(demo_config(tmp_path), reactor)
    root = server.service
    sim = server.get_demo_pbx().sim
    sim.add_line("PJSIP/2004", "Heidi Agent", dynamic=True, secret="lab2004")
    sim.register("PJSIP/2004", "127.0.0.1", 5062)  # before UCS logs in: only the resync can tell
    root.startService()
    try:
        await root.whenStarted()
        if not server.get_pbx_link().resyncs:
            await server.get_pbx_link().whenSynced()
        phone = server.get_pbx().devices["PJSIP/2004"]
        assert (phone.registration, phone.address, phone.port) == ("Registered", "127.0.0.1", 5062)
        d = server.get_directory()
        line = await d.add("lines", {"device": "PJSIP/2004", "name": "Heidi's desk", "identifiers": ["heidi-desk"]})
        user = d.user_by_username(demo.user_of(1)[0])
        assert user is not None
        await d.edit("users", user.id, {"lines": [line.id]})

        bar = await connect(ws_url(server))
        assert bar.hello["address"] == "127.0.0.1"
        await bar.call("login", list(demo.user_of(1)))
        paired = await bar.call("identifier", ["127.0.0.1"])  # what identifyIP sends
        assert paired["device"] == "PJSIP/2004"

        # Unregistered: nothing is at that address any more, and the bar is told so.
        sim.unregister("PJSIP/2004")
        await until(lambda: phone.address is None)
        with pytest.raises(CallError) as e:
            await bar.call("identifier", ["127.0.0.1"])
        assert e.value.error["error"] == "not_found" and "IP address" in e.value.error["message"]
        bar.close()
    finally:
        await root.stopService()

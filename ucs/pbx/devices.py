"""The PBX model's devices: their state, and where the phones registered from.

Why a module of its own: device facts come from events of their own
(``DeviceStateChange``, chan_sip's ``PeerStatus``, PJSIP's ``ContactStatus``)
and from the ``DeviceStateList``, ``SIPpeers`` and ``PJSIPShowEndpoints``
lists of a resync, and change nothing but :attr:`PBXState.devices`.  One
collaborator, :class:`DeviceEvents`, reads them all, so each channel driver's
way of saying "registered at this address" is written once; ``PBX`` puts its
handlers in its dispatch table and ``resync.py`` hands it the lists' entries.
"""

from __future__ import annotations

from ucs.ami.message import Message
from ucs.pbx.model import Device
from ucs.pbx.state import Handler, PBXState, flag_field, int_field

#: PJSIP ``ContactStatus`` → the registration chan_sip would report.  Asterisk 20
#: says NonQualified (no qualify_frequency) or Reachable for a contact that
#: registered, Created on older versions.
_CONTACT_REGISTRATION = {
    "Created": "Registered", "Updated": "Registered", "NonQualified": "Registered",
    "Reachable": "Registered", "Removed": "Unregistered",
}


class DeviceEvents:
    def __init__(self, pbx: PBXState) -> None:
        self._emit = pbx._emit
        self._device = pbx._device

    def handlers(self) -> dict[str, Handler]:
        """This group's part of the model's dispatch table."""
        return {
            "DeviceStateChange": self.device_state,
            "PeerStatus": self.peer_status,
            "ContactStatus": self.contact_status,
        }

    # -- events -------------------------------------------------------------------

    def device_state(self, msg: Message) -> None:
        """``DeviceStateChange``, and each entry of ``DeviceStateList``."""
        name = msg.get("Device")
        if not name or name.startswith("Queue:"):
            return
        d = self._device(name)
        state = msg.get("State", "UNKNOWN")
        if d.state != state:
            d.state = state
            self._emit("device_changed", d)

    def peer_status(self, msg: Message) -> None:
        peer = msg.get("Peer")
        if not peer:
            return
        if "/" not in peer:
            peer = f"{msg.get('ChannelType', 'SIP')}/{peer}"
        d = self._device(peer)
        d.registration = msg.get("PeerStatus", d.registration)
        address = msg.get("Address")
        if address:
            host, _, port = address.rpartition(":")
            d.address, d.port = (host, int_field(port) or None) if host else (address, None)
            d.dynamic = True
        elif d.registration in ("Unregistered", "Unreachable"):
            if d.dynamic:
                d.address, d.port = None, None
        self._emit("device_changed", d)

    def contact_status(self, msg: Message) -> None:
        """PJSIP ``ContactStatus``: the AOR's contact URI carries the phone's address."""
        endpoint = msg.get("EndpointName") or msg.get("AOR")
        if not endpoint:
            return
        d = self._device(f"PJSIP/{endpoint}")
        status = msg.get("ContactStatus", "")
        d.registration = _CONTACT_REGISTRATION.get(status, status)
        d.dynamic = True
        if status == "Removed":
            d.address, d.port = None, None
        else:
            self._contact_address(d, msg.get("URI", ""))
        self._emit("device_changed", d)

    @staticmethod
    def _contact_address(d: Device, uri: str) -> None:
        """The phone's address from a contact URI (``sip:2004@127.0.0.34:5060;ob``).  A
        browser's contact (JsSIP: ``sip:x@rand.invalid;transport=ws``) has no address
        to pair by: it is left unknown."""
        if "@" not in uri:
            return
        hostport = uri.split("@", 1)[1].split(";", 1)[0]
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            host, port = hostport, ""
        if host.endswith(".invalid"):
            d.address, d.port = None, None
            return
        d.address, d.port = host, int_field(port) or None

    # -- resync lists ---------------------------------------------------------------

    def sip_peer(self, entry: Message) -> None:
        """One ``PeerEntry`` of ``SIPpeers``."""
        name = entry.get("ObjectName")
        if not name:
            return
        d = self._device(f"{entry.get('Channeltype', 'SIP')}/{name}")
        d.dynamic = flag_field(entry.get("Dynamic"))
        ip = entry.get("IPaddress", "")
        d.address = ip if ip and ip not in ("-none-", "(null)") else None
        d.port = int_field(entry.get("IPport")) or None
        if d.dynamic:
            d.registration = "Registered" if d.address else "Unregistered"
        self._emit("device_changed", d)

    def pjsip_endpoint(self, entry: Message) -> None:
        """One ``EndpointList`` entry of ``PJSIPShowEndpoints``."""
        name = entry.get("ObjectName")
        if not name:
            return
        d = self._device(f"PJSIP/{name}")
        d.dynamic = True
        state = entry.get("DeviceState", "")
        d.registration = "Unregistered" if state in ("Unavailable", "UNAVAILABLE") else "Registered"
        # ``Contacts: 2004/sip:2004@127.0.0.34:5060,`` (AOR/URI, comma-separated): where a
        # phone registered from, so that pairing by IP works after UCS restarts too.
        contacts = [c for c in entry.get("Contacts", "").split(",") if "/" in c]
        if contacts:
            self._contact_address(d, contacts[0].split("/", 1)[1])
        elif d.registration == "Unregistered":
            d.address, d.port = None, None
        self._emit("device_changed", d)

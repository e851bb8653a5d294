"""The lab the captures in ``shared/ami-captures`` were recorded in."""

from __future__ import annotations

from typing import Any

from ucs.sim.pbx import Sim

#: (device, display name, static ip or None for a dynamic peer)
LAB_LINES = (
    ("SIP/1001", "Alice Agent", "127.0.0.11"),
    ("SIP/1002", "Bob Agent", "127.0.0.12"),
    ("SIP/1003", "Carol Agent", "127.0.0.13"),
    ("SIP/1004", "Dave Agent", None),
)
#: The PJSIP endpoints of the Asterisk 20.21 lab (``../shared/asterisk/etc/pjsip.conf``):
#: (device, display name, number, static contact ip or None when it registers).
LAB_PJSIP = (
    ("PJSIP/2001", "Erin Agent", "2001", "127.0.0.31"),
    ("PJSIP/2002", "Frank Agent", "2002", "127.0.0.32"),
    ("PJSIP/2003", "Grace Agent", "2003", "127.0.0.33"),
    ("PJSIP/2004", "Heidi Agent", "2004", None),
    ("PJSIP/webrtc1", "Web Agent", "2100", None),
)
CUSTOMER = "420777123456"
AMI_USER = ("ucs", "ucslab")


def lab_dialplan(sim: Sim) -> None:
    dp = sim.dialplan
    dp.add(
        "from-carrier",
        "5000",
        [("NoOp", "inbound support"), ("Set", "CDR(userfield)=inbound"), ("Answer", ""), ("Queue", "support,t,,,120")],
    )
    dp.add(
        "from-carrier",
        "5001",
        [("NoOp", "inbound sales"), ("Set", "CDR(userfield)=inbound"), ("Answer", ""), ("Queue", "sales,t,,,120")],
    )
    dp.add("from-carrier", "6000", [("Goto", "load,6000,1")])
    dp.add("load", "6000", [("Answer", ""), ("Wait", "2"), ("Hangup", "")])
    dp.add("internal", "_1XXX", [("Dial", "SIP/${EXTEN},20,tT")])
    dp.add("internal", "_2XXX", [("Dial", "PJSIP/${EXTEN},20,tT"), ("Hangup", "")])
    dp.add("internal", "2100", [("Dial", "PJSIP/webrtc1,20,tT"), ("Hangup", "")])
    dp.add("internal", "_0X.", [("NoOp", "outbound to carrier"), ("Dial", "SIP/carrier/${EXTEN},30,tT")])
    dp.add("ucs-hold", "s", [("Answer", ""), ("MusicOnHold", "default")])
    dp.add("ucs-wait", "s", [("Answer", ""), ("Wait", "3600")])


def _add_pjsip(sim: Sim) -> None:
    for device, name, number, ip in LAB_PJSIP:
        phone = sim.add_line(device, name, ip, dynamic=ip is None, secret="lab" + device[6:] if ip is None else None)
        phone.line.number = number
        if device == "PJSIP/webrtc1":
            phone.line.transport, phone.line.max_contacts = "", 5


def lab(clock: Any = None, *, seed: int | None = 0, epoch: float | None = None) -> Sim:
    """A :class:`Sim` configured as the lab of the first captures (see the
    captures' README): chan_sip only (no res_pjsip: its actions are unknown),
    lines 1001..1003 static, 1004 dynamic with a secret, trunk SIP/carrier,
    queues ``support`` (rrmemory, member timeout 8 s) and ``sales``
    (ringall), the lab dialplan, and the AMI user ``ucs``/``ucslab``."""
    sim = Sim(clock, seed=seed, epoch=epoch)
    for device, name, ip in LAB_LINES:
        if ip is None:
            sim.add_line(device, name, dynamic=True, secret="dave1004", call_limit=0)
        else:
            sim.add_line(device, name, ip)
    sim.add_trunk("SIP/carrier", "127.0.0.20")
    sim.add_queue("support", strategy="rrmemory", timeout=8)
    sim.add_queue("sales", strategy="ringall", timeout=15)
    lab_dialplan(sim)
    sim.ami_users[AMI_USER[0]] = AMI_USER[1]
    return sim


def matrix_lab(clock: Any = None, *, seed: int | None = 0, epoch: float | None = None) -> Sim:
    """The lab of the capture matrix (Asterisk 20.21, ``../shared/asterisk/etc``):
    the chan_sip phones of :func:`lab` and the PJSIP endpoints 2001..2003
    (static contacts), 2004 and webrtc1 (they register); both queues ring a member 8 s and retry after
    1 s; the dialplan of its ``extensions.conf``."""
    sim = Sim(clock, seed=seed, epoch=epoch)
    for device, name, ip in LAB_LINES:
        if ip is None:
            sim.add_line(device, name, dynamic=True, secret="lab1004", call_limit=0)
        else:
            sim.add_line(device, name, ip)
    _add_pjsip(sim)
    sim.add_trunk("SIP/carrier", "127.0.0.20")
    sim.add_queue("support", strategy="rrmemory", timeout=8, retry=1)
    sim.add_queue("sales", strategy="ringall", timeout=8, retry=1)
    dp = sim.dialplan
    dp.add("from-carrier", "5000", [("NoOp", "inbound support"), ("Answer", ""), ("Queue", "support,t,,,120"), ("Hangup", "")])
    dp.add("from-carrier", "5001", [("Answer", ""), ("Queue", "sales,t,,,120"), ("Hangup", "")])
    dp.add("from-carrier", "_1XXX", [("Dial", "SIP/${EXTEN},20"), ("Hangup", "")])
    dp.add("from-carrier", "_2XXX", [("Dial", "PJSIP/${EXTEN},20"), ("Hangup", "")])
    dp.add("from-carrier", "2100", [("Dial", "PJSIP/webrtc1,20"), ("Hangup", "")])
    dp.add("internal", "_1XXX", [("Dial", "SIP/${EXTEN},20,tT"), ("Hangup", "")])
    dp.add("internal", "_2XXX", [("Dial", "PJSIP/${EXTEN},20,tT"), ("Hangup", "")])
    dp.add("internal", "2100", [("Dial", "PJSIP/webrtc1,20,tT"), ("Hangup", "")])
    dp.add("internal", "_0X.", [("NoOp", "outbound to carrier"), ("Dial", "SIP/carrier/${EXTEN},30,tT"), ("Hangup", "")])
    # Directed pickup: **<extension> answers that phone's ringing call.
    dp.add("internal", "_**1XXX", [("PickupChan", "SIP/${EXTEN:2}"), ("Hangup", "")])
    dp.add("internal", "_**2XXX", [("PickupChan", "PJSIP/${EXTEN:2}"), ("Hangup", "")])
    dp.add("internal", "5000", [("Goto", "from-carrier,5000,1")])
    dp.add("internal", "5001", [("Goto", "from-carrier,5001,1")])
    dp.add("ucs-hold", "s", [("Answer", ""), ("MusicOnHold", "default")])
    dp.add("ucs-wait", "s", [("Answer", ""), ("Wait", "3600")])
    sim.ami_users[AMI_USER[0]] = AMI_USER[1]
    return sim


DEMO_NAMES = ("Alice Agent", "Bob Agent", "Carol Agent", "Dave Agent", "Eve Agent", "Frank Agent", "Grace Agent", "Heidi Agent")


def demo_lab(clock: Any = None, *, phones: int = 4, seed: int | None = None) -> Sim:
    """The lab for a demo: ``phones`` static lines SIP/1001, SIP/1002, ... (no
    phone has to register first), the trunk, the queues and the dialplan."""
    if not 1 <= phones <= 8999:
        raise ValueError(f"phones={phones}: give 1 to 8999 simulated phones")
    sim = Sim(clock, seed=seed)
    for i in range(phones):
        n = 1001 + i
        name = DEMO_NAMES[i] if i < len(DEMO_NAMES) else f"Agent {n}"
        ip = f"127.0.0.{11 + i}" if i < 200 else f"127.0.{(i >> 8) + 1}.{i & 255}"
        sim.add_line(f"SIP/{n}", name, ip)
    sim.add_trunk("SIP/carrier", "127.0.0.20")
    sim.add_queue("support", strategy="rrmemory", timeout=8)
    sim.add_queue("sales", strategy="ringall", timeout=15)
    lab_dialplan(sim)
    sim.ami_users[AMI_USER[0]] = AMI_USER[1]
    return sim

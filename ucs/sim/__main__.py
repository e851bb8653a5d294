"""``python -m ucs.sim`` / ``ucs-sim``: the simulated Asterisk on its own.

    ucs-sim --port 5038 --demo

serves the capture lab over AMI (user ``ucs``, secret ``ucslab``) and, with
``--demo``, keeps callers calling its queues; logs go to stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ucs-sim",
        description="A simulated Asterisk 20 (chan_sip, app_queue) speaking AMI, configured as the capture lab.",
    )
    p.add_argument("--port", type=int, default=5038, help="AMI TCP port (default 5038; 0 lets the system choose)")
    p.add_argument("--interface", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--demo", action="store_true", help="callers keep calling the queues; agent phones answer")
    p.add_argument("--rate", type=float, default=6.0, help="demo: new calls a minute (default 6)")
    p.add_argument(
        "--add-members",
        action="store_true",
        help="demo: put the agent lines in the queues (UCS does it itself when agents log in)",
    )
    p.add_argument(
        "--phones",
        type=int,
        default=None,
        help="instead of the capture lab's 4 lines (1004 dynamic), N static phones SIP/1001... (1 to 8999)",
    )
    p.add_argument(
        "--webrtc-port",
        type=int,
        default=None,
        help="also a WebRTC line PJSIP/webrtc1 (number 2100, password labwebrtc1) and its SIP WebSocket "
        "at ws://INTERFACE:PORT/ws (0 lets the system choose); needs aiortc",
    )
    p.add_argument("--user", default="ucs", help="AMI username (default ucs)")
    p.add_argument("--secret", default="ucslab", help="AMI secret (default ucslab)")
    p.add_argument("--verbose", "-v", action="store_true", help="log every demo call")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"ucs-sim: --port {args.port}: give a TCP port from 0 to 65535", file=sys.stderr)
        return 2
    if args.webrtc_port is not None and not 0 <= args.webrtc_port <= 65535:
        print(f"ucs-sim: --webrtc-port {args.webrtc_port}: give a TCP port from 0 to 65535", file=sys.stderr)
        return 2
    if args.rate <= 0:
        print(f"ucs-sim: --rate {args.rate}: give the number of new calls a minute, more than 0", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError
    from twisted.python import log as twisted_log

    from ucs.sim.lab import demo_lab, lab
    from ucs.sim.service import SimService

    twisted_log.PythonLoggingObserver().start()
    if args.phones is not None and not 1 <= args.phones <= 8999:
        print(f"ucs-sim: --phones {args.phones}: give 1 to 8999 phones", file=sys.stderr)
        return 2
    sim = lab(reactor, seed=None) if args.phones is None else demo_lab(reactor, phones=args.phones)
    sim.ami_users = {args.user: args.secret}
    if args.webrtc_port is not None:
        from ucs.sim.webrtc import add_webrtc_line

        add_webrtc_line(sim, "PJSIP/webrtc1", "Web Agent", secret="labwebrtc1", number="2100")
        sim.dialplan.add("internal", "2100", [("Dial", "PJSIP/webrtc1,20,tT"), ("Hangup", "")])
        sim.dialplan.add("from-carrier", "2100", [("Dial", "PJSIP/webrtc1,20"), ("Hangup", "")])
    svc = SimService(
        port=args.port,
        interface=args.interface,
        sim=sim,
        call_rate=args.rate if args.demo else 0.0,
        demo_options={"add_members": args.add_members},
        reactor=reactor,
        webrtc_port=args.webrtc_port,
    )
    try:
        svc.startService()
    except CannotListenError as e:
        print(f"ucs-sim: cannot listen on {args.interface}:{args.port}: {e}", file=sys.stderr)
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", svc.stopService)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""AMI events per call with and without the read classes and eventfilters of
``etc/asterisk/manager.conf``, measured on ``ucs.sim``.

    .venv/bin/python bench/ami_filters.py [--agents 200] [--calls 2000]

The lab (``ucs.sim.bench.scaled_lab``: the capture lab plus ``--agents``
phones in the support queue) on a simulated clock takes ``--calls`` queue
calls (1 a second, talk 20-60 s, patience 30-90 s); every event the simulator
emits is counted as a client would get it:

* ``Events: on``, no filter (what a default AMI user gets);
* ``read = system,call,agent`` (the classes of manager.conf's [ucs] user);
* that plus the ``eventfilter`` lines of manager.conf (``!Event: VarSet``,
  ``!Event: Newexten``, ``!Event: RTCP*``, ``!Event: DTMF*``,
  ``!Event: NewAccountCode``), applied like Asterisk (and the simulator's
  ``Filter`` action) does: a regex search over the event's text;
* only the ``ami.filters`` UCS sends with the ``Filter`` action
  (``!Event: VarSet``, ``!Event: Newexten``) on an ``Events: on`` login.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ucs.sim.bench import HeapClock, scaled_lab  # noqa: E402
from ucs.sim.wire import class_mask  # noqa: E402

MANAGER_CONF = Path(__file__).resolve().parent.parent / "etc" / "asterisk" / "manager.conf"


def manager_conf() -> tuple[str, list[str]]:
    """The [ucs] user's read classes and eventfilters."""
    read, filters, section = "", [], ""
    for raw in MANAGER_CONF.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "ucs" and "=" in line:
            k, v = (x.strip() for x in line.split("=", 1))
            if k == "read":
                read = v
            elif k == "eventfilter":
                filters.append(v)
    return read, filters


def passes(text: str, filters: list[tuple[bool, re.Pattern[str]]]) -> bool:
    includes = [rx for exclude, rx in filters if not exclude]
    if includes and not any(rx.search(text) for rx in includes):
        return False
    return not any(rx.search(text) for exclude, rx in filters if exclude)


def compile_filters(exprs: list[str]) -> list[tuple[bool, re.Pattern[str]]]:
    return [(e.startswith("!"), re.compile(e[1:] if e.startswith("!") else e)) for e in exprs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--calls", type=int, default=2000)
    a = p.parse_args()
    read, conf_filters = manager_conf()
    mask = class_mask(read)
    profiles = {
        "Events: on, no filter": (None, []),
        f"read = {read}": (mask, []),
        "read + manager.conf eventfilters": (mask, compile_filters(conf_filters)),
        "Events: on + UCS ami.filters (Filter action)": (None, compile_filters(["!Event: VarSet", "!Event: Newexten"])),
    }
    counts = {k: Counter() for k in profiles}
    sizes = Counter()
    clock = HeapClock()
    sim = scaled_lab(clock, a.agents)

    def make_sink(name: str, flt: list[tuple[bool, re.Pattern[str]]]):  # type: ignore[no-untyped-def]
        def sink(ev: object) -> None:
            data = ev.data  # type: ignore[attr-defined]
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            if flt and not passes(text, flt):
                return
            counts[name][ev.name] += 1  # type: ignore[attr-defined]
            sizes[name] += len(data)
        return sink

    for name, (m, flt) in profiles.items():
        if m is None:
            sim.subscribe(make_sink(name, flt))
        else:
            sim.subscribe(make_sink(name, flt), m)
    for _ in range(a.calls):
        sim.caller_calls("5000", hangup_after=(20.0, 60.0), abandon_after=(30.0, 90.0))
        clock.advance(1.0)
    clock.advance(300)  # every call ends
    print(f"ucs.sim, {a.agents} agents in the support queue, {a.calls} queue calls; manager.conf [ucs]: "
          f"read = {read}, {len(conf_filters)} eventfilters")
    base = sum(counts["Events: on, no filter"].values())
    for name in profiles:
        total = sum(counts[name].values())
        print(f"  {name:46} {total / a.calls:6.1f} events/call  {sizes[name] / a.calls / 1024:5.1f} KiB/call  "
              f"({100 * total / base:5.1f} %)")
    print("  events per call by name (Events: on, no filter), and what is left after read + eventfilters:")
    for ev, n in counts["Events: on, no filter"].most_common():
        kept = counts["read + manager.conf eventfilters"][ev]
        print(f"    {ev:28} {n / a.calls:6.2f}  -> {kept / a.calls:6.2f}")


if __name__ == "__main__":
    main()

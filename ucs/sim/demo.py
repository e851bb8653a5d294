"""A living contact center for a first run: callers keep calling the queues.

Callers arrive at random (a Poisson stream of ``rate`` calls a minute) on the
queue numbers, wait (giving up after a random patience), talk a random while
once an agent answers, and hang up; the agents' phones answer after a random
delay.  With ``add_members`` the agents' lines are also put in the queues (for
a standalone simulator; UCS itself adds members when agents log in).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from ucs.sim.model import Delay
from ucs.sim.pbx import Sim

log = logging.getLogger(__name__)

FIRST_NAMES = ("Jana", "Petr", "Eva", "Tomas", "Lucie", "Martin", "Anna", "Jakub", "Tereza", "David")
LAST_NAMES = ("Novak", "Svoboda", "Dvorak", "Cerny", "Prochazka", "Kucera", "Vesely", "Horak")


class Demo:
    def __init__(
        self,
        sim: Sim,
        *,
        rate: float = 6.0,
        numbers: Sequence[str] = ("5000", "5001"),
        agents: Iterable[str] | None = None,
        answer_after: Delay = (1.0, 4.0),
        talk: Delay = (8.0, 45.0),
        patience: Delay = (20.0, 90.0),
        add_members: bool = False,
        queues: Sequence[str] = ("support", "sales"),
        report_every: float = 30.0,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"demo rate {rate!r}: give the number of new calls a minute, more than 0")
        self.sim = sim
        self.rate = rate
        self.numbers = list(numbers)
        self.agents = list(agents) if agents is not None else [d for d, ln in sim.lines.items() if not ln.trunk]
        self.answer_after = answer_after
        self.talk = talk
        self.patience = patience
        self.add_members = add_members
        self.queues = [q for q in queues if q in sim.queues]
        self.report_every = report_every
        self.calls = 0
        self._next: Any = None
        self._report: Any = None
        self.running = False
        sim.on_state(self._pbx_state)

    def start(self) -> None:
        self.running = True
        for device in self.agents:
            # Demo phones also answer when told to (SIPnotify Event: talk), like a
            # Yealink with remote answer on: the agent bar's answer button works.
            self.sim.phone(device).set_behaviour(answer_after=self.answer_after, remote_answer=True)
        if self.add_members:
            self._add_members()
        self._schedule()
        if self.report_every:
            self._report = self.sim.clock.callLater(self.report_every, self._log_state)
        log.info(
            "demo: %.1f calls a minute to %s; %d agent phones answer after %s s",
            self.rate,
            ", ".join(self.numbers),
            len(self.agents),
            self.answer_after,
        )

    def stop(self) -> None:
        self.running = False
        for dc in (self._next, self._report):
            if dc is not None and dc.active():
                dc.cancel()
        self._next = self._report = None

    def _add_members(self) -> None:
        for q in self.queues:
            for device in self.agents:
                line = self.sim.lines[device]
                if device not in self.sim.queues[q].members:
                    self.sim.queue_add(q, device, line.display or device, state_interface=device)

    def _pbx_state(self, state: str) -> None:
        if not self.running:
            return
        if state == "shutdown" and self._next is not None and self._next.active():
            self._next.cancel()
        if state == "booted":
            if self.add_members:
                self._add_members()
            self._schedule()

    def _schedule(self) -> None:
        if self.running:
            self._next = self.sim.clock.callLater(self.sim.random.expovariate(self.rate / 60.0), self._call)

    def _call(self) -> None:
        self._next = None
        rng = self.sim.random
        if self.sim.running:
            number = rng.choice(self.numbers)
            caller = f"420{rng.randint(600000000, 799999999)}"
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            ch = self.sim.caller_calls(number, caller, name, hangup_after=self.talk, abandon_after=self.patience)
            self.calls += 1
            log.debug("demo: %s (%s) calls %s on %s", name, caller, number, ch.name)
        self._schedule()

    def _log_state(self) -> None:
        sim = self.sim
        waiting = sum(len(q.entries) for q in sim.queues.values())
        talking = sum(1 for b in sim.bridges.values() if len(b.channels) >= 2)
        log.info("demo: %d calls so far; %d waiting in queues, %d conversations, %d channels", self.calls, waiting, talking, len(sim.channels))
        if self.running:
            self._report = sim.clock.callLater(self.report_every, self._log_state)

"""The greeter: logs a greeting when an agent logs in, and counts them.

A packaged plugin is an ordinary module: it imports UCS's modules by their
full names (``ucs.events``), not the seeds' top-level ``events``.
"""

from __future__ import annotations

from typing import Any

from ucs.events import EVENT_AGENT_LOGIN

GREETING = "Hello"


class Greeter:
    def __init__(self, ucs: Any) -> None:
        self.ucs = ucs
        self.greeted: list[str] = []
        ucs.addCallback(EVENT_AGENT_LOGIN, self.logged_in)

    def start(self) -> None:
        self.ucs.log.info("greeter ready")

    def logged_in(self, agent: Any, args: dict[str, Any]) -> None:
        name = agent["displayname"]
        self.greeted.append(name)
        self.ucs.log.info("%s, %s!", GREETING, name)

    def stop(self) -> None:
        self.ucs.removeCallback(EVENT_AGENT_LOGIN, self.logged_in)

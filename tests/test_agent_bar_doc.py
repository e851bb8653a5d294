"""docs/agent-bar.md against the code a CRM developer relies on: every UCS API method
its methods table names is in the server's registry (``api.methods``), every bar
method it names is defined by the bundle, and its Call and User tables list every
field the server sends."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.internet import reactor

from serverkit import demo_config
from ucs.agents.stats import USER_FIGURES
from ucs.calls.call import Call
from ucs.directory.model import User
from ucs.server import UCSServer

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "agent-bar.md").read_text(encoding="utf-8")
BUNDLE = (ROOT / "ucs" / "web" / "static" / "operator" / "operator-v4.0.0.js").read_text(encoding="utf-8")

#: Fields a bar gets in a call event besides Call.to_dict(): this phone's timers
#: (ucs.calls.view.my_times) and the note on metadata that could not be sent (ucs.web.hub).
PHONE_FIELDS = {"ringing_since", "answered_at", "held_since", "dataDropped"}


def section(heading: str) -> str:
    """The text under ``heading`` up to the next heading."""
    start = DOC.index(heading + "\n") + len(heading)
    nxt = re.search(r"^#{1,4} ", DOC[start:], re.M)
    return DOC[start:start + nxt.start()] if nxt else DOC[start:]


def table_rows(text: str) -> list[list[str]]:
    """The cells of a Markdown table's body rows (``\\|`` inside a cell is not a separator)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("| ---"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows.append(cells)
    return rows[1:]  # the header


def names(cell: str) -> set[str]:
    """The field or method names a cell gives in backticks (``foo``, ``foo(…)``)."""
    return {m.group(1) for m in re.finditer(r"`([A-Za-z_][\w.]*)(?:\([^`]*\))?`", cell)}


def test_methods_table_names_methods_the_server_has(tmp_path: Path) -> None:
    rows = table_rows(section("### Methods and the states they are allowed in"))
    assert len(rows) > 20
    registry = set(UCSServer(demo_config(tmp_path), reactor).get_registry().names())
    documented = set().union(*(names(r[2]) for r in rows))
    assert {"login", "call.dial", "agents.directory", "history.list"} <= documented
    assert documented - registry == set()


def test_methods_table_names_methods_the_bar_defines() -> None:
    rows = table_rows(section("### Methods and the states they are allowed in"))
    methods = {m.group(1) for r in rows for m in re.finditer(r"`(\w+)\(", r[0])}
    assert {"login", "dial", "transfer", "setAccountCode", "notify"} <= methods
    assert methods - bar_methods() == set()


def bar_methods() -> set[str]:
    """What the bundle puts on ``window.ucsOperator``: the members of every ``…Api``
    object it registers with ``guard`` (``api``, ``floorApi``, ``superApi``…), and what it
    assigns to ``NS`` (``window.ucsOperator``) or ``api``."""
    found = set()
    for name in re.findall(r"Object\.keys\((\w+)\)\.forEach\(function \(name\) \{ NS\[name\] = guard", BUNDLE):
        start = BUNDLE.index(f"  var {name} = {{\n")
        body = BUNDLE[start:BUNDLE.index("\n  };", start)]
        found |= set(re.findall(r"^    (\w+): function", body, re.M))
    found |= set(re.findall(r"\b(?:NS|api)\.(\w+) = ", BUNDLE))
    return found


def test_call_table_lists_every_field() -> None:
    documented = set().union(*(names(r[0]) for r in table_rows(section("### Call"))))
    sent = set(Call(uniqueid="1.1", id=1, created=0.0).to_dict()) | PHONE_FIELDS
    assert sent - documented == set(), "fields the server sends that docs/agent-bar.md does not describe"
    assert documented - sent == set(), "fields docs/agent-bar.md describes that the server does not send"


def test_user_table_lists_every_field() -> None:
    documented = set().union(*(names(r[0]) for r in table_rows(section("### User"))))
    sent = set(User(id=1, username="u").to_dict())
    assert sent - documented == set()
    # onReady's user adds the agent's status and today's figures (ucs.agents.agent.Agent.to_dict)
    agent = {"status", "reason", "since", "logged_in", "line", "device", "suspended", "wrapup", "auxtimes"}
    assert (agent | set(USER_FIGURES)) - documented == set()

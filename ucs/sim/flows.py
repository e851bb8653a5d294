"""The call flows several captures share, with the phones and timings as
parameters: the captures' scenarios (:mod:`ucs.sim.scenarios`) and the
matrix's (:mod:`ucs.sim.matrix`) that follow the same steps call these.

A flow's timeline is the capture's: each step waits a number of simulated
seconds, then sends the capture's next actions (numbered from where the
previous step stopped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ucs.sim.model import Delay
from ucs.sim.player import Player

#: Seconds to wait, then how many of the capture's next actions to send.
Steps = Sequence[tuple[float, int]]


async def _steps(p: Player, first: int, steps: Steps) -> int:
    """Play ``steps`` from action ``first``; the number of the next action."""
    n = first
    for seconds, count in steps:
        await p.wait(seconds)
        await p.run(*range(n, n + count))
        n += count
    return n


async def customer_call(p: Player, answers: Mapping[str, Delay], steps: Steps, talk: float) -> None:
    """A customer calls queue 5000 and an agent takes the call.

    The client's actions 1 and 2 (login, QueueAdd) come first; each phone of
    ``answers`` answers after its delay (None: never); then the ``steps``
    (hold, redirect, transfer... during the call); ``talk`` seconds later the
    customer hangs up, and a second after that the client sends its last
    action and logs off.
    """
    await p.run(1, 2)
    for phone, delay in answers.items():
        p.sim.phone(phone).set_behaviour(answer_after=delay)
    customer = p.sim.caller_calls("5000")
    n = await _steps(p, 3, steps)
    await p.wait(talk)
    p.sim.bye(customer)
    await p.wait(1)
    await p.run(n)
    await p.logoff(n + 1)


async def click_to_dial(
    p: Player, agent: str, answer: Delay, wait: float, *, trunk_answer: Delay, silent: bool = False
) -> None:
    """The client's action 2 originates a call from ``agent`` (who answers
    after ``answer``) to the carrier (which answers after ``trunk_answer``,
    or with ``silent`` never rings); ``wait`` seconds later action 3 ends it,
    and a second after that the client logs off.
    """
    await p.run(1)
    p.sim.phone(agent).set_behaviour(answer_after=answer)
    p.sim.trunk("SIP/carrier").set_behaviour(answer_after=trunk_answer, silent=silent)
    await p.run(2)
    await p.wait(wait)
    await p.run(3)
    await p.wait(1)
    await p.logoff(4)


async def caller_abandons(p: Player, agent: str, abandon_after: float, wait: float) -> None:
    """A customer calls queue 5000 and gives up after ``abandon_after`` seconds
    while ``agent`` rings without answering; ``wait`` seconds after the call
    came the client sends action 3 and logs off.
    """
    await p.run(1, 2)
    p.sim.phone(agent).set_behaviour(answer_after=None)
    p.sim.caller_calls("5000", abandon_after=abandon_after)
    await p.wait(wait)
    await p.run(3)
    await p.logoff(4)

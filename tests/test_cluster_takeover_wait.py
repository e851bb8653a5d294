"""Issue 20: a standby's forwarded call rides out a take-over instead of failing.

Between the owner's death and the new owner's term (the claim, the agents'
restore) nobody subscribes to the commands: NATS answers "no responders".  The
standby's :class:`~ucs.cluster.forward.Forwarder` sends the call again until an
owner serves, for up to ``takeover_wait``, then gives the clear 503.  Here on the
real NATS, with a real :class:`CommandClient` and :class:`CommandServer`; the
retries' timing runs on a :class:`~twisted.internet.task.Clock` (NATS's own
answers are real, so each step waits for the next retry to be scheduled).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from serverkit import until
from test_cluster_stream import close_link, names, open_link
from ucs.cluster.commands import CommandClient, CommandServer
from ucs.cluster.forward import RETRY_MAX, Forwarder, OwnerUnavailable
from ucs.cluster.natslink import Names, NatsLink
from ucs.error import InvalidDataInput


@asynccontextmanager
async def two_nodes() -> AsyncIterator[tuple[Names, NatsLink, CommandClient]]:
    """A domain of its own; the owner's NATS link, and a standby's client on another link."""
    n = names()
    owner, standby = await open_link("owner"), await open_link("standby")
    try:
        yield n, owner, CommandClient(standby, n, "standby", timeout=2)
    finally:
        await close_link(owner)
        await close_link(standby)


def answering(heard: list[Any], *refusals: dict[str, Any]) -> Any:
    """An owner's handler (as OwnerWork answers): ``refusals`` first, then the agent READY."""
    def handler(method: str, args: list[Any], node: str) -> Any:
        heard.append((method, args, node))
        if len(heard) <= len(refusals):
            return refusals[len(heard) - 1]
        if args[0] == "never":
            return Deferred()  # heard, never answered
        return {"ok": True, "result": {"id": 7, "status": "READY"}}
    return handler


async def next_retry(clock: Clock, asked: Deferred[Any]) -> bool:
    """NATS's answer came back and the next try is scheduled: run it (``False``: ``asked`` is done)."""
    await until(lambda: asked.called or clock.getDelayedCalls(), 10)
    if asked.called:
        return False
    clock.advance(clock.getDelayedCalls()[0].getTime() - clock.seconds())
    return True


def ready(forwarder: Forwarder) -> Deferred[Any]:
    return forwarder.call(object(), "agent.changeStatus", ["READY"])


@pytest_twisted.ensureDeferred
async def test_a_call_made_while_no_node_serves_commands_is_carried_out_once_an_owner_serves() -> None:
    async with two_nodes() as (n, owner, client):
        clock = Clock()
        forwarder = Forwarder(lambda: client, lambda: False, clock=clock, takeover_wait=12)
        asked = ready(forwarder)
        # Nobody serves: NATS said "no responders"; the call waits, the agent is not told an error.
        for _ in range(8):  # about a second of the take-over
            assert await next_retry(clock, asked)
        assert forwarder.waiting == 1 and not asked.called

        # The new owner's term begins: its subscription is made, and the call is carried out, once.
        heard: list[Any] = []
        server = CommandServer(owner, n, answering(heard))
        await server.serve()
        assert server.serving
        while await next_retry(clock, asked):
            pass
        assert await asked == {"id": 7, "status": "READY"}
        assert [(m, a[:2], node) for m, a, node in heard] == [
            ("api.call", ["agent.changeStatus", ["READY"]], "standby")]
        assert forwarder.waiting == 0 and clock.getDelayedCalls() == []
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_with_no_owner_within_the_wait_the_call_gets_the_clear_503() -> None:
    async with two_nodes() as (_, _owner, client):
        clock = Clock()
        forwarder = Forwarder(lambda: client, lambda: False, clock=clock, takeover_wait=2)
        asked = ready(forwarder)
        tries = 0
        while await next_retry(clock, asked):
            tries += 1
        with pytest.raises(OwnerUnavailable) as failed:
            await asked
        assert failed.value.code == 503
        message = str(failed.value)
        assert "no node owns the AMI link" in message and "try again" in message
        assert "waited 2 s for an owner: [cluster] takeover_wait" in message
        assert clock.seconds() == pytest.approx(2.0)  # it gave up at the deadline, not before or after
        assert 2 / RETRY_MAX <= tries <= 20 and forwarder.waiting == 0

        # takeover_wait = 0: the 503 at once, nothing scheduled.
        at_once = Forwarder(lambda: client, lambda: False, clock=clock, takeover_wait=0)
        with pytest.raises(OwnerUnavailable) as failed:
            await ready(at_once)
        assert "no node owns the AMI link" in str(failed.value) and clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_an_owner_taking_over_is_asked_again_but_an_owner_heard_is_never_asked_twice() -> None:
    async with two_nodes() as (n, owner, client):
        clock = Clock()
        forwarder = Forwarder(lambda: client, lambda: False, clock=clock, takeover_wait=12)
        # The owner refuses before doing anything while its agents are restored (OwnerWork): asked again.
        heard: list[Any] = []
        taking_over = {"ok": False, "error": OwnerUnavailable("the AMI owner is taking over").to_dict()}
        server = CommandServer(owner, n, answering(heard, taking_over))
        await server.serve()
        asked = ready(forwarder)
        while await next_retry(clock, asked):
            pass
        assert await asked == {"id": 7, "status": "READY"} and len(heard) == 2

        # The owner's own refusal comes back at once, not asked again.
        heard.clear()
        server.handler = answering(heard, {"ok": False, "error": InvalidDataInput("no such reason").to_dict()})
        with pytest.raises(InvalidDataInput, match="no such reason"):
            await ready(forwarder)
        assert len(heard) == 1 and clock.getDelayedCalls() == []

        # Heard but not answered within request_timeout: it may have dialled already, so it is not
        # sent again; the caller is told it may have been carried out.
        heard.clear()
        server.handler = answering(heard)
        client.timeout = 0.3
        with pytest.raises(OwnerUnavailable) as slow:
            await forwarder.call(object(), "never", [])
        assert slow.value.code == 503 and "did not answer within 0.3 s" in str(slow.value)
        assert "may still have been carried out" in str(slow.value)
        assert len(heard) == 1 and clock.getDelayedCalls() == [] and forwarder.waiting == 0
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_a_status_change_is_asked_again_after_an_owner_heard_did_not_answer() -> None:
    """The gap after an owner's network went: NATS still gives the request to its dead
    subscription, which never answers.  A status change does no harm twice: asked again, the
    owner that serves now answers; a dial (the test above) is not."""
    async with two_nodes() as (n, owner, client):
        clock = Clock()
        forwarder = Forwarder(lambda: client, lambda: False, clock=clock, takeover_wait=12)
        heard: list[Any] = []

        def first_silent(method: str, args: list[Any], node: str) -> Any:
            heard.append(args[0])
            if len(heard) == 1:
                return Deferred()  # the old owner's subscription: heard, never answered
            return {"ok": True, "result": {"id": 7, "status": "READY"}}

        server = CommandServer(owner, n, first_silent)
        await server.serve()
        client.timeout = 0.3
        asked = ready(forwarder)
        while await next_retry(clock, asked):
            pass
        assert await asked == {"id": 7, "status": "READY"}
        assert heard == ["agent.changeStatus", "agent.changeStatus"] and forwarder.waiting == 0
        await server.stop()

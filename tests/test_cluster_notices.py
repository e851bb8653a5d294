"""Issue 20: the notices nodes tell each other on plain NATS -- a logout, a directory
change, a sessions request -- are read by one function (:func:`ucs.cluster.natslink.read_notice`).

A notice that is not understood (not JSON, not an object, another version, a field
missing or of the wrong kind) is ignored with a warning that says what was wrong and
what is accepted; a node's own notice is ignored quietly; another node's is carried out.
The end-to-end test publishes on the real NATS to a real node (real PostgreSQL, the
simulated Asterisk).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from clusterkit import cluster_env
from serverkit import until
from ucs.cluster import dirsync, sessync
from ucs.cluster.natslink import Names, read_notice


def warnings() -> tuple[list[str], Any]:
    """The warnings logged from now on (and the observer, to remove)."""
    seen: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_level") == LogLevel.warn:
            seen.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    return seen, observe


def read(data: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    seen, observe = warnings()
    try:
        notice = read_notice(data, 1, "node-a", what="a test notice", accepted='{"v": 1, "n": an integer}',
                             check=lambda n: n["n"] + 1)
    finally:
        globalLogPublisher.removeObserver(observe)
    return notice, seen


@pytest.mark.parametrize(("data", "wrong"), [
    (b"{not json", "Expecting property name"),
    (b"\xc3(", "can't decode"),
    (b"[1, 2]", "a JSON list, not an object"),
    (b'{"v": 2, "node": "node-b", "n": 1}', "version 2, not 1"),
    (b'{"node": "node-b", "n": 1}', "version None, not 1"),
    (b'{"v": 1, "node": "node-b"}', "no 'n'"),
    (b'{"v": 1, "node": "node-b", "n": "one"}', 'can only concatenate str'),
])
def test_a_notice_not_understood_is_ignored_saying_what_was_wrong_and_what_is_accepted(data: bytes,
                                                                                       wrong: str) -> None:
    notice, seen = read(data)
    assert notice is None
    assert len(seen) == 1, seen
    assert seen[0].startswith("cluster: a test notice was not understood (")
    assert wrong in seen[0]
    assert seen[0].endswith('; ignored. Accepted: {"v": 1, "n": an integer}')


def test_a_nodes_own_notice_is_ignored_quietly_and_another_nodes_is_read() -> None:
    assert read(b'{"v": 1, "node": "node-a", "n": 1}') == (None, [])
    assert read(b'{"v": 1, "node": "node-b", "n": 1}') == ({"v": 1, "node": "node-b", "n": 1}, [])


@pytest_twisted.ensureDeferred
async def test_a_node_ignores_bad_notices_on_nats_with_a_warning_and_carries_out_good_ones(tmp_path: Path) -> None:
    async with cluster_env(phones=1) as env:
        a = await env.start(tmp_path, "node-a")
        node: Any = a.get_cluster()
        await node.elector.when("owner")
        await until(lambda: node.sessync is not None and node.dirsync is not None, 10)
        names = Names(env.domain)
        ended, who = sessync.subjects(names)
        directory = dirsync.subject(names)

        async def publish(subject: str, notice: Any) -> None:
            data = notice if isinstance(notice, bytes) else json.dumps(notice).encode()
            nc = node.link.nc
            await node.link.bridge.run(nc.publish, subject, data)
            await node.link.bridge.run(nc.flush)

        seen, observe = warnings()
        try:
            await publish(ended, {"v": 1, "node": "node-z", "user_id": "bob", "how": "logout"})
            await publish(directory, {"v": 1, "node": "node-z", "kind": "bananas", "id": 7})
            await publish(who, b"hello")
            await until(lambda: len([w for w in seen if "not understood" in w]) == 3, 10)
        finally:
            globalLogPublisher.removeObserver(observe)
        change, logout, request = sorted(w for w in seen if "not understood" in w)
        assert change.startswith("cluster: a directory notice was not understood (kind 'bananas', id 7)")
        assert "Accepted: {\"v\": 1, \"node\": \"...\", \"kind\": one of users, groups" in change
        assert logout.startswith("cluster: a logout notice was not understood (user_id 'bob', how 'logout'")
        assert "\"how\": one of logout, forced, unpaired, elsewhere" in logout
        assert request.startswith("cluster: a sessions request was not understood (Expecting value")
        assert node.sessync.applied == 0 and node.dirsync.applied == 0

        # Its own notice: nothing done; another node's: carried out (here nobody of that user is
        # logged in).  A bad notice last, on the same subject: once it is heard, so are the others.
        seen, observe = warnings()
        try:
            await publish(ended, {"v": 1, "node": "node-a", "user_id": 1, "how": "logout", "reason": ""})
            await publish(ended, {"v": 1, "node": "node-z", "user_id": 1, "how": "logout", "reason": ""})
            await publish(ended, {"v": 1, "node": "node-z", "user_id": 2, "how": "forced"})
            await publish(ended, {"v": 1, "node": "node-a", "user_id": 2})
            await until(lambda: any("no 'how'" in w for w in seen), 10)
        finally:
            globalLogPublisher.removeObserver(observe)
        assert node.sessync.applied == 2

"""The owner's duty (issue 20): a node's take-over and step-down as one transition table.

:class:`ucs.cluster.duty.Duty` on a :class:`task.Clock`, its outputs recorded by
a fake node (the table's own test: the real node's outputs run in
test_cluster_node, test_cluster_handover and the other real-process tests).
Inputs in sequence -> states and outputs: the agents restored before the term
and the AMI link; the AMI link stopped at once on stepping down; a take-over
interrupted by a step-down, a step-down by a new election; a failed restore
tried again after ``retry_interval``; the node stopping in the middle of each.
"""

from __future__ import annotations

import re

import pytest
from twisted.internet import task

from ucs.cluster import duty
from ucs.cluster.duty import (DOMAIN, DOWN, ELECTED, FAILED, INPUTS, LOST, OWNER, RESTORED, RESTORING,
                              RESTORING_LOST, RESTORING_STOP, RETRYING, STANDBY, STARTING, STATES,
                              STEPPING_DOWN, STEPPING_DOWN_ELECTED, STOP, STOPPED, STOPPING, TIMER,
                              TRANSITIONS, WAITING, Duty)

RETRY = 5.0


class Node:
    """Records the outputs it is asked for, in order."""

    def __init__(self) -> None:
        self.did: list[str] = []

    def remember(self) -> None:
        self.did.append("remember")

    def restore(self) -> None:
        self.did.append("restore")

    def begin_term(self) -> None:
        self.did.append("begin_term")

    def take_link(self) -> None:
        self.did.append("take_link")

    def stop_link(self) -> None:
        self.did.append("stop_link")

    def step_down(self) -> None:
        self.did.append("step_down")

    def done(self) -> list[str]:
        did, self.did = self.did, []
        return did


def machine(state: str = STANDBY) -> tuple[Duty, Node, task.Clock]:
    """A duty whose directory is loaded, driven into ``state`` the way a node would."""
    clock, node = task.Clock(), Node()
    d = Duty(node, clock, RETRY, name="node-a")
    d.domain()
    path = {STANDBY: [], RESTORING: [ELECTED], OWNER: [ELECTED, RESTORED],
            STEPPING_DOWN: [ELECTED, RESTORED, LOST], RETRYING: [ELECTED, FAILED]}[state]
    for name in path:
        d.input(name)
    assert d.state == state
    node.done()
    return d, node, clock


def test_a_take_over_restores_the_agents_then_begins_the_term_and_takes_the_link_a_step_down_undoes_it() -> None:
    d, node, clock = machine()
    assert not d.restored
    d.role(True)
    assert (d.state, node.done()) == (RESTORING, ["remember", "restore"])
    assert not d.restored  # no term, no AMI link while the agents are restored
    d.role(True)  # told again (the NATS link changed): nothing new
    assert (d.state, node.done()) == (RESTORING, [])
    d.restore_ended(True)
    assert (d.state, node.done()) == (OWNER, ["begin_term", "take_link"])
    assert d.restored
    d.role(False)
    # the AMI link at once, in the election's hook; the agents' save takes its time
    assert (d.state, node.done()) == (STEPPING_DOWN, ["stop_link", "step_down"])
    assert not d.restored
    d.role(False)
    assert (d.state, node.done()) == (STEPPING_DOWN, [])
    d.down()
    assert (d.state, node.done()) == (STANDBY, [])
    assert clock.getDelayedCalls() == []


def test_owner_while_restoring_then_lost_steps_down_after_the_restore_without_term_or_link() -> None:
    d, node, clock = machine(RESTORING)
    d.role(False)
    assert (d.state, node.done()) == (RESTORING_LOST, [])  # the restore goes on; nothing stops it halfway
    d.restore_ended(True)
    assert (d.state, node.done()) == (STEPPING_DOWN, ["step_down"])
    d.down()
    assert (d.state, node.done()) == (STANDBY, [])


def test_lost_while_restoring_then_elected_again_takes_over_once_restored() -> None:
    d, node, clock = machine(RESTORING)
    d.role(False)
    d.role(True)
    assert (d.state, node.done()) == (RESTORING, [])  # the same restore: not started twice
    d.restore_ended(True)
    assert (d.state, node.done()) == (OWNER, ["begin_term", "take_link"])


def test_lost_while_restoring_and_the_restore_failed_is_a_standby_with_nothing_to_undo() -> None:
    d, node, clock = machine(RESTORING)
    d.role(False)
    d.restore_ended(False)
    assert (d.state, node.done()) == (STANDBY, [])
    assert clock.getDelayedCalls() == []  # no retry


def test_a_failed_restore_is_tried_again_after_retry_interval_while_the_node_owns_the_link() -> None:
    d, node, clock = machine(RESTORING)
    d.restore_ended(False)
    assert (d.state, node.done()) == (RETRYING, [])
    d.role(True)  # still the owner: waits
    clock.advance(RETRY - 0.1)
    assert (d.state, node.done()) == (RETRYING, [])
    clock.advance(0.1)
    # restored again; what the old owner told of its calls is kept from the election
    assert (d.state, node.done()) == (RESTORING, ["restore"])
    d.restore_ended(False)
    clock.advance(RETRY)
    assert (d.state, node.done()) == (RESTORING, ["restore"])
    d.restore_ended(True)
    assert (d.state, node.done()) == (OWNER, ["begin_term", "take_link"])


def test_lost_while_waiting_to_retry_cancels_the_retry() -> None:
    d, node, clock = machine(RETRYING)
    d.role(False)
    assert (d.state, node.done()) == (STANDBY, [])
    assert clock.getDelayedCalls() == []
    clock.advance(RETRY * 2)
    assert (d.state, node.done()) == (STANDBY, [])


def test_elected_before_the_directory_is_loaded_restores_the_agents_once_it_is() -> None:
    clock, node = task.Clock(), Node()
    d = Duty(node, clock, RETRY)
    assert d.state == STARTING
    d.role(True)
    assert (d.state, node.done()) == (WAITING, ["remember"])  # the old owner's calls, at the election
    d.role(True)
    assert (d.state, node.done()) == (WAITING, [])
    d.domain()
    assert (d.state, node.done()) == (RESTORING, ["restore"])
    d.domain()
    assert (d.state, node.done()) == (RESTORING, [])


def test_lost_before_the_directory_is_loaded_restores_nothing() -> None:
    node = Node()
    d = Duty(node, task.Clock(), RETRY)
    d.role(True)
    d.role(False)
    assert (d.state, node.done()) == (STARTING, ["remember"])
    d.domain()
    assert (d.state, node.done()) == (STANDBY, [])


def test_elected_while_stepping_down_takes_over_again_once_the_agents_are_saved() -> None:
    d, node, clock = machine(STEPPING_DOWN)
    d.role(True)
    assert (d.state, node.done()) == (STEPPING_DOWN_ELECTED, [])  # not restored before they are saved
    d.role(False)
    assert d.state == STEPPING_DOWN
    d.role(True)
    d.down()
    assert (d.state, node.done()) == (RESTORING, ["remember", "restore"])


def test_stop_during_a_restore_steps_down_after_it_and_stops() -> None:
    d, node, clock = machine(RESTORING)
    stopped = d.stop()
    assert (d.state, node.done(), stopped.called) == (RESTORING_STOP, [], False)
    d.role(False)  # the node's link closing tells its role again
    d.stop()
    assert d.state == RESTORING_STOP
    d.restore_ended(True)
    assert (d.state, node.done(), stopped.called) == (STOPPING, ["step_down"], False)
    d.down()
    assert (d.state, node.done(), stopped.called) == (STOPPED, [], True)


def test_stop_during_a_restore_that_fails_stops_without_a_retry() -> None:
    d, node, clock = machine(RESTORING)
    stopped = d.stop()
    d.restore_ended(False)
    assert (d.state, node.done(), stopped.called) == (STOPPED, [], True)
    assert clock.getDelayedCalls() == []


def test_stop_of_an_owner_stops_the_link_at_once_then_saves_the_agents() -> None:
    d, node, clock = machine(OWNER)
    stopped = d.stop()
    assert (d.state, node.done(), stopped.called) == (STOPPING, ["stop_link", "step_down"], False)
    d.down()
    assert (d.state, stopped.called) == (STOPPED, True)


def test_stop_after_the_election_stepped_down_waits_for_the_agents_save() -> None:
    d, node, clock = machine(OWNER)
    d.role(False)  # the elector's stop calls its hook first
    assert node.done() == ["stop_link", "step_down"]
    stopped = d.stop()
    assert (d.state, node.done(), stopped.called) == (STOPPING, [], False)
    d.down()
    assert (d.state, stopped.called) == (STOPPED, True)


def test_stop_while_waiting_to_retry_or_for_the_directory_stops_at_once() -> None:
    d, node, clock = machine(RETRYING)
    assert d.stop().called and d.state == STOPPED
    assert clock.getDelayedCalls() == []
    w = Duty(Node(), task.Clock(), RETRY)
    w.role(True)
    assert w.state == WAITING
    assert w.stop().called and w.state == STOPPED


def test_an_input_missing_from_the_table_raises_and_changes_nothing() -> None:
    d, node, clock = machine(STANDBY)
    for name in (RESTORED, FAILED, DOWN, TIMER):
        with pytest.raises(RuntimeError, match=f"no transition for '{name}' in state 'standby'"):
            d.input(name)
        assert (d.state, node.done()) == (STANDBY, [])
    d, node, clock = machine(OWNER)
    with pytest.raises(RuntimeError, match="no transition for 'restored' in state 'owner'"):
        d.restore_ended(True)
    assert (d.state, node.done()) == (OWNER, [])


def test_an_input_fed_by_an_output_is_taken_after_that_transitions_outputs() -> None:
    """A restore that fails at once (in its own output) still lets its transition finish first."""
    clock = task.Clock()

    class Quick(Node):
        def restore(self) -> None:
            super().restore()
            d.restore_ended(False)

    node = Quick()
    d = Duty(node, clock, RETRY)
    d.domain()
    d.role(True)
    assert (d.state, node.done()) == (RETRYING, ["remember", "restore"])
    assert len(clock.getDelayedCalls()) == 1


def test_the_role_and_the_directory_may_be_told_in_every_state_of_a_running_node() -> None:
    """The node tells its role at every change of role or NATS link, the container the directory."""
    for state in STATES:
        assert (state, LOST) in TRANSITIONS and (state, DOMAIN) in TRANSITIONS and (state, STOP) in TRANSITIONS
        if state not in (RESTORING_STOP, STOPPING, STOPPED):  # the node tells "elected" only while running
            assert (state, ELECTED) in TRANSITIONS, state
    assert {s for s, _ in TRANSITIONS} == set(STATES) and {i for _, i in TRANSITIONS} == set(INPUTS)
    assert all(new in STATES for new, _ in TRANSITIONS.values())


def test_the_docstring_shows_the_whole_table() -> None:
    """The module's diagram is the table (the pairs that change nothing aside): read one, know the other."""
    assert duty.__doc__ is not None
    shown = {}
    for state, name, new, outputs in re.findall(r"^ {4}(\S+) +--(\w+)--> +(\S+) *(.*)$", duty.__doc__, re.M):
        shown[(state, name)] = (new, tuple(o.strip() for o in outputs.split(",") if o.strip()))
    assert shown == {k: v for k, v in TRANSITIONS.items() if v != (k[0], ())}

"""``[cluster]``: several UCS nodes sharing one Asterisk and one store (issue 20).

Off by default: without ``[cluster]`` (or with ``enabled = false``) UCS is the
single process it always was.  When enabled, the nodes elect the one that owns
the AMI link in PostgreSQL and share the domain events over NATS JetStream
(docs/cluster.md); the checks here are the ones an operator gets wrong: URLs,
names that end up in NATS subjects, and election timings that would let a new
owner take over before the old one stepped down.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from ucs.config.kinds import Kind, _Invalid, _wrong_type, boolean, integer, number, option, string, string_list

#: A DNS-like name: what seed 003's ``instance-domain`` looks like, and safe in NATS subjects once
#: its dots are replaced.
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_NODE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _nats_url(v: str) -> str:
    scheme, sep, rest = v.partition("://")
    host, _, port = rest.rpartition(":") if ":" in rest.rpartition("@")[2] else (rest, "", "")
    if not sep or scheme not in ("nats", "tls", "ws", "wss") or not rest or "/" in rest.rstrip("/"):
        raise _Invalid(f"{v!r} is not a NATS URL; use URLs like 'nats://127.0.0.1:4222' or 'tls://nats.example.com:4222'")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise _Invalid(f"{v!r} has a bad port {port!r}; use a port 1-65535 (NATS's is 4222)")
    return v


def _domain() -> Kind:
    accepted = "a domain name like 'cc.example.com' (letters, digits, '-', dots between), or \"\""

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if v and (len(v) > 200 or not _DOMAIN.fullmatch(v)):
            raise _Invalid(f"{v!r} is not accepted; use {accepted}")
        return v.lower()

    return Kind(accepted, check, "string")


def _node() -> Kind:
    accepted = "1-64 letters, digits, '-' or '_', or \"\" for the host name"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if v and not _NODE.fullmatch(v):
            raise _Invalid(f"{v!r} is not accepted; use {accepted}")
        return v

    return Kind(accepted, check, "string")


@attrs.frozen
class ClusterConfig:
    """Several UCS nodes on one Asterisk: the election of the AMI owner (PostgreSQL) and the
    shared events (NATS JetStream); see docs/cluster.md. Needs a `postgresql://` store."""

    enabled: bool = option(False, boolean(),
                           "Run as one node of a cluster. Off: UCS is a single process, as without this section.")
    nats: tuple[str, ...] = option(("nats://127.0.0.1:4222",),
                                   string_list("a list of NATS URLs like 'nats://127.0.0.1:4222'", _nats_url),
                                   "NATS servers (with JetStream) the node connects to; several for a NATS cluster.")
    domain: str = option("", _domain(),
                         "The instance domain (seed 003's `instance-domain`) the nodes serve together: it names "
                         "the NATS subjects (`ucs.<domain>.events.calls`, dots as `_`) and the election's lock. "
                         "Empty: `iserver.instance_domain`; one of them must be set.")
    node: str = option("", _node(), "This node's name in logs, `/health` and the owner's events; empty: the host name.")
    pbx: str = option("", string("a name for the Asterisk, or \"\""),
                      "The Asterisk the nodes elect an owner for, as the election's lock names it: the same on "
                      "every node. Empty: `[ami] host:port` as written in each node's file -- then every node "
                      "must write it the same way (`10.0.0.5` and `pbx.example.com` would be two Asterisks, "
                      "and two owners).")
    retry_interval: float = option(1.0, number(0.1, 60, "seconds"),
                                   "A standby tries to take the AMI owner's lock this often.")
    check_interval: float = option(1.0, number(0.1, 60, "seconds"),
                                   "The owner checks its lock's connection to PostgreSQL this often.")
    step_down_after: float = option(3.0, number(0.5, 300, "seconds"),
                                    "The owner steps down (stops its AMI link) when its lock's connection has not "
                                    "answered for this long (libpq `tcp_user_timeout` and the check's deadline). "
                                    "A node that wins the lock holds it `check_interval + step_down_after` before "
                                    "it connects AMI, so that an old owner cut off from PostgreSQL has stepped "
                                    "down: failover takes about `retry_interval` + that.")
    release_after: int = option(6, integer(3, 600, "an integer number of seconds 3-600"),
                                "PostgreSQL drops a silent owner's session, and so its lock, after this long "
                                "(server-side TCP keepalives: idle `release_after - 3` s, then 3 probes 1 s apart). "
                                "Must be more than `check_interval + step_down_after`: the old owner steps down "
                                "before a standby can take over.")
    request_timeout: float = option(5.0, number(0.1, 300, "seconds"),
                                    "A command sent to the owner over NATS fails when no reply comes within this.")
    takeover_wait: float = option(12.0, number(0, 300, "seconds"),
                                  "A standby's API call that is the owner's work, made while no node serves the "
                                  "owner's commands (an election or a take-over in progress: about 5 s after the "
                                  "owner dies, with the default timings), is sent again "
                                  "every 100-250 ms for up to this long before the caller gets the 503 \"try "
                                  "again\" error. 0: the 503 at once.")
    snapshot_interval: float = option(10.0, number(0.5, 3600, "seconds"),
                                      "The owner stores the model's snapshot (for nodes that start late) this often.")
    owner_silence: float = option(3.0, number(2, 300, "seconds (at least 2: the owner beats every second)"),
                                  "A standby that hears no beat from the owner of the AMI link for this long, while "
                                  "its own NATS link is up, says so on `/health` (`owner: \"unheard\"`) and tells its "
                                  "bars; a standby whose replica stands behind the owner's beat this long follows "
                                  "the stream again.")
    stream_max_age: float = option(3600.0, number(60, 30 * 86400, "seconds"),
                                   "Events are kept in the JetStream stream this long (a snapshot is newer).")


def check_cluster(source: str, cluster: ClusterConfig, store_url: str, iserver_domain: str,
                  demo: bool = False) -> None:
    """Checks of ``[cluster]`` that involve other sections (called by the loader)."""
    from ucs.config.kinds import ConfigError

    if not cluster.enabled:
        return
    if demo:
        raise ConfigError(
            f"{source}: cluster.enabled: the demo runs a simulated PBX inside each node, but the nodes of a "
            "cluster share one Asterisk; set demo.enabled = false and point [ami] at it (the simulator runs "
            "alone as `ucs-sim`), or cluster.enabled = false", source=source, key="cluster.enabled")
    if not store_url.lower().startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{source}: cluster.enabled: a cluster needs the PostgreSQL store (the nodes share it and elect the "
            f"AMI owner in it), but store.url is {store_url.partition('://')[0]!r}; "
            "use store.url = \"postgresql://USER@HOST:PORT/DB\" or cluster.enabled = false",
            source=source, key="cluster.enabled")
    if not (cluster.domain or iserver_domain):
        raise ConfigError(
            f"{source}: cluster.domain: '' is empty and so is iserver.instance_domain; set cluster.domain to "
            "the instance domain the nodes serve, e.g. \"cc.example.com\"", source=source, key="cluster.domain")
    if iserver_domain and not _DOMAIN.fullmatch(iserver_domain) and not cluster.domain:
        raise ConfigError(
            f"{source}: cluster.domain: '' is empty and iserver.instance_domain {iserver_domain!r} cannot name "
            "NATS subjects; set cluster.domain to a domain name like \"cc.example.com\"",
            source=source, key="cluster.domain")
    if cluster.check_interval + cluster.step_down_after >= cluster.release_after:
        raise ConfigError(
            f"{source}: cluster.release_after: {cluster.release_after!r} is not more than cluster.check_interval "
            f"+ cluster.step_down_after ({cluster.check_interval + cluster.step_down_after:g}): a standby could "
            "take the AMI link before the old owner steps down; use a larger release_after or smaller intervals",
            source=source, key="cluster.release_after")

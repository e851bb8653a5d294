"""The sections about how the UCS process runs and what it talks to.

``[ami]`` (the link to Asterisk), ``[web]`` (the HTTP/WebSocket server),
``[iserver]``, ``[store]``, ``[plugins]``, ``[log]`` and ``[demo]``: the
process's own plumbing, apart from the contact-center rules in
:mod:`ucs.config.callcenter`. The kinds only these sections use (store URLs,
URL paths, origins, networks, AMI event classes) live here with them.
"""

from __future__ import annotations

from typing import Any

import attrs

from ucs.config.kinds import (
    Kind,
    _Invalid,
    _wrong_type,
    boolean,
    choice,
    integer,
    number,
    option,
    port,
    string,
    string_list,
    string_table,
)
from ucs.store.url import StoreURLError, parse_store_url

tcp_port = port  # DemoConfig has a field named port

# --- kinds of values only these sections use --------------------------------


def _store_url() -> Kind:
    accepted = "sqlite:///PATH or postgresql://USER@HOST:PORT/DB"

    def check(v: Any) -> str:
        try:
            parse_store_url(v)
        except StoreURLError as e:
            raise _Invalid(str(e)) from None
        return v

    return Kind(accepted, check, "string")


def _url_path() -> Kind:
    accepted = "a URL path starting with '/'"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if not v.startswith("/") or any(c.isspace() for c in v):
            raise _Invalid(f"{v!r} is not a URL path; use {accepted}")
        return v

    return Kind(accepted, check, "string")


def _network(v: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_network(v.strip(), strict=False))
    except ValueError:
        raise _Invalid(f"{v!r} is not an IP address or network; use addresses like '10.0.0.5' "
                       "or networks like '10.0.0.0/24'") from None


def _origin(v: str) -> str:
    if v == "*":
        return v
    scheme, sep, host = v.partition("://")
    if not sep or scheme not in ("http", "https") or not host or "/" in host:
        raise _Invalid(f"{v!r} is not an origin; use '*' or origins like 'https://crm.example.com'")
    return v.lower()


def _ami_events() -> Kind:
    classes = ("system", "call", "log", "verbose", "command", "agent", "user", "config",
               "dtmf", "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc",
               "test", "security", "message", "all")
    accepted = "'on', 'off' or a comma-separated list of AMI event classes like 'system,call,agent'"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        value = v.strip().lower()
        if value in ("on", "off"):
            return value
        parts = [p.strip() for p in value.split(",")]
        bad = [p for p in parts if p not in classes]
        if bad or not parts:
            raise _Invalid(f"{v!r} is not accepted; use {accepted}")
        return ",".join(parts)

    return Kind(accepted, check, "string")


# --- the sections ------------------------------------------------------------


@attrs.frozen
class AMIConfig:
    """How UCS connects to Asterisk's Manager Interface (manager.conf)."""

    host: str = option("127.0.0.1", string("a host name or IP address", nonempty=True),
                       "Asterisk host to connect to.")
    port: int = option(5038, port(), "AMI TCP port (manager.conf `port`).")
    username: str = option("ucs", string("a manager.conf user name", nonempty=True),
                           "AMI user (a `[section]` of manager.conf).")
    secret: str = option("", string(), "That user's `secret`.")
    auth: str = option("md5", choice("md5", "plain"),
                       "`md5`: challenge-response login, the secret never crosses the wire; "
                       "`plain`: the secret is sent as is.")
    events: str = option("on", _ami_events(),
                         "The `Events:` of the Login action: `on` (every class), `off`, or the event "
                         "classes UCS needs, e.g. `system,call,agent` (much less dialplan noise).")
    filters: tuple[str, ...] = option((), string_list("a list of AMI Filter expressions"),
                                      "AMI `Filter` expressions sent after login, e.g. "
                                      "`[\"!Event: RTCP*\", \"!Event: VarSet\"]`; Asterisk then sends only "
                                      "the events they let through.")
    reconnect_min_delay: float = option(0.5, number(0.01, 3600, "seconds"),
                                        "First delay before reconnecting after the link drops.")
    reconnect_max_delay: float = option(30.0, number(0.01, 3600, "seconds"),
                                        "The reconnect delay doubles up to this.")
    ping_interval: float = option(20.0, number(0, 3600, "seconds"),
                                  "Send a `Ping` action this often to detect a dead link (0: never).")
    action_timeout: float = option(10.0, number(0.1, 3600, "seconds"),
                                   "An action with no response after this long fails with a timeout.")


@attrs.frozen
class WebConfig:
    """The HTTP/WebSocket server the agent bar (operator.js) and the demo CRM talk to."""

    listen: str = option("127.0.0.1", string("an IP address to listen on", nonempty=True),
                         "Address to listen on: `127.0.0.1` for this machine only, `0.0.0.0` or `::` for all.")
    port: int = option(8080, port(allow_zero=True), "TCP port to listen on.")
    backlog: int = option(1024, integer(1, 65535),
                          "Listen backlog of the web port: connections the kernel queues until UCS "
                          "accepts them. A reconnect storm (thousands of agent bars at once after a "
                          "network blip) overflows a short queue and each refused bar waits 1, 3, 7 … s "
                          "to retry. Linux caps it at `net.core.somaxconn` "
                          "(`/proc/sys/net/core/somaxconn`, 4096 by default since Linux 5.4); UCS logs "
                          "a warning at start if this is larger, and the kernel uses the smaller value.")
    tls_cert: str = option("", string("a path to a PEM file, or \"\""),
                           "PEM certificate (chain) for HTTPS/WSS; empty: plain HTTP. Set with `tls_key`.")
    tls_key: str = option("", string("a path to a PEM file, or \"\""),
                          "PEM private key for `tls_cert`.")
    allowed_origins: tuple[str, ...] = option(
        (), string_list("a list of origins like 'https://crm.example.com', or ['*']", _origin),
        "Web origins (CRM pages) allowed to open the agent-bar WebSocket. Empty: only pages "
        "served by UCS itself; `[\"*\"]`: any origin.")
    trusted_proxies: tuple[str, ...] = option(
        (), string_list("a list of IP addresses or networks like '10.0.0.5' or '10.0.0.0/24'", _network),
        "Reverse proxies (nginx, HAProxy) in front of UCS whose `X-Forwarded-For` is believed: a "
        "WebSocket from one of them counts as coming from the right-most address of that header "
        "that is not itself a trusted proxy (login throttling, `identifyIP`). Empty: the header "
        "is ignored and the socket's address counts.")
    ws_path: str = option("/ws", _url_path(), "URL path of the agent bar's WebSocket.")
    ping_interval: float = option(20.0, number(1, 3600, "seconds"),
                                  "WebSocket ping to every client this often, spread evenly over "
                                  "the interval by one timer for all clients.")
    ping_timeout: float = option(10.0, number(1, 3600, "seconds"),
                                 "A client from which nothing (no pong, no request) arrived within this "
                                 "after a ping is dropped.")
    max_request_size: int = option(65536, integer(256, 16 << 20),
                                   "Larger requests get an error reply (bytes).")
    max_frame_size: int = option(1 << 20, integer(1024, 64 << 20),
                                 "Larger frames close the connection (bytes).")
    max_client_buffer: int = option(1 << 20, integer(4096, 256 << 20),
                                    "Bytes waiting for a slow client before it is dropped.")
    max_pending: int = option(32, integer(1, 10000), "Requests one client may have in progress at once.")
    max_connections: int = option(0, integer(0, 1_000_000), "WebSocket connections at most (0: no limit).")
    resume_window: float = option(120.0, number(0, 86400, "seconds"),
                                  "A logged-in session survives a lost connection this long (the bar "
                                  "resumes it on reconnect).")
    request_timeout: float = option(10.0, number(0.1, 600, "seconds"),
                                    "A client must send its whole HTTP request (headers and body; the "
                                    "WebSocket upgrade too) within this long of connecting or of its "
                                    "previous response, else it is dropped (slowloris clients); an idle "
                                    "keep-alive connection is closed after it too. An open WebSocket is "
                                    "not affected: the ping (`ping_interval`) watches it.")
    open_handshake_timeout: float = option(10.0, number(0.1, 600, "seconds"),
                                           "A WebSocket whose handshake autobahn has not finished this "
                                           "long after the HTTP upgrade request arrived is closed.")
    coalesce_delay: float = option(0.25, number(0, 60, "seconds"),
                                   "Changes that concern many agents (waiting callers) are sent at most "
                                   "this often.")
    waiting_rate: int = option(250, integer(1, 1_000_000),
                               "Waiting-caller messages a second, at most, to the agents of one set of "
                               "queues: a group of N agents gets a new count at most every "
                               "max(`coalesce_delay`, N / `waiting_rate`) seconds, so a busy queue of 500 "
                               "agents sends a count every 2 s, not 500 messages four times a second.")


@attrs.frozen
class IServerConfig:
    """The Interaction Processor service (JSON over WebSocket, seed 003)."""

    enabled: bool = option(True, boolean(), "Serve the Interaction Processor protocol.")
    path: str = option("/iserver", _url_path(), "URL path of its WebSocket on the web server.")
    instance_domain: str = option("", string("a domain name, or \"\""),
                                  "The `instance-domain` of the service information sent to clients; "
                                  "empty: the host name the client connected to.")


@attrs.frozen
class StoreConfig:
    """Where UCS keeps CDRs, agent state and statistics."""

    url: str = option("sqlite:///var/ucs.db", _store_url(),
                      "`sqlite:///var/ucs.db` (relative path), `sqlite:////abs/path.db`, or "
                      "`postgresql://USER[:PASSWORD]@HOST:PORT/DB` (several UCS nodes; libpq "
                      "parameters may follow, e.g. `?sslmode=require`).")
    pool_size: int = option(4, integer(1, 64), "PostgreSQL only: connections (and threads) in the pool. "
                            "SQLite always uses one thread.")


@attrs.frozen
class PluginsConfig:
    """Customer plugins (Python files) loaded at start."""

    directory: str = option("plugins", string("a directory path"),
                            "Directory scanned for plugin files at start (relative to where UCS starts).")
    hook_budget: float = option(0.05, number(0.001, 60, "seconds"),
                                "A plugin hook that runs longer than this on the reactor thread is logged "
                                "with its plugin, hook and time.")
    classes: dict[str, str] = option({}, string_table("a table of plugin file name to class name"),
                                     "For plugin files without `UCS_PLUGIN`: which class to create, "
                                     "e.g. `{ transform = \"MetadataTransformer\" }`.")
    packages: tuple[str, ...] = option(("twisted.plugins",), string_list("a list of package names"),
                                       "Packages searched for installed `IUCSPlugin` providers "
                                       "(twisted.plugin discovery).")


@attrs.frozen
class LogConfig:
    """Logging (to stdout with `twistd -n`, else to twistd's --logfile)."""

    level: str = option("info", choice("debug", "info", "warn", "error", "critical"),
                        "Least severe level logged.")
    format: str = option("text", choice("text", "json"),
                         "`text`: one readable line per event; `json`: one JSON object per line.")


@attrs.frozen
class DemoConfig:
    """The demo: a simulated PBX inside UCS, with phones and callers (also `twistd ucs --demo`)."""

    enabled: bool = option(False, boolean(),
                           "Run the simulated PBX inside UCS and point `[ami]` at it (ignores `[ami]`).")
    call_rate: float = option(2.0, number(0, 600, "calls per minute"),
                              "Simulated customer calls per minute (0: none, calls only when asked).")
    port: int = option(0, port(allow_zero=True),
                       "TCP port the simulated PBX's AMI listens on (on 127.0.0.1; 0: any free port).")
    phones: int = option(4, integer(1, 1000), "Simulated agent phones (SIP/1001, SIP/1002, ...).")
    softphone: bool = option(True, boolean(),
                             "Also a WebRTC line, `PJSIP/webrtc1` (number 2100), for the agent bar's softphone: "
                             "user `webagent` (password `demo-pass-web`) picks it and the browser is the phone. "
                             "Needs aiortc (`scripts/setup.sh` installs it); without it the demo runs without.")
    softphone_port: int = option(8088, tcp_port(allow_zero=True),
                                 "TCP port of the simulated PBX's SIP WebSocket for the softphone (on 127.0.0.1, "
                                 "as Asterisk's `http.conf`; 0: any free port).")

"""The sections about how the contact center works: calls, lookup, logins, agents.

``[calls]`` (numbers and trunks), ``[lookup]`` (caller names), ``[auth]``
(the first administrator, SSO, login throttling) and ``[agents]`` (ACW,
statuses, the statistics day): the rules of the contact center, apart from
the process plumbing in :mod:`ucs.config.service`. The kinds only these
sections use (country code, dial prefix, time zone) live here with them.
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
    string,
    string_list,
    table_list,
)

# --- kinds of values only these sections use --------------------------------


def _country_code() -> Kind:
    accepted = "a country calling code without '+', like \"420\" or \"1\""

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        code = v.lstrip("+")
        if not code.isdigit() or not 1 <= len(code) <= 3:
            raise _Invalid(f"{v!r} is not a country calling code; use {accepted}")
        import phonenumbers  # imported here: only when a config file is checked

        if int(code) not in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            raise _Invalid(f"{v!r} is not an assigned country calling code; use {accepted}")
        return code

    return Kind(accepted, check, "string")


def _dial_prefix() -> Kind:
    accepted = "digits (or \"\" for none)"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if v and not v.isdigit():
            raise _Invalid(f"{v!r} is not digits; use {accepted}")
        return v

    return Kind(accepted, check, "string")


def _feature_keys() -> Kind:
    accepted = "1 to 8 DTMF keys (0-9, *, #, A-D), as in features.conf"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if not 1 <= len(v) <= 8 or any(c not in "0123456789*#ABCD" for c in v):
            raise _Invalid(f"{v!r} is not accepted; use {accepted}")
        return v

    return Kind(accepted, check, "string")


def _timezone() -> Kind:
    accepted = "an IANA time zone name such as 'Europe/Prague' or 'UTC'"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise _Invalid(f"{v!r} is not a known time zone; use {accepted}") from None
        return v

    return Kind(accepted, check, "string")


def _status_reason() -> Kind:
    accepted = "a short AUX reason (one line, 1-64 characters, not 'ACW' or 'suspended')"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        text = v.strip()
        if not text or len(text) > 64 or any(c in text for c in "\r\n\x00") or text in ("ACW", "suspended"):
            raise _Invalid(f"{v!r} is not accepted; use {accepted}")
        return text

    return Kind(accepted, check, "string")


def _token() -> Kind:
    accepted = "\"\" (none) or a secret of 16 to 200 printable ASCII characters"

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if v and (not 16 <= len(v) <= 200 or not all(33 <= ord(c) < 127 for c in v)):
            raise _Invalid(f"the token is not accepted ({len(v)} characters); use {accepted}")
        return v

    return Kind(accepted, check, "string")


# --- the sections ------------------------------------------------------------


@attrs.frozen
class CallsConfig:
    """How calls are read: numbers and which devices are trunks."""

    country_code: str = option("420", _country_code(),
                               "Country calling code of the PBX, for E.164 normalisation of national numbers.")
    dial_prefix: str = option("", _dial_prefix(),
                              "Digits agents dial to get an outside line (e.g. `0`), stripped before "
                              "a number is normalised.")
    trunks: tuple[str, ...] = option(
        (), string_list("a list of device patterns like 'SIP/carrier*'"),
        "Device patterns (shell-style: `*`, `?`, `[...]`) that are trunks, e.g. "
        "`[\"SIP/carrier*\", \"PJSIP/trunk-*\"]`; every other device is a line. Empty (the default): "
        "a device whose name after the technology is all digits (`SIP/1001`) is a line, any "
        "other (`SIP/carrier`) a trunk.")
    lines: tuple[str, ...] = option(
        (), string_list("a list of device patterns like 'PJSIP/alice*'"),
        "Device patterns that are always lines (agents' phones), checked before `trunks`.")
    atxfer_swap: str = option("*4", _feature_keys(),
                              "features.conf `atxferswap`: the keys UCS presses for the agent "
                              "(`call.swap`) during an attended transfer.")
    atxfer_threeway: str = option("*3", _feature_keys(),
                                  "features.conf `atxferthreeway`: the keys UCS presses for the agent "
                                  "(`call.conference`) during an attended transfer.")


@attrs.frozen
class LookupConfig:
    """Caller lookup: names for incoming numbers from a static table or an HTTP JSON service."""

    directions: tuple[str, ...] = option(("INCOMING",), string_list("a list of INCOMING, OUTGOING, INTERNAL"),
                                         "Which calls are looked up: INCOMING by the caller's number, OUTGOING by the "
                                         "number called, INTERNAL by the calling colleague's.")
    normalized: bool = option(True, boolean(), "Look up the E.164 number (`+420…`) rather than as dialled.")
    sources: tuple[dict[str, Any], ...] = option(
        (), table_list("a list of tables, see docs/plugins.md (Caller lookup)"),
        "Lookup sources asked in order, e.g. `[{ id = 1, type = \"static\", table = { \"+420777123456\" = "
        "\"ACME\" } }, { id = 2, type = \"http\", url = \"https://crm/lookup?number={number}\" }]`.")


@attrs.frozen
class AuthConfig:
    """Logging in: the first administrator, SSO tokens (seed 002) and brute-force throttling."""

    admin_password: str = option("", string(),
                                 "Password of the `admin` superuser created on first start; empty: a random "
                                 "one is generated and printed once in the log.")
    sso_secret: str = option("", string(),
                             "Pre-shared secret of SSO tokens (`base64(sha1(secret + username + timestamp) "
                             "+ username + timestamp)`, the timestamp in plain decimal seconds without a "
                             "leading zero); empty: SSO login is refused (the demo uses `demo-sso-secret`).")
    sso_window: float = option(120.0, number(1, 86400, "seconds"),
                               "An SSO token is accepted once, and only while its timestamp is at most "
                               "this far from UCS's clock.")
    max_failures: int = option(5, integer(1, 1000),
                               "Failed logins (wrong password or SSO token) of one user name from one address "
                               "before that user must wait to log in from that address; other addresses and "
                               "other users of the address are not affected.")
    backoff: float = option(10.0, number(0.1, 86400, "seconds"),
                            "The first wait after `max_failures`; each further failure doubles it, up to "
                            "`lockout`.")
    lockout: float = option(300.0, number(1, 86400, "seconds"),
                            "The longest wait; failures are forgotten this long after the last one's wait "
                            "ended, and `address_max_failures` counts over this period.")
    address_max_failures: int = option(100, integer(1, 1_000_000),
                                       "Failed logins from one address, whatever the user names, within "
                                       "`lockout` seconds before that address must wait. Keep it well above "
                                       "`max_failures`: a contact center's agents may all come from one NAT "
                                       "address.")


@attrs.frozen
class AgentsConfig:
    """Agents: after-call work, the first status after login, when the statistics day ends."""

    acw_seconds: float = option(15.0, number(0, 3600, "seconds"),
                                "After-call work after a queue call the agent served (talked with its "
                                "customer: answered it, got it by a transfer or a conference; not a "
                                "colleague's consultation), before the agent is back to the status "
                                "before the call (0: no ACW). The agent's queues are paused "
                                "(reason ACW) as soon as they serve a queue call, their status still "
                                "READY, so no next caller rings them between the call and ACW.")
    acw_extend_step: float = option(30.0, number(1, 3600, "seconds"),
                                    "What one *Extend* of the agent bar adds to the wrap-up (agent.extendWrapUp).")
    acw_max_seconds: float = option(300.0, number(0, 86400, "seconds"),
                                    "The longest a wrap-up may last with the agent's extensions, counted from its "
                                    "start (agent.extendWrapUp stops there).")
    initial_status: str = option("aux", choice("ready", "aux", "offline"),
                                 "Status of an agent right after pairing a phone: `aux` (not ready, with "
                                 "`initial_reason`) until the agent chooses READY, as Cisco Finesse does "
                                 "(seed 002 does not say); `ready` takes queue calls at once. A user who "
                                 "already works in another tab, or changes phones, keeps their status.")
    initial_reason: str = option("Login", _status_reason(),
                                 "The AUX reason of `initial_status = \"aux\"`; it need not be one of the "
                                 "directory's AUX reasons (the agent cannot choose it, only leave it).")
    session_expiry: str = option("logout", choice("logout", "aux"),
                                 "What happens to an agent whose agent bar went away (the tab closed, the "
                                 "network lost) and did not come back within `[web] resume_window`, with no "
                                 "other tab of theirs open: `logout` removes their phone from every queue "
                                 "(OFFLINE, logged out), `aux` keeps them in their queues, paused with "
                                 "`session_expiry_reason`. Either way a closed tab takes no queue call. The same "
                                 "after a restart of UCS for an agent none of whose bars logs in again within "
                                 "`resume_window`.")
    session_expiry_reason: str = option("Disconnected", _status_reason(),
                                        "The AUX reason of `session_expiry = \"aux\"`.")
    timezone: str = option("UTC", _timezone(),
                           "Time zone whose midnight resets the daily statistics.")
    hook_timeout: float = option(5.0, number(0.01, 600, "seconds"),
                                 "A plugin's status-change hook may take this long (it runs in a thread); "
                                 "after that the requested change goes ahead and the hook is logged.")
    confirm_timeout: float = option(5.0, number(0.1, 600, "seconds"),
                                    "How long a status change waits for Asterisk's queue-member event "
                                    "before it fails as not confirmed.")


def _absolute_dir(empty_ok: bool) -> Kind:
    accepted = "an absolute directory path such as '/var/spool/asterisk/monitor/ucs'" + (" (or \"\")" if empty_ok else "")

    def check(v: Any) -> str:
        if not isinstance(v, str):
            raise _wrong_type(v, accepted)
        if not v and empty_ok:
            return v
        if not v.startswith("/") or any(c in v for c in ",|()\r\n\x00") or "/../" in v + "/":
            raise _Invalid(f"{v!r} is not accepted; use {accepted} without , | ( ) or ..")
        return v.rstrip("/") or "/"

    return Kind(accepted, check, "string")


@attrs.frozen
class RecordingConfig:
    """Call recording: where Asterisk's MixMonitor writes the files and where UCS reads them."""

    directory: str = option("/var/spool/asterisk/monitor/ucs", _absolute_dir(False),
                            "Where Asterisk writes the recordings UCS starts (the `File` of the AMI "
                            "`MixMonitor` action, a path on the Asterisk machine). Asterisk creates it.")
    local_directory: str = option("", _absolute_dir(True),
                                  "Where UCS reads the same files to serve them (`GET /recording/…`): the "
                                  "directory mounted from the Asterisk machine. Empty: `directory` (UCS runs "
                                  "on the Asterisk machine).")
    format: str = option("wav", choice("wav", "WAV", "gsm"),
                         "The file format, from the file name's extension: `wav` (16-bit PCM, 8 kHz for "
                         "telephone audio), `WAV` (GSM in WAV, wav49, about a tenth of the size) or `gsm`.")
    options: str = option("", string("MixMonitor options such as 'b' (letters and their arguments)"),
                          "More MixMonitor options (app_mixmonitor.c): e.g. `b` to record only while "
                          "bridged. UCS adds `i(…)` itself to learn the recording's id.")
    link_lifetime: float = option(300.0, number(5, 86400, "seconds"),
                                  "How long a recording's link (`recording.url`) may be used; it names a "
                                  "random ticket (256 bits), never the file, and is given only to a user "
                                  "whose scope covers the call.")


@attrs.frozen
class SupervisorConfig:
    """Supervisors: the queue wallboard's service level, its token, the statistics by interval."""

    service_level_seconds: float = option(20.0, number(1, 3600, "seconds"),
                                          "A queue call counts as answered within the service level when an "
                                          "agent answered it within this many seconds of entering the queue "
                                          "(service level = those calls / the calls answered and abandoned).")
    wallboard_token: str = option("", _token(),
                                  "A secret that opens the read-only `/wallboard` page (`/wallboard?token=…`) and "
                                  "`wallboard.subscribe` without a login, for a screen on the wall (\"\": a "
                                  "supervisor logs in). It shows every queue; anyone with the URL sees it, so treat the URL as a "
                                  "secret.")
    save_interval: float = option(60.0, number(1, 3600, "seconds"),
                                  "How often the statistics by interval (agents and queues, 15 minutes each) "
                                  "are written to the store while UCS runs; also on stop.")

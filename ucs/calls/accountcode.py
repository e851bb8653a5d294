"""Account codes (seed 002 ``setAccountCode``) and call metadata (``cdr.metadata``).

An account code is what the agent says the call was about.  A call may get
several: they are kept in one string, entries separated by ``|`` (the
separator seed 000's metadata example uses), a sub-code joined to its code by
``/``::

    "Sales"                       one code
    "Sales/Upgrade"               a code and its sub-code
    "Sales/Upgrade|Complaint"     two entries

When the directory defines call reasons, a code must be one of the top-level
ones and a sub-code one of that code's children; without any, every code
is accepted that does not contain a separator.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.logger import Logger

from ucs import wirejson
from ucs.directory.model import CallReason
from ucs.error import InvalidDataInput

SEPARATOR = "|"
SUB_SEPARATOR = "/"
MAX_CODE = 64
#: A call's metadata (all of it, as JSON) at most this many bytes, and nested at most
#: this many levels (the metadata object itself is level 1).
MAX_METADATA_BYTES = 32 * 1024
MAX_METADATA_DEPTH = 8

MetadataTransformer = Callable[[str, dict[str, Any]], Any]

log = Logger(namespace="ucs.calls.accountcode")


def _plain(value: Any, arg: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidDataInput({arg: f"{value!r} is not accepted; give a non-empty string"})
    value = value.strip()
    if len(value) > MAX_CODE:
        raise InvalidDataInput({arg: f"is {len(value)} characters long; at most {MAX_CODE} are accepted"})
    if SEPARATOR in value or SUB_SEPARATOR in value:
        raise InvalidDataInput({arg: f"{value!r} contains {SEPARATOR!r} or {SUB_SEPARATOR!r}, which separate codes"})
    return value


def check_code(reasons: Iterable[CallReason], code: Any, sub_code: Any = None) -> str:
    """The account-code entry for ``code`` (and ``sub_code``), checked against
    the call reasons; :class:`InvalidDataInput` naming the argument otherwise."""
    code = _plain(code, "accountCode")
    sub = _plain(sub_code, "subAccountCode") if sub_code is not None else None
    reasons = list(reasons)
    if reasons:
        tops = {r.code: r for r in reasons if r.parent_id is None}
        top = tops.get(code)
        if top is None:
            known = ", ".join(sorted(tops)) or "none"
            raise InvalidDataInput({"accountCode": f"{code!r} is not a call reason; the call reasons are: {known}"})
        if sub is not None:
            children = sorted(r.code for r in reasons if r.parent_id == top.id)
            if sub not in children:
                known = ", ".join(children) if children else f"{code} has none"
                raise InvalidDataInput(
                    {"subAccountCode": f"{sub!r} is not a sub-code of {code}; its sub-codes are: {known}"}
                )
    return code if sub is None else f"{code}{SUB_SEPARATOR}{sub}"


def entries(account_code: str | None) -> list[str]:
    return [e for e in (account_code or "").split(SEPARATOR) if e]


def merge(current: str | None, entry: str, override: bool) -> str:
    """``current`` with ``entry`` set: alone (``override``) or appended.

    Appending an entry already there changes nothing; appending ``Code/Sub``
    to a call that has the bare ``Code`` refines that entry in place.
    """
    if override:
        return entry
    have = entries(current)
    if entry in have:
        return SEPARATOR.join(have)
    code = entry.split(SUB_SEPARATOR, 1)[0]
    if entry != code and code in have:
        have[have.index(code)] = entry
    else:
        have.append(entry)
    return SEPARATOR.join(have)


def transform(fn: MetadataTransformer | None, uniqueid: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` as the transformer leaves it (seed 000: ``fn(uniqueid,
    metadata)`` changes it in place).  A transformer that raises, or leaves
    something that cannot be stored as JSON or is over the limits
    (:func:`measure`), is logged and the metadata is used as given."""
    original = json_copy(metadata)
    if fn is None:
        return original
    work = copy.deepcopy(original)
    try:
        result = fn(uniqueid, work)
        if isinstance(result, dict):
            work = result
        measure(work)
    except Exception:  # noqa: BLE001 - seed 000: a failing transformer falls back to the metadata given
        log.failure("the metadata transformer failed on call {uniqueid}; the metadata is stored as given", uniqueid=uniqueid)
        return original
    return work


def json_copy(metadata: Mapping[str, Any], arg: str = "metadata") -> dict[str, Any]:
    """A deep copy of ``metadata``, which must be an object JSON can carry, within
    the limits (:func:`measure`); :class:`InvalidDataInput` naming ``arg`` otherwise.

    Frames are read strictly already (:mod:`ucs.wirejson`); this holds for what a
    plugin passes too: a NaN that reached a call's data broke its CDR and its events."""
    if not isinstance(metadata, Mapping):
        raise InvalidDataInput({arg: f"{type(metadata).__name__} is not accepted; give an object"})
    metadata = dict(metadata)
    measure(metadata, arg)
    copied: dict[str, Any] = json.loads(json.dumps(metadata, allow_nan=False))
    return copied


def measure(metadata: Mapping[str, Any], arg: str = "metadata", what: str = "the metadata") -> int:
    """The size of ``metadata`` in bytes of JSON, checked against the limits.

    A call's metadata travels whole in every event of the call to every bar that
    shows it and in the reply to ``state``: grown without a bound (8 KB at a time
    is enough) it passed the largest message a WebSocket carries, and those replies
    and events were never delivered (issue 14, point 12).  At most
    :data:`MAX_METADATA_BYTES` bytes and :data:`MAX_METADATA_DEPTH` levels, values
    JSON carries (finite numbers, valid Unicode); :class:`InvalidDataInput` naming
    ``arg`` and saying the limits otherwise."""
    try:
        wirejson.check(metadata, MAX_METADATA_DEPTH, what)  # first: no recursion into a deep value
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except wirejson.NotCarried as e:
        raise InvalidDataInput({arg: f"{e} (metadata: at most {MAX_METADATA_BYTES} bytes of JSON, "
                                     f"{MAX_METADATA_DEPTH} levels deep)"}) from None
    except (TypeError, ValueError) as e:
        raise InvalidDataInput({arg: f"cannot be stored: {e}; give an object of JSON values "
                                     "(strings, finite numbers, true/false, null, lists, objects)"}) from None
    size = len(text.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise InvalidDataInput({arg: f"{what} would be {size} bytes of JSON; at most {MAX_METADATA_BYTES} bytes "
                                     f"(and {MAX_METADATA_DEPTH} levels deep) are accepted"})
    return size


def update_cdr(cdr: dict[str, Any], *, account_code: str | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stored CDR with a new account code and/or merged metadata, in its
    columns and in the copy of the Call kept in ``data``."""
    cdr = dict(cdr)
    data = dict(cdr.get("data") or {})
    if account_code is not None:
        cdr["account_code"] = account_code
        data["account_code"] = account_code
    if metadata is not None:
        merged = dict(cdr.get("metadata") or {})
        merged.update(metadata)
        cdr["metadata"] = merged
        data["data"] = dict(merged)
    cdr["data"] = data
    return cdr

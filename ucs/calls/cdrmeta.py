"""The account codes and metadata of calls, live or already stored as CDRs.

Seed 002's ``setAccountCode`` and seed 000's ``cdr.metadata`` (with the
metadata transformer a plugin may set) work on a call in progress
(:attr:`Call.account_code`, :attr:`Call.data`, published as a call change) and
on one that already ended (its stored CDR is read, changed and saved again,
one change at a time).  :class:`CallRecords` also remembers the calls that
ended recently, so that a uniqueid of any of their legs still finds them.
:class:`~ucs.calls.control.CallControl` holds one and delegates to it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredLock

from ucs import events as ev
from ucs.bus import EventBus
from ucs.calls import accountcode
from ucs.calls.call import Call
from ucs.calls.tracker import CallTracker
from ucs.error import InvalidDataInput, NotFound, ProcessingError


class CDRStore(Protocol):
    def get_cdr(self, uniqueid: str) -> Deferred[dict[str, Any] | None]: ...
    def save_cdr(self, cdr: dict[str, Any]) -> Deferred[None]: ...


class Flushable(Protocol):
    def flushed(self) -> Deferred[None]: ...


class CallReasons(Protocol):
    """What the account codes are checked against (:class:`~ucs.directory.directory.Directory`)."""

    callreasons: dict[int, Any]


class CallRecords:
    """Account codes and metadata of live, recently ended and stored calls.

    :param tracker: the calls in progress; :param bus: where changes of a live
    call are published; :param directory: the call reasons codes are checked
    against (optional); :param store: CDRs of calls that already ended;
    :param cdrs: the CDR writer, waited for before a stored CDR is changed, so
    that a call that just ended is not read before it is written;
    :param recent: how many ended calls are remembered.
    """

    def __init__(
        self,
        tracker: CallTracker,
        bus: EventBus,
        *,
        directory: CallReasons | None = None,
        store: CDRStore | None = None,
        cdrs: Flushable | None = None,
        recent: int = 2000,
    ) -> None:
        self._tracker = tracker
        self._bus = bus
        self.directory = directory
        self._store = store
        self._cdrs = cdrs
        #: Calls that ended, oldest first (at most ``recent``).
        self.recent: OrderedDict[str, Call] = OrderedDict()
        self._recent_max = recent
        self._cdr_lock = DeferredLock()
        self._transformer: accountcode.MetadataTransformer | None = None

    async def set_account_code(
        self, uniqueid: str, code: str, sub_code: str | None = None, override: bool = False
    ) -> str:
        """Set the call's account code (seed 002 ``setAccountCode``) and return it.

        ``override`` replaces what the call has; otherwise the entry is
        appended (``"A|B"``; ``Code/Sub`` for a sub-code, see
        :mod:`ucs.calls.accountcode`).  Checked against the directory's call
        reasons when there are any.  Works during the call and after it: an
        ended call's stored CDR is updated.
        """
        reasons = self.directory.callreasons.values() if self.directory is not None else ()
        entry = accountcode.check_code(reasons, code, sub_code)
        uid = self._check_uniqueid(uniqueid)
        call = self.find_call(uid)
        if call is not None and not call.ended:
            call.account_code = accountcode.merge(call.account_code, entry, override)
            self._bus.publish(ev.EVENT_CALL_CHANGE, call)
            self._bus.publish(ev.EVENT_ACCOUNT_CODE, call.uniqueid, account_code=call.account_code)
            return call.account_code
        code = await self._set_stored_code(uid, call, entry, override)
        self._bus.publish(ev.EVENT_ACCOUNT_CODE, call.uniqueid if call is not None else uid, account_code=code)
        return code

    async def _set_stored_code(self, uid: str, call: Call | None, entry: str, override: bool) -> str:
        async with self._cdr_lock:
            key = call.uniqueid if call is not None else uid
            stored = await self._stored_cdr(key)
            if stored is None:
                if call is None:
                    raise NotFound(f"there is no call {uid!r}: it is neither in progress nor in the CDRs")
                call.account_code = accountcode.merge(call.account_code, entry, override)
                return call.account_code
            new = accountcode.merge(stored.get("account_code"), entry, override)
            await self._save_cdr(accountcode.update_cdr(stored, account_code=new))
            if call is not None:
                call.account_code = new
            return new

    async def cdr_metadata(self, uniqueid: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Attach ``metadata`` to the call (``Call.data``; on the CDR once it
        ended), through the metadata transformer if one is set.  Keys given
        replace the same keys; others are kept.  A string ``accountcode`` in
        the (transformed) metadata also becomes the call's account code, as in
        seed 000's example, checked against the call reasons like
        :meth:`set_account_code` (else an agent could set any code this way).
        Returns the call's metadata."""
        uid = self._check_uniqueid(uniqueid)
        call = self.find_call(uid)
        meta = accountcode.transform(self._transformer, call.uniqueid if call is not None else uid, metadata)
        code = meta.get("accountcode")
        code = self._checked_codes(code) if isinstance(code, str) else None
        if call is not None and not call.ended:
            accountcode.measure({**call.data, **meta}, what="the call's metadata")  # before anything changes
            call.data.update(meta)
            if code is not None:
                call.account_code = code
            self._bus.publish(ev.EVENT_CALL_CHANGE, call)
            if code is not None:
                self._bus.publish(ev.EVENT_ACCOUNT_CODE, call.uniqueid, account_code=call.account_code)
            return dict(call.data)
        async with self._cdr_lock:
            stored = await self._stored_cdr(call.uniqueid if call is not None else uid)
            # Re-checked after the await: the call may have changed meanwhile.
            current = stored.get("metadata") if stored is not None else None
            if call is not None:
                accountcode.measure({**call.data, **meta}, what="the call's metadata")
            if isinstance(current, dict):
                accountcode.measure({**current, **meta}, what="the call's metadata")
            if call is not None:
                call.data.update(meta)
                if code is not None:
                    call.account_code = code
            if stored is None:
                if call is None:
                    raise NotFound(f"there is no call {uid!r}: it is neither in progress nor in the CDRs")
                return dict(call.data)
            updated = accountcode.update_cdr(stored, account_code=code, metadata=meta)
            await self._save_cdr(updated)
        if code is not None:
            self._bus.publish(ev.EVENT_ACCOUNT_CODE, str(updated["uniqueid"]), account_code=code)
        return dict(updated["metadata"])

    def _checked_codes(self, account_code: str) -> str:
        """A whole account code (``"A/Sub|B"``) given in metadata, each entry checked
        against the call reasons; :class:`InvalidDataInput` on ``metadata`` otherwise."""
        reasons = list(self.directory.callreasons.values()) if self.directory is not None else []
        checked = []
        for entry in accountcode.entries(account_code):
            code, _, sub = entry.partition(accountcode.SUB_SEPARATOR)
            try:
                checked.append(accountcode.check_code(reasons, code, sub or None))
            except InvalidDataInput as e:
                why = "; ".join(str(v) for v in e.message.values()) if isinstance(e.message, dict) else str(e)
                raise InvalidDataInput({"metadata": f"accountcode {entry!r}: {why}"}) from None
        return accountcode.SEPARATOR.join(checked)

    def set_metadata_transformer(self, fn: accountcode.MetadataTransformer) -> None:
        """Seed 000: ``fn(uniqueid, metadata)`` changes the metadata of every
        ``cdr.metadata`` call in place before it is stored."""
        if not callable(fn):
            raise InvalidDataInput(f"a metadata transformer must be callable, not {type(fn).__name__}")
        self._transformer = fn

    def unset_metadata_transformer(self) -> None:
        self._transformer = None

    def find_call(self, uniqueid: str) -> Call | None:
        """A call in progress or recently ended, by its uniqueid or any leg's."""
        call = self._tracker.call_of(uniqueid) or self._tracker.calls.get(uniqueid)
        if call is not None:
            return call
        call = self.recent.get(uniqueid)
        if call is not None:
            return call
        return next((c for c in reversed(self.recent.values()) if uniqueid in c.legs), None)

    @staticmethod
    def _check_uniqueid(uniqueid: Any) -> str:
        if not isinstance(uniqueid, str) or not uniqueid.strip():
            raise InvalidDataInput({"uniqueid": f"{uniqueid!r} is not accepted; give the call's uniqueid"})
        return uniqueid.strip()

    async def stored_cdr(self, uniqueid: str) -> dict[str, Any] | None:
        """The stored CDR of an ended call (after the CDRs being written are), or ``None``."""
        return await self._stored_cdr(uniqueid)

    async def _stored_cdr(self, uniqueid: str) -> dict[str, Any] | None:
        if self._store is None:
            return None
        try:
            if self._cdrs is not None:
                await self._cdrs.flushed()
            return await self._store.get_cdr(uniqueid)
        except Exception as e:  # noqa: BLE001 - any store failure is told to the client
            raise ProcessingError(f"the CDR of call {uniqueid} cannot be read now: {e}") from None

    async def _save_cdr(self, cdr: dict[str, Any]) -> None:
        assert self._store is not None
        try:
            await self._store.save_cdr(cdr)
        except Exception as e:  # noqa: BLE001 - any store failure is told to the client
            raise ProcessingError(f"the CDR of call {cdr.get('uniqueid')} cannot be saved now: {e}") from None

    def call_ended(self, call: Call) -> None:
        """Remember ``call`` (the tracker tells it ended) among the recent calls."""
        self.recent[call.uniqueid] = call
        self.recent.move_to_end(call.uniqueid)
        while len(self.recent) > self._recent_max:
            self.recent.popitem(last=False)

"""Account codes and call metadata, during the call and on the stored CDR after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_control_stack import ALICE, started
from twisted.internet import reactor

from ucs.bus import EventBus
from ucs.calls import accountcode
from ucs.directory.directory import Directory
from ucs.error import InvalidDataInput, NotFound
from ucs.store import open_store


async def directory_with_reasons(store: Any) -> Directory:
    d = Directory(store, EventBus())
    sales = await d.add("callreasons", {"code": "Sales", "name": "Sales"})
    await d.add("callreasons", {"code": "Upgrade", "parent_id": sales.id})
    await d.add("callreasons", {"code": "Complaint"})
    return d


@pytest_twisted.ensureDeferred
async def test_account_codes_during_and_after_the_call(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'ucs.db'}", reactor)
    s = await started(store=store, directory=await directory_with_reasons(store))
    try:
        call = await s.incoming()
        set_code = s.control.set_account_code
        assert await set_code(call.uniqueid, "Sales") == "Sales"
        assert await set_code(call.uniqueid, "Complaint") == "Sales|Complaint"
        # A sub-code refines its code; the same entry twice is kept once.
        assert await set_code(call.uniqueid, "Sales", "Upgrade") == "Sales/Upgrade|Complaint"
        assert await set_code(call.uniqueid, "Complaint") == "Sales/Upgrade|Complaint"
        # Any leg's uniqueid finds the call.
        assert await set_code(s.leg(call, "SIP/1001").uniqueid, "Complaint", override=True) == "Complaint"
        assert call.account_code == "Complaint" and ("call.change", call) in s.events
        with pytest.raises(InvalidDataInput) as e:
            await set_code(call.uniqueid, "Lunch")
        assert e.value.message == {"accountCode": "'Lunch' is not a call reason; the call reasons are: Complaint, Sales"}
        with pytest.raises(InvalidDataInput) as e:
            await set_code(call.uniqueid, "Complaint", "Upgrade")
        assert e.value.message == {"subAccountCode": "'Upgrade' is not a sub-code of Complaint; its sub-codes are: Complaint has none"}
        with pytest.raises(InvalidDataInput, match="subAccountCode"):
            await set_code(call.uniqueid, "Sales", "Refund")

        await s.settle(s.control.hangup(ALICE))
        assert s.writer is not None
        await s.writer.flushed()
        assert (await store.get_cdr(call.uniqueid))["account_code"] == "Complaint"
        # After the call: the stored CDR changes, in its column and in its copy of the call.
        assert await set_code(call.uniqueid, "Sales", "Upgrade") == "Complaint|Sales/Upgrade"
        cdr = await store.get_cdr(call.uniqueid)
        assert cdr["account_code"] == "Complaint|Sales/Upgrade" and cdr["data"]["account_code"] == "Complaint|Sales/Upgrade"
        assert await set_code(call.uniqueid, "Sales", override=True) == "Sales"
        assert (await store.get_cdr(call.uniqueid))["account_code"] == "Sales"
        with pytest.raises(NotFound, match="there is no call 'nope'"):
            await set_code("nope", "Sales")
    finally:
        await s.stop()
        await store.close()


@pytest_twisted.ensureDeferred
async def test_account_code_right_after_hangup_waits_for_the_cdr(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'ucs.db'}", reactor)
    s = await started(store=store)
    try:
        call = await s.incoming()
        await s.settle(s.control.hangup(ALICE))
        # No call reasons defined: any code is accepted; the CDR may not be written yet.
        assert await s.control.set_account_code(call.uniqueid, "Anything goes") == "Anything goes"
        assert (await store.get_cdr(call.uniqueid))["account_code"] == "Anything goes"
        with pytest.raises(InvalidDataInput, match="separate codes"):
            await s.control.set_account_code(call.uniqueid, "A|B")
    finally:
        await s.stop()
        await store.close()


@pytest_twisted.ensureDeferred
async def test_metadata_and_its_transformer(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'ucs.db'}", reactor)
    s = await started(store=store)
    try:
        call = await s.incoming()
        meta = s.control.cdr_metadata
        assert await meta(call.uniqueid, {"crm": "A-1"}) == {"crm": "A-1"}

        def seed_000(uniqueid: str, metadata: dict[str, Any]) -> None:
            assert uniqueid == call.uniqueid
            codes = metadata.pop("call_code", None)
            if codes is not None:
                metadata["accountcode"] = "|".join(codes)

        s.control.set_metadata_transformer(seed_000)
        got = await meta(call.uniqueid, {"call_code": ["Warranty claim", "Out-of-warranty"]})
        assert got == {"crm": "A-1", "accountcode": "Warranty claim|Out-of-warranty"}
        assert call.account_code == "Warranty claim|Out-of-warranty"

        def broken(uniqueid: str, metadata: dict[str, Any]) -> None:
            metadata.clear()
            raise RuntimeError("plugin bug")

        s.control.set_metadata_transformer(broken)
        assert await meta(call.uniqueid, {"note": "as given"}) == {
            "crm": "A-1", "accountcode": "Warranty claim|Out-of-warranty", "note": "as given",
        }
        s.control.unset_metadata_transformer()
        with pytest.raises(InvalidDataInput, match="metadata"):
            await meta(call.uniqueid, {"when": object()})
        with pytest.raises(InvalidDataInput):
            s.control.set_metadata_transformer("not callable")  # type: ignore[arg-type]

        await s.settle(s.control.hangup(ALICE))
        await meta(call.uniqueid, {"crm": "A-2", "outcome": "sold"})
        cdr = await store.get_cdr(call.uniqueid)
        assert cdr["metadata"] == {
            "crm": "A-2", "accountcode": "Warranty claim|Out-of-warranty", "note": "as given", "outcome": "sold",
        }
        assert cdr["data"]["data"] == cdr["metadata"]
    finally:
        await s.stop()
        await store.close()


def test_account_code_strings() -> None:
    assert accountcode.merge("", "A", False) == "A"
    assert accountcode.merge("A|B", "C", False) == "A|B|C"
    assert accountcode.merge("A|B", "A/x", False) == "A/x|B"
    assert accountcode.merge("A/x|B", "A/y", False) == "A/x|B|A/y"
    assert accountcode.merge("A|B", "C/x", True) == "C/x"
    assert accountcode.check_code([], " Sales ", "Upgrade") == "Sales/Upgrade"
    for bad in ("", "  ", None, 7, "x" * 65, "a/b"):
        with pytest.raises(InvalidDataInput):
            accountcode.check_code([], bad)

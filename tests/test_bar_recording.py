"""Recording from the agent bar in real Chromium (issue 17): the Record button, the
indicator while the call is recorded, Stop recording, and the recording fetched
through its link (``recordingUrl``), on the whole UCS with the simulated PBX."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_bar_browser import UCS, Bar, in_browser, ucs  # noqa: F401 - ucs is the fixture


def rec_channel(call: Any) -> str:
    return call.recordings[0]["channel"]  # type: ignore[no-any-return]


@in_browser
def test_record_a_call_from_the_bar_and_fetch_it(ucs: UCS, browser: Any) -> None:  # noqa: F811
    folder = Path(ucs.run(lambda: ucs.server.config.store.url)[len("sqlite:///"):]).parent / "recordings"

    def point_at_folder() -> None:
        ucs.server.get_call_control().record_directory = str(folder)
        ucs.server.get_recording_links().directory = str(folder)

    ucs.run(point_at_folder)
    a = Bar(browser, ucs)
    a.login(1)
    ucs.customer_calls("5000", "420777123456", "Jana Novak")
    a.wait("onCallRinging")
    a.page.click("[data-act=answer]")
    uniqueid = a.wait("onCallConnect")["args"][0]["uniqueid"]
    assert a.page.locator("[data-ref=recording]").count() == 0
    assert a.page.inner_text("[data-act=record]").strip() == "Record"

    a.page.click("[data-act=record]")
    a.page.wait_for_selector("[data-ref=recording]")  # the red dot by the timer
    assert a.page.inner_text("[data-ref=recording]").strip() == "recording"
    assert a.page.inner_text("[data-act=stop-record]").strip() == "Stop recording"

    def switch_language() -> None:
        a.page.click("[data-act=menu]")
        a.page.click("[data-act=lang]")

    switch_language()
    assert a.page.inner_text("[data-ref=recording]").strip() == "nahrává se"
    assert a.page.inner_text("[data-act=stop-record]").strip() == "Zastavit nahrávání"
    switch_language()
    call = ucs.wait(lambda: next((c for c in ucs.server.get_call_tracker().active_calls() if c.recording), None),
                    what="the call is recorded")
    assert call.uniqueid == uniqueid and call.recorded
    assert ucs.run(lambda: [c.name for c in ucs.sim.channels.values() if c.mixmonitors]) == [rec_channel(call)]

    a.page.click("[data-act=stop-record]")
    a.page.wait_for_selector("[data-ref=recording]", state="detached")
    a.page.wait_for_selector("[data-act=record]")
    (rec,) = call.recordings
    assert (folder / rec["file"]).read_bytes()[:4] == b"RIFF"

    # The link: fetched by the page (what a CRM's player does); a made-up ticket is refused.
    link = a.call(f'recordingUrl("{uniqueid}")')
    assert link["file"] == rec["file"] and link["url"].startswith(ucs.base + "/recording/")
    got = a.page.evaluate("""async (url) => {
        const r = await fetch(url); const b = new Uint8Array(await r.arrayBuffer());
        return {status: r.status, type: r.headers.get('content-type'), head: String.fromCharCode(...b.slice(0, 4)),
                size: b.length};
    }""", link["url"])
    assert got["status"] == 200 and got["type"] == "audio/wav" and got["head"] == "RIFF" and got["size"] > 44
    for bad in ("/recording/guessed", "/recording/..%2f..%2fetc%2fpasswd", "/recording/" + rec["file"]):
        status = a.page.evaluate("async (u) => (await fetch(u)).status", ucs.base + bad)
        assert status == 404, bad

    a.call("hangup()")
    a.wait("onCallHangup")
    a.close()

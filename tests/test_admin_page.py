"""The admin page (/admin/, issue 19) in real Chromium against the whole demo UCS: the
admin logs in, adds a queue, finds it in the list, edits it and sees the change in the
audit log; a refusal shows the server's message; an agent is told they may not.  Then
every other kind's list, search, paging, add, edit, delete and refusals; memberships
picked from lists; CSV previewed, applied, refused (nothing stored) and exported; the
page by keyboard, in Czech and under axe-core.  What the page did is read back from the
store, not from the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_bar_browser import UCS, in_browser, pytestmark, ucs  # noqa: F401 - the fixture and the skip
from twisted.internet import defer

from ucs import demo


def log_in(page: Any, base: str, username: str, password: str) -> None:
    page.goto(base + "/admin/?lang=en")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login button[type=submit]")


@in_browser
def test_the_admin_adds_and_edits_a_queue_and_an_agent_is_refused(ucs: UCS, browser: Any) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, ucs.base, "admin", demo.ADMIN_PASSWORD)
    page.wait_for_selector("#rows tr[data-id]")  # the queues tab, first
    assert "Support" in page.inner_text("#rows")

    page.click("#add")
    page.fill('#fields [name="name"]', "Billing")
    page.fill('#fields [name="asterisk_name"]', "billing")
    page.fill('#fields [name="number"]', "5002")
    page.click("#save")
    row = page.wait_for_selector('#rows tr:has(td[data-field="asterisk_name"]:text-is("billing"))')
    assert row.inner_text().count("5002") == 1
    assert page.is_hidden("#editor")

    # The search narrows the list.
    page.fill("#search", "bill")
    assert page.locator("#rows tr").count() == 1
    page.fill("#search", "")

    # A refusal shows the server's message: a second queue of the same Asterisk name.
    page.click("#add")
    page.fill('#fields [name="name"]', "Billing again")
    page.fill('#fields [name="asterisk_name"]', "billing")
    page.click("#save")
    page.wait_for_selector("#error:not([hidden])")
    assert "billing" in page.inner_text("#error")
    page.click("#cancel")

    page.click('#rows tr:has(td:text-is("billing")) button.edit')
    page.fill('#fields [name="name"]', "Billing and invoices")
    page.click("#save")
    page.wait_for_selector('#rows td[data-field="name"]:text-is("Billing and invoices")')

    page.click('nav [data-tab="audit"]')
    first = page.wait_for_selector("#audit-rows tr")
    assert first.inner_text().count("admin") >= 1
    assert page.inner_text('#audit-rows tr:first-child td[data-field="action"]').strip() == "edit"
    assert "Billing → Billing and invoices" in page.inner_text('#audit-rows tr:first-child td[data-field="changes"]')
    assert page.is_disabled("#newer")

    # Deleting asks first, then the queue leaves the list.
    page.on("dialog", lambda d: d.accept())
    page.click('nav [data-tab="queues"]')
    page.click('#rows tr:has(td:text-is("billing")) button.delete')
    page.wait_for_selector('#rows td:text-is("billing")', state="detached")

    # The other tabs list users and lines.
    page.click('nav [data-tab="users"]')
    page.wait_for_selector('#rows td[data-field="username"]:text-is("agent1")')
    page.click('nav [data-tab="lines"]')
    page.wait_for_selector('#rows td[data-field="device"]:text-is("SIP/1001")')
    assert errors == []
    page.close()

    agent = browser.new_page()
    username, password = demo.user_of(1)
    log_in(agent, ucs.base, username, password)
    agent.wait_for_selector("#status.refused")
    assert "may not" in agent.inner_text("#status")
    assert agent.is_hidden("#app")
    agent.close()


# -- the other kinds, memberships, CSV, accessibility (issue 19, second slice) ------------------


def admin_page(browser: Any, ucs: UCS, lang: str = "en") -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    page.goto(ucs.base + f"/admin/?lang={lang}")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#username", "admin")
    page.fill("#password", demo.ADMIN_PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#app:not([hidden])")
    return page, errors


def until(page: Any, js: str, timeout: float = 10_000) -> None:
    """Wait until the expression ``js`` is true, polled by the page itself (its CSP forbids
    the ``eval`` that ``wait_for_function`` needs; ``evaluate`` is not governed by it)."""
    ok = page.evaluate(f"""async () => {{
        const deadline = performance.now() + {timeout};
        while (!({js})) {{
            if (performance.now() > deadline) return false;
            await new Promise(requestAnimationFrame);
        }}
        return true;
    }}""")
    assert ok, f"{js}: not true within {timeout / 1000:g} s"


def names(ucs: UCS, kind: str, attr: str = "name") -> list[str]:
    """The entities of ``kind`` the store holds (not the page, not the directory in memory)."""
    docs = ucs.run(ucs.server.get_store().kv_items, f"dir.{kind}")
    return sorted(d[attr] for d in docs.values())


def row(kind_field: str, text: str) -> str:
    return f'#rows tr:has(td[data-field="{kind_field}"]:text-is("{text}"))'


@in_browser
def test_teams_groups_and_reasons_are_added_edited_deleted_and_refusals_shown(ucs: UCS, browser: Any) -> None:
    page, errors = admin_page(browser, ucs)
    for kind in ("teams", "groups", "auxreasons"):
        page.click(f'nav [data-tab="{kind}"]')
        before = names(ucs, kind)
        page.click("#add")
        page.fill('#fields [name="name"]', "Night shift")
        page.click("#save")
        page.wait_for_selector(row("name", "Night shift"))
        assert names(ucs, kind) == sorted(before + ["Night shift"])
        # The same name again: the server's refusal, on the form.
        page.click("#add")
        page.fill('#fields [name="name"]', "night shift")
        page.click("#save")
        page.wait_for_selector("#error:not([hidden])")
        assert "Not accepted — Name: 'night shift' is taken by" in page.inner_text("#error"), kind
        page.click("#cancel")
        page.click(row("name", "Night shift") + " button.edit")
        page.fill('#fields [name="name"]', "Late shift")
        page.click("#save")
        page.wait_for_selector(row("name", "Late shift"))
        assert "Late shift" in names(ucs, kind) and "Night shift" not in names(ucs, kind)
        page.click(row("name", "Late shift") + " button.delete")
        page.wait_for_selector(row("name", "Late shift"), state="detached")
        assert names(ucs, kind) == before, kind
        # Search and paging work on every kind's list.
        page.fill("#search", "zzz-nothing")
        assert page.locator("#rows tr").count() == 0
        page.fill("#search", "")

    # Paging: 20 a page.
    for i in range(25):
        ucs.run(lambda n=i: defer.ensureDeferred(ucs.server.get_directory().add("auxreasons", {"name": f"Reason {n:02d}"})))
    page.click('nav [data-tab="groups"]')
    page.click('nav [data-tab="auxreasons"]')
    page.wait_for_selector('#page:text-is("Page 1 of 2")')
    assert page.locator("#rows tr").count() == 20 and page.is_disabled("#prev")
    page.click("#next")
    page.wait_for_selector('#page:text-is("Page 2 of 2")')
    assert page.locator("#rows tr").count() == 28 - 20 and page.is_disabled("#next")  # 3 demo reasons + 25
    page.fill("#search", "Reason 2")
    assert page.locator("#rows tr").count() == 5 and page.inner_text("#page") == "Page 1 of 1"
    page.fill("#search", "")

    # Call reasons: a sub-code picks its parent from a list of top-level codes.
    page.click('nav [data-tab="callreasons"]')
    page.wait_for_selector(row("code", "SALES"))
    page.click("#add")
    page.fill('#fields [name="code"]', "REFUND")
    page.fill('#fields [name="name"]', "Refund")
    page.click("#save")
    page.wait_for_selector(row("code", "REFUND"))
    page.click("#add")
    options = page.locator('#fields [name="parent_id"] option').all_inner_texts()
    assert "REFUND — Refund" in options and not any(o.startswith("NEW") for o in options)  # top-level only
    page.fill('#fields [name="code"]', "PARTIAL")
    page.select_option('#fields [name="parent_id"]', label="REFUND — Refund")
    page.click("#save")
    page.wait_for_selector(row("code", "PARTIAL") + ' td[data-field="parent_id"]:text-is("REFUND — Refund")')
    reasons = {d["code"]: d for d in ucs.run(ucs.server.get_store().kv_items, "dir.callreasons").values()}
    assert reasons["PARTIAL"]["parent_id"] == reasons["REFUND"]["id"]
    # Refused in the page's language: a code with sub-codes cannot go.
    page.select_option("#lang", "cs")
    page.click(row("code", "REFUND") + " button.delete")
    page.wait_for_selector("#status.refused")
    assert "Nepřijato" in page.inner_text("#status") and "má podřízené kódy" in page.inner_text("#status")
    assert "REFUND" in names(ucs, "callreasons", "code")
    page.click(row("code", "PARTIAL") + " button.delete")
    page.wait_for_selector(row("code", "PARTIAL"), state="detached")
    page.click(row("code", "REFUND") + " button.edit")
    page.fill('#fields [name="name"]', "Vrácení peněz")
    page.click("#save")
    page.wait_for_selector(row("name", "Vrácení peněz"))
    page.click(row("code", "REFUND") + " button.delete")
    page.wait_for_selector(row("code", "REFUND"), state="detached")
    assert "REFUND" not in names(ucs, "callreasons", "code")
    # A duplicate team, refused in Czech.
    page.click('nav [data-tab="teams"]')
    for _ in range(2):
        page.click("#add")
        page.fill('#fields [name="name"]', "Modrý")
        page.click("#save")
    page.wait_for_selector("#error:not([hidden])")
    assert "Nepřijato — Název: „Modrý“ už má tým" in page.inner_text("#error")
    assert errors == []
    page.close()


def stored_user(ucs: UCS, username: str) -> dict[str, Any]:
    docs = ucs.run(ucs.server.get_store().kv_items, "dir.users")
    return next(d for d in docs.values() if d["username"] == username)


@in_browser
def test_memberships_are_picked_from_lists(ucs: UCS, browser: Any) -> None:
    d = ucs.server.get_directory()
    support, sales = (ucs.run(d.queue_by_asterisk_name, n) for n in ("support", "sales"))
    line1, line2 = (ucs.run(d.line_by_device, dev) for dev in ("SIP/1001", "SIP/1002"))
    page, errors = admin_page(browser, ucs)
    for kind, name in (("groups", "Brno"), ("teams", "Blue")):
        page.click(f'nav [data-tab="{kind}"]')
        page.click("#add")
        page.fill('#fields [name="name"]', name)
        page.click("#save")
        page.wait_for_selector(row("name", name))
    brno = next(g for g in ucs.run(lambda: list(d.groups.values())) if g.name == "Brno")
    blue = next(tm for tm in ucs.run(lambda: list(d.teams.values())) if tm.name == "Blue")

    # A user's group, lines, own line and queues: ticked and picked, never an id typed.
    page.click('nav [data-tab="users"]')
    page.click(row("username", "agent1") + " button.edit")
    page.select_option('#fields [name="group_id"]', label="Brno")
    page.check('#fields [data-field="lines"] label:has-text("SIP/1002") input')
    page.select_option('#fields [name="primary_extension"]', label="SIP/1001 — Desk phone 1001")
    page.fill(f'#fields tr[data-queue="{support.id}"] .penalty', "3")
    page.select_option(f'#fields tr[data-queue="{support.id}"] .team', label="Blue")
    page.uncheck(f'#fields tr[data-queue="{sales.id}"] .member')
    page.click("#save")
    page.wait_for_selector(row("username", "agent1") + ' td[data-field="group_id"]:text-is("Brno")')
    agent1 = stored_user(ucs, "agent1")
    assert agent1["group_id"] == brno.id and sorted(agent1["lines"]) == [line1.id, line2.id]
    assert agent1["primary_extension"] == line1.id
    assert agent1["queues"] == {str(support.id): {"priority": 3, "team_id": blue.id, "supervisor": False}}
    assert agent1["displayname"] == ""  # the name shown was not sent back as typed

    # A new user with a password and memberships, in one form.
    page.click("#add")
    page.fill('#fields [name="username"]', "carol")
    page.fill('#fields [name="password"]', "carol-password")
    page.fill('#fields [name="firstname"]', "Carol")
    page.check(f'#fields tr[data-queue="{sales.id}"] .member')
    page.fill(f'#fields tr[data-queue="{sales.id}"] .penalty', "2")
    page.check(f'#fields tr[data-queue="{sales.id}"] .supervisor')
    page.click("#save")
    page.wait_for_selector(row("username", "carol"))
    carol = stored_user(ucs, "carol")
    assert carol["queues"] == {str(sales.id): {"priority": 2, "team_id": None, "supervisor": True}}
    assert ucs.run(d.verify_password, ucs.run(d.user_by_username, "carol"), "carol-password")

    # A queue's members: ticked with their penalty; the others keep theirs.
    page.click('nav [data-tab="queues"]')
    page.wait_for_selector(row("asterisk_name", "sales") + ' td[data-field="members"]:text-is("3")')
    page.click(row("asterisk_name", "sales") + " button.edit")
    agent2 = stored_user(ucs, "agent2")
    assert page.is_checked(f'#fields tr[data-user="{agent2["id"]}"] .member')
    page.fill(f'#fields tr[data-user="{agent2["id"]}"] .penalty', "5")
    page.uncheck(f'#fields tr[data-user="{carol["id"]}"] .member')
    page.check(f'#fields tr[data-user="{agent1["id"]}"] .member')
    page.click("#save")
    page.wait_for_selector("#editor", state="hidden")
    assert stored_user(ucs, "agent2")["queues"][str(sales.id)]["priority"] == 5
    assert stored_user(ucs, "agent2")["queues"][str(support.id)]["priority"] == 0
    assert stored_user(ucs, "carol")["queues"] == {}
    assert set(stored_user(ucs, "agent1")["queues"]) == {str(support.id), str(sales.id)}
    assert stored_user(ucs, "agent1")["queues"][str(support.id)]["team_id"] == blue.id
    # The three users' edits were one call (config.queues.setMembers): one transaction.
    edits = ucs.run(ucs.server.get_store().audit_list, kind="users", limit=3)
    assert {e["entity_id"] for e in edits} == {str(agent1["id"]), str(agent2["id"]), str(carol["id"])}
    assert len({e["at"] for e in edits}) == 1 and {e["source"] for e in edits} == {"api"}
    # A new queue with its members ticked at once.
    page.click("#add")
    page.fill('#fields [name="name"]', "Billing")
    page.fill('#fields [name="asterisk_name"]', "billing")
    page.check(f'#fields tr[data-user="{agent2["id"]}"] .member')
    page.fill(f'#fields tr[data-user="{agent2["id"]}"] .penalty', "4")
    page.click("#save")
    page.wait_for_selector(row("asterisk_name", "billing") + ' td[data-field="members"]:text-is("1")')
    billing = ucs.run(d.queue_by_asterisk_name, "billing")
    assert stored_user(ucs, "agent2")["queues"][str(billing.id)] == {"priority": 4, "team_id": None, "supervisor": False}
    # The team's list counts its members (agent1, in support).
    page.click('nav [data-tab="teams"]')
    page.wait_for_selector(row("name", "Blue") + ' td[data-field="members"]:text-is("1")')
    assert errors == []
    page.close()


@in_browser
def test_csv_is_previewed_then_applied_a_bad_file_refused_and_exported(ucs: UCS, browser: Any) -> None:
    page, errors = admin_page(browser, ucs)
    page.click('nav [data-tab="csv"]')
    assert page.is_disabled("#csv-apply")

    # Pasted teams: previewed (nothing changes yet), then applied.
    page.select_option("#csv-kind", "teams")
    page.fill("#csv-text", "name\nRed\nGreen\n")
    page.click("#csv-preview")
    page.wait_for_selector('#csv-changes tr[data-what="added"]')
    assert "2 to add, 0 to change, 0 unchanged, 0 problem(s)" in page.inner_text("#csv-message")
    assert names(ucs, "teams") == []
    page.click("#csv-apply")
    page.wait_for_selector('#csv-message:has-text("Applied: 2 added")')
    assert names(ucs, "teams") == ["Green", "Red"]
    assert page.is_disabled("#csv-apply")

    # A users file with bad rows: each named by line and column; apply stays off; nothing stored.
    users_before = ucs.run(ucs.server.get_store().kv_items, "dir.users")
    bad = ("username,firstname,email,lines,queues\n"
           "agent1,Alicia,,,support:0:Red\n"
           "dave,Dave,not-an-address,SIP/9999,\n"
           "erin,Erin,,,nosuchqueue:1\n")
    page.set_input_files("#csv-file", files=[{"name": "users.csv", "mimeType": "text/csv", "buffer": bad.encode()}])
    until(page, "document.getElementById('csv-text').value.includes('dave')")
    assert page.input_value("#csv-kind") == "users"  # from the file's name
    page.click("#csv-preview")
    page.wait_for_selector("#csv-problems:not([hidden]) tbody tr")
    problems = [(r.locator('td[data-field="line"]').inner_text(), r.locator('td[data-field="column"]').inner_text())
                for r in page.locator("#csv-problems tbody tr").all()]
    assert sorted(problems) == [("3", "email"), ("3", "lines"), ("4", "queues")]
    assert "there is no line 'SIP/9999'" in page.inner_text("#csv-problems")
    assert "Nothing can be applied" in page.inner_text("#csv-message")
    assert page.is_disabled("#csv-apply")
    assert ucs.run(ucs.server.get_store().kv_items, "dir.users") == users_before

    # The good rows alone: agent1 changes (before → after), dave is added, then applied.
    page.fill("#csv-text", "username,firstname,email,lines,queues\nagent1,Alicia,,,support:0:Red\n"
                           "dave,Dave,dave@example.com,SIP/1002,\n")
    page.click("#csv-preview")
    changed = page.wait_for_selector('#csv-changes tr[data-what="changed"]')
    assert "firstname: Alice → Alicia" in changed.inner_text()
    assert "queues: support:0;sales:0 → support:0:Red" in changed.inner_text()
    assert "lines: SIP/1001 → (empty)" in changed.inner_text()  # an empty column empties the field
    assert "dave" in page.inner_text('#csv-changes tr[data-what="added"]')
    # Editing the text after the preview: apply is off until it is previewed again.
    page.fill("#csv-text", page.input_value("#csv-text") + "\n")
    assert page.is_disabled("#csv-apply")
    page.click("#csv-preview")
    page.wait_for_selector("#csv-apply:not([disabled])")
    page.click("#csv-apply")
    page.wait_for_selector('#csv-message:has-text("Applied: 1 added, 1 changed")')
    assert stored_user(ucs, "agent1")["firstname"] == "Alicia" and stored_user(ucs, "dave")["email"] == "dave@example.com"
    audit = ucs.run(ucs.server.get_store().audit_list, action="import")
    assert audit[0]["actor"] == "admin" and audit[0]["entity_id"] == "users.csv" and audit[0]["kind"] == "users"

    # A file larger than a request may be: refused with the limit, nothing sent on.
    big = "name\n" + "".join(f"team {i:06d}\n" for i in range(7000))
    page.set_input_files("#csv-file", files=[{"name": "teams.csv", "mimeType": "text/csv", "buffer": big.encode()}])
    until(page, "document.getElementById('csv-text').value.includes('team 006999')")
    assert page.input_value("#csv-kind") == "teams"
    page.click("#csv-preview")
    page.wait_for_selector("#csv-message.refused")
    assert "Too large" in page.inner_text("#csv-message") and "at most 65536 bytes" in page.inner_text("#csv-message")
    assert names(ucs, "teams") == ["Green", "Red"]

    # Export: the kind's CSV, downloaded.
    page.select_option("#csv-kind", "queues")
    with page.expect_download() as download:
        page.click("#csv-export")
    assert download.value.suggested_filename == "queues.csv"
    text = Path(download.value.path()).read_text()
    assert text.splitlines()[0] == "asterisk_name,name,type,require_reason,record,number"
    assert "support,Support,1,no,no,5000" in text.splitlines()
    assert errors == []
    page.close()


AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"


def axe(page: Any, what: str) -> None:
    """No serious or critical axe-core violation on the page (axe loaded through DevTools: no CSP)."""
    if not page.evaluate("!!window.axe"):
        page.evaluate("(src) => { (0, eval)(src); }", AXE.read_text())
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
    }""")
    assert found == [], f"{what}: {found}"


@in_browser
def test_the_page_is_accessible_by_keyboard_and_in_czech(ucs: UCS, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(ucs.base + "/admin/?lang=cs")
    page.wait_for_selector("#login:not([hidden])")
    axe(page, "login")
    page.evaluate("document.body.append(Object.assign(document.createElement('input'), {id: 'unnamed'}))")
    try:  # the check can fail: an input without a name is found
        axe(page, "an unnamed input")
        raise RuntimeError("axe-core found nothing wrong with an unnamed input")
    except AssertionError as e:
        assert "label" in str(e)
    page.evaluate("document.getElementById('unnamed').remove()")
    assert page.inner_text("#login button") == "Přihlásit"
    page.fill("#username", "admin")
    page.fill("#password", demo.ADMIN_PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_selector("#rows tr[data-id]")
    mine = ["Uživatelé", "Linky", "Fronty", "Týmy", "Skupiny", "Důvody AUX", "Důvody hovorů", "Import / export",
            "Auditní záznam"]
    assert [text for text in page.locator("nav button").all_inner_texts() if text in mine] == mine
    assert page.inner_text('#head th:nth-child(2)') == "Název"
    assert page.get_attribute("#search", "aria-label") == "Hledat"
    axe(page, "queues")

    # By keyboard: a tab opened with Enter, a team added without the mouse.
    page.focus('nav [data-tab="teams"]')
    page.keyboard.press("Enter")
    page.wait_for_selector('nav [data-tab="teams"][aria-selected="true"]')
    page.keyboard.press("ArrowRight")  # the tab list's arrows move between tabs
    page.wait_for_selector('nav [data-tab="groups"][aria-selected="true"]')
    assert page.evaluate("document.activeElement.dataset.tab") == "groups"
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector('nav [data-tab="teams"][aria-selected="true"]')
    page.focus("#add")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.name") == "name"  # the form's first field has the focus
    page.keyboard.type("Zelený")
    page.keyboard.press("Enter")
    page.wait_for_selector(row("name", "Zelený"))
    assert page.evaluate("document.activeElement.id") == "add"  # back where the form was opened from
    assert page.get_attribute(row("name", "Zelený") + " button.edit", "aria-label") == "Upravit Zelený"

    page.click('nav [data-tab="users"]')
    page.click(row("username", "agent1") + " button.edit")
    page.wait_for_selector('#fields fieldset[data-field="queues"]')
    assert page.inner_text('#fields fieldset[data-field="queues"] legend') == "Fronty"
    assert page.get_attribute('#fields tr[data-queue] .penalty', "aria-label").startswith("Penalizace: ")
    axe(page, "a user's form with its pick lists")
    page.click("#cancel")

    page.click('nav [data-tab="csv"]')
    assert page.locator("#csv-kind option").all_inner_texts()[:3] == ["Uživatelé", "Linky", "Fronty"]
    page.select_option("#csv-kind", "groups")
    page.fill("#csv-text", "name\nBrno\n")
    page.click("#csv-preview")
    page.wait_for_selector('#csv-changes tr[data-what="added"]')
    assert "Přidá se 1" in page.inner_text("#csv-message")
    assert page.inner_text('#csv-changes tr[data-what="added"] td[data-field="what"]') == "přidá se"
    axe(page, "the CSV preview")
    page.fill("#csv-text", "name,colour\nBrno,red\n")
    page.click("#csv-preview")
    page.wait_for_selector("#csv-problems:not([hidden])")
    assert "není sloupec souboru; přijímají se: name" in page.inner_text('#csv-problems tr:has(td:text-is("colour"))')
    axe(page, "a refused CSV")
    page.click('nav [data-tab="groups"]')
    page.click("#add")
    page.click("#save")  # no name: refused, on the form
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "Nepřijato — Název: je povinné"
    axe(page, "a refused form")
    page.click("#cancel")
    # A refusal in the header: the last superuser cannot be deleted.
    page.on("dialog", lambda d: d.accept())
    page.click('nav [data-tab="users"]')
    page.click(row("username", "admin") + " button.delete")
    page.wait_for_selector("#status.refused")
    assert "je poslední superuživatel a nelze ho smazat" in page.inner_text("#status")
    axe(page, "a refusal in the header")

    page.click('nav [data-tab="audit"]')
    page.wait_for_selector("#audit-rows tr")
    axe(page, "the audit log")
    assert errors == []
    page.close()


@in_browser
def test_lines_and_users_are_added_edited_deleted_and_refusals_shown(ucs: UCS, browser: Any) -> None:
    page, errors = admin_page(browser, ucs)
    page.click('nav [data-tab="lines"]')
    page.wait_for_selector(row("device", "SIP/1001"))
    page.click("#add")
    page.fill('#fields [name="device"]', "PJSIP/2001")
    page.fill('#fields [name="name"]', "Reception")
    page.fill('#fields [name="identifiers"]', "00:15:65:AA:BB:01, reception")
    page.select_option('#fields [name="auto_answer"]', "sip-notify")
    page.click("#save")
    page.wait_for_selector(row("device", "PJSIP/2001") + ' td[data-field="identifiers"]:text-is("00:15:65:AA:BB:01, reception")')
    stored = {d["device"]: d for d in ucs.run(ucs.server.get_store().kv_items, "dir.lines").values()}
    assert stored["PJSIP/2001"]["auto_answer"] == "sip-notify" and stored["PJSIP/2001"]["identifiers"] == [
        "00:15:65:AA:BB:01", "reception"]
    # Refusals: an identifier another line has; a WebRTC line without its WebSocket URL.
    page.click("#add")
    page.fill('#fields [name="device"]', "PJSIP/2002")
    page.fill('#fields [name="identifiers"]', "001565aabb01")
    page.click("#save")
    page.wait_for_selector("#error:not([hidden])")
    assert "Identifiers (comma-separated): identifier '001565aabb01' is taken by line" in page.inner_text("#error")
    page.fill('#fields [name="identifiers"]', "")
    page.select_option('#fields [name="kind"]', "webrtc")
    page.click("#save")
    page.wait_for_selector('#error:has-text("WebSocket URL (WebRTC): a WebRTC line needs")')
    page.fill('#fields [name="ws_url"]', "wss://pbx.example.com:8089/ws")
    page.fill('#fields [name="sip_username"]', "webrtc2002")
    page.fill('#fields [name="sip_password"]', "s3cret-sip")
    page.click("#save")
    page.wait_for_selector(row("device", "PJSIP/2002") + ' td[data-field="kind"]:text-is("webrtc")')
    line = ucs.run(ucs.server.get_directory().line_by_device, "PJSIP/2002")
    assert (line.ws_url, line.sip_username, line.sip_password) == ("wss://pbx.example.com:8089/ws", "webrtc2002", "s3cret-sip")
    # An edit leaves the SIP password alone when it is not typed.
    page.click(row("device", "PJSIP/2002") + " button.edit")
    page.fill('#fields [name="name"]', "Web phone")
    page.click("#save")
    page.wait_for_selector(row("name", "Web phone"))
    assert (line.name, line.sip_password) == ("Web phone", "s3cret-sip")
    for device in ("PJSIP/2001", "PJSIP/2002"):
        page.click(row("device", device) + " button.delete")
        page.wait_for_selector(row("device", device), state="detached")
    assert sorted(names(ucs, "lines", "device")) == ["SIP/1001", "SIP/1002"]

    # Users: a bad e-mail refused with the field named; added, edited, deleted.
    page.click('nav [data-tab="users"]')
    page.click("#add")
    page.fill('#fields [name="username"]', "frank")
    page.fill('#fields [name="email"]', "frank-at-example")
    page.click("#save")
    page.wait_for_selector("#error:not([hidden])")
    assert "E-mail: 'frank-at-example' is not accepted; give an address like name@example.com" in page.inner_text("#error")
    page.fill('#fields [name="email"]', "frank@example.com")
    page.click("#save")
    page.wait_for_selector(row("username", "frank"))
    page.click(row("username", "frank") + " button.edit")
    page.check('#fields [name="supervisor"]')
    page.click("#save")
    page.wait_for_selector(row("username", "frank") + ' td[data-field="supervisor"]:text-is("yes")')
    assert stored_user(ucs, "frank")["supervisor"] is True
    page.click(row("username", "frank") + " button.delete")
    page.wait_for_selector(row("username", "frank"), state="detached")
    assert "frank" not in names(ucs, "users", "username")
    assert errors == []
    page.close()

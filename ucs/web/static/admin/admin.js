/* The admin page (/admin/, issue 19): a superuser logs in over the agent bar's
   WebSocket and keeps the directory through config.<kind>.list/add/edit/delete (users,
   lines, queues, teams, groups, AUX and call reasons; memberships picked from lists),
   imports CSV with a preview (config.import, dry run first) and exports it
   (config.export), and pages through audit.list.  A refusal shows the server's reason,
   in the page's language where the page knows the sentence. */
(function () {
  "use strict";
  var TEXT = {
    en: {
      title: "UCS administration", language: "Language", logout: "Log out", username: "User name",
      password: "Password", login: "Log in", users: "Users", lines: "Lines", queues: "Queues",
      teams: "Teams", groups: "Groups", auxreasons: "AUX reasons", callreasons: "Call reasons",
      csv: "Import / export", audit: "Audit log", search: "Search", add: "Add", prev: "Previous", next: "Next",
      newer: "Newer", older: "Older", save: "Save", cancel: "Cancel", at: "When", actor: "Who", source: "Source",
      kind: "What", action: "Action", entity: "Id", changes: "Changes", edit: "Edit", "delete": "Delete",
      actions: "Actions",
      connecting: "Connecting…", lost: "Connection lost; reconnecting…", ask: "Log in as a superuser.",
      refused: "Only a superuser may use the administration; you may not.", loggedIn: "Logged in as ",
      loginFailed: "The login failed.", page: "Page ", of: " of ", newOne: "New: ", editing: "Edit ",
      confirmDelete: "Delete this entry?", saved: "Saved.", deleted: "Deleted.", yes: "yes", no: "no", none: "—",
      f_username: "User name", f_password: "Password (empty: unchanged)", f_firstname: "First name",
      f_lastname: "Last name", f_displayname: "Name", f_email: "E-mail", f_locale: "Language",
      f_supervisor: "Supervisor", f_superuser: "Superuser", f_number: "Number", f_device: "Device",
      f_name: "Name", f_identifiers: "Identifiers (comma-separated)", f_auto_answer: "Auto answer",
      f_kind: "Kind", f_asterisk_name: "Asterisk name", f_type: "Type",
      f_require_reason: "Requires a call reason", f_record: "Record calls", f_id: "Id",
      f_group_id: "Group", f_group: "Group", f_lines: "Lines", f_primary_extension: "Own line",
      f_queues: "Queues", f_members: "Members", f_code: "Code", f_parent_id: "Parent code", f_parent: "Parent code",
      f_ws_url: "WebSocket URL (WebRTC)", f_sip_username: "SIP user name (WebRTC)",
      f_sip_password: "SIP password (empty: unchanged)", f_external_id: "External id", f_data: "Data",
      penalty: "Penalty", team: "Team", member: "Member", queue: "Queue", user: "User",
      o_incoming: "incoming", o_outgoing: "outgoing", o_none: "none", "o_sip-notify": "SIP NOTIFY",
      o_phone: "desk or soft phone", o_webrtc: "the agent bar (WebRTC)",
      // refusals
      e_invalid_data: "Not accepted", e_permission_denied: "Not allowed", e_not_found: "Not found",
      e_too_large: "Too large", e_error: "Refused", e_internal_error: "UCS failed",
      // CSV
      csvKind: "Kind", csvFile: "File", csvPaste: "CSV text (or pick a file)", preview: "Preview",
      apply: "Apply", exportCsv: "Export CSV", line: "Line", column: "Column", problem: "Problem",
      key: "Key", what: "What", added: "added", changed: "changed", unchanged: "unchanged",
      csvNothing: "Give a CSV text or pick a file first.",
      csvSummary: "{added} to add, {changed} to change, {unchanged} unchanged, {problems} problem(s).",
      csvBad: "Nothing can be applied while a row is bad: correct the file and preview it again.",
      csvNoChange: "Nothing to change.", csvReady: "Check the changes, then apply them.",
      csvApplied: "Applied: {added} added, {changed} changed.", csvExported: "Exported {file}.",
      csvStale: "The text changed since the preview: preview it again.", empty: "(empty)"
    },
    cs: {
      title: "Správa UCS", language: "Jazyk", logout: "Odhlásit", username: "Uživatelské jméno",
      password: "Heslo", login: "Přihlásit", users: "Uživatelé", lines: "Linky", queues: "Fronty",
      teams: "Týmy", groups: "Skupiny", auxreasons: "Důvody AUX", callreasons: "Důvody hovorů",
      csv: "Import / export", audit: "Auditní záznam", search: "Hledat", add: "Přidat", prev: "Předchozí",
      next: "Další", newer: "Novější", older: "Starší", save: "Uložit", cancel: "Zrušit", at: "Kdy",
      actor: "Kdo", source: "Zdroj", kind: "Co", action: "Akce", entity: "Id", changes: "Změny",
      edit: "Upravit", "delete": "Smazat", actions: "Akce",
      connecting: "Připojuji…", lost: "Spojení ztraceno; připojuji znovu…",
      ask: "Přihlaste se jako superuživatel.",
      refused: "Správu smí používat jen superuživatel; vy ne.", loggedIn: "Přihlášen: ",
      loginFailed: "Přihlášení se nezdařilo.", page: "Strana ", of: " z ", newOne: "Nový záznam: ",
      editing: "Upravit: ", confirmDelete: "Smazat tento záznam?", saved: "Uloženo.", deleted: "Smazáno.",
      yes: "ano", no: "ne", none: "—",
      f_username: "Uživatelské jméno", f_password: "Heslo (prázdné: beze změny)", f_firstname: "Jméno",
      f_lastname: "Příjmení", f_displayname: "Zobrazované jméno", f_email: "E-mail", f_locale: "Jazyk",
      f_supervisor: "Supervizor", f_superuser: "Superuživatel", f_number: "Číslo", f_device: "Zařízení",
      f_name: "Název", f_identifiers: "Identifikátory (oddělené čárkou)", f_auto_answer: "Automatické přijetí",
      f_kind: "Druh", f_asterisk_name: "Název v Asterisku", f_type: "Typ",
      f_require_reason: "Vyžaduje důvod hovoru", f_record: "Nahrávat hovory", f_id: "Id",
      f_group_id: "Skupina", f_group: "Skupina", f_lines: "Linky", f_primary_extension: "Vlastní linka",
      f_queues: "Fronty", f_members: "Členové", f_code: "Kód", f_parent_id: "Nadřazený kód",
      f_parent: "Nadřazený kód", f_ws_url: "Adresa WebSocketu (WebRTC)", f_sip_username: "SIP jméno (WebRTC)",
      f_sip_password: "SIP heslo (prázdné: beze změny)", f_external_id: "Externí id", f_data: "Data",
      penalty: "Penalizace", team: "Tým", member: "Člen", queue: "Fronta", user: "Uživatel",
      o_incoming: "příchozí", o_outgoing: "odchozí", o_none: "žádné", "o_sip-notify": "SIP NOTIFY",
      o_phone: "stolní nebo softwarový telefon", o_webrtc: "lišta agenta (WebRTC)",
      e_invalid_data: "Nepřijato", e_permission_denied: "Nepovoleno", e_not_found: "Nenalezeno",
      e_too_large: "Příliš velké", e_error: "Odmítnuto", e_internal_error: "Chyba UCS",
      csvKind: "Druh", csvFile: "Soubor", csvPaste: "Text CSV (nebo vyberte soubor)", preview: "Náhled",
      apply: "Použít", exportCsv: "Export CSV", line: "Řádek", column: "Sloupec", problem: "Problém",
      key: "Klíč", what: "Co", added: "přidá se", changed: "změní se", unchanged: "beze změny",
      csvNothing: "Nejdřív vložte text CSV nebo vyberte soubor.",
      csvSummary: "Přidá se {added}, změní se {changed}, beze změny {unchanged}, problémů: {problems}.",
      csvBad: "Dokud je některý řádek chybný, nelze nic použít: opravte soubor a zobrazte náhled znovu.",
      csvNoChange: "Není co měnit.", csvReady: "Zkontrolujte změny a pak je použijte.",
      csvApplied: "Použito: přidáno {added}, změněno {changed}.", csvExported: "Exportováno: {file}.",
      csvStale: "Text se od náhledu změnil: zobrazte náhled znovu.", empty: "(prázdné)"
    }
  };
  // Server sentences the page knows how to say in Czech (the rest is shown as sent).
  var ONE_CS = { user: "uživatel", group: "skupina", team: "tým", queue: "fronta", line: "linka",
    auxreason: "důvod AUX", callreason: "důvod hovoru", "call reason": "důvod hovoru" };
  var SENTENCES_CS = [
    [/^is required$/, function () { return "je povinné"; }],
    [/^is required \(.*\)$/, function () { return "je povinné"; }],
    [/^must not be empty$/, function () { return "nesmí být prázdné"; }],
    [/^'(.*)' is taken by (\w+) (\d+)$/, function (m) { return "„" + m[1] + "“ už má " + (ONE_CS[m[2]] || m[2]) + " " + m[3]; }],
    [/^(\w+) (\d+) does not exist$/, function (m) { return (ONE_CS[m[1]] || m[1]) + " " + m[2] + " neexistuje"; }],
    [/^user (\d+) is the last superuser and cannot be deleted$/, function (m) {
      return "uživatel " + m[1] + " je poslední superuživatel a nelze ho smazat"; }],
    [/^call reason (\d+) has sub-codes; delete them first$/, function (m) {
      return "důvod hovoru " + m[1] + " má podřízené kódy; nejdřív smažte je"; }],
    [/^'(.*)' is not accepted; give an address like (.*)$/, function (m) {
      return "„" + m[1] + "“ není platná adresa; zadejte např. " + m[2]; }],
    [/^request of (\d+) bytes is too large; at most (\d+) bytes are accepted$/, function (m) {
      return "požadavek má " + m[1] + " bajtů; přijme se nejvýš " + m[2] + " bajtů"; }],
    [/^the file is (\d+) bytes; at most (\d+) bytes are accepted.*$/, function (m) {
      return "soubor má " + m[1] + " bajtů; přijme se nejvýš " + m[2] + " bajtů"; }],
    [/^is not a column of (\w+); accepted: (.*)$/, function (m) { return "není sloupec souboru; přijímají se: " + m[2]; }],
    [/^the key column is missing$/, function () { return "chybí klíčový sloupec"; }],
    [/^'(.*)' is on line (\d+) too$/, function (m) { return "„" + m[1] + "“ je i na řádku " + m[2]; }],
    [/^there is no (\w+) '(.*)'$/, function (m) { return "neexistuje " + (ONE_CS[m[1]] || m[1]) + " „" + m[2] + "“"; }]
  ];
  var ONE = { users: "user", lines: "line", queues: "queue", teams: "team", groups: "group",
    auxreasons: "auxreason", callreasons: "callreason" };

  // Per kind: the list's columns ([field, how to show it]) and the form's fields:
  // t text, b yes/no, l comma-separated list, p secret (sent only when typed),
  // s a choice ([field, "s", values]), r another entity ([field, "r", kind]),
  // m entities to tick ([field, "m", kind]), Q a user's queues, U a queue's members.
  var KINDS = {
    users: { cols: ["id", "username", "displayname", ["group_id", "groups"], "supervisor", "superuser"],
      fields: [["username", "t"], ["password", "p"], ["firstname", "t"], ["lastname", "t"], ["displayname", "t"],
               ["email", "t"], ["locale", "t"], ["number", "t"], ["group_id", "r", "groups"],
               ["supervisor", "b"], ["superuser", "b"], ["lines", "m", "lines"],
               ["primary_extension", "r", "lines"], ["queues", "Q"]],
      needs: ["groups", "lines", "queues", "teams"] },
    lines: { cols: ["id", "device", "name", "identifiers", "kind"],
      fields: [["device", "t"], ["name", "t"], ["identifiers", "l"], ["auto_answer", "s", ["none", "sip-notify"]],
               ["kind", "s", ["phone", "webrtc"]], ["ws_url", "t"], ["sip_username", "t"], ["sip_password", "p"]],
      needs: [] },
    queues: { cols: ["id", "name", "asterisk_name", "number", "type", "members"],
      fields: [["name", "t"], ["asterisk_name", "t"], ["number", "t"], ["type", "s", [1, 0]],
               ["require_reason", "b"], ["record", "b"], ["members", "U"]],
      needs: ["users"] },
    teams: { cols: ["id", "name", "members"], fields: [["name", "t"]], needs: ["users"] },
    groups: { cols: ["id", "name", "members"], fields: [["name", "t"]], needs: ["users"] },
    auxreasons: { cols: ["id", "name"], fields: [["name", "t"]], needs: [] },
    callreasons: { cols: ["id", "code", "name", ["parent_id", "callreasons"]],
      fields: [["code", "t"], ["name", "t"], ["parent_id", "r", "callreasons"]], needs: [] }
  };
  var OPTION_TEXT = { type: { 1: "o_incoming", 0: "o_outgoing" } };
  var PAGE = 20, AUDIT_PAGE = 20;
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var lang = params.get("lang") || localStorage.getItem("ucs-admin-lang") ||
    ((navigator.language || "").slice(0, 2) === "cs" ? "cs" : "en");
  if (!TEXT[lang]) lang = "en";
  var ws = null, nextId = 0, pending = {}, retry = 1000, user = null;
  var tab = "queues", cache = {}, page = 0, editing = null, auditStack = [], auditBefore = null, auditNext = null;
  var previewed = null;

  function t(key) { return TEXT[lang][key] !== undefined ? TEXT[lang][key] : (TEXT.en[key] !== undefined ? TEXT.en[key] : key); }
  function fill(text, values) { return text.replace(/\{(\w+)\}/g, function (_, k) { return String(values[k]); }); }
  function say(text, refused) { $("status").textContent = text; $("status").className = refused ? "refused" : ""; }

  function sentence(text) {
    if (lang !== "cs") return text;
    for (var i = 0; i < SENTENCES_CS.length; i++) {
      var m = SENTENCES_CS[i][0].exec(text);
      if (m) return SENTENCES_CS[i][1](m);
    }
    return text;
  }
  function fieldName(k) {
    var key = "f_" + k;
    return TEXT.en[key] !== undefined ? t(key) : k;
  }
  // A refusal as the user reads it: what kind of refusal, then each field with its reason.
  function problem(err) {
    if (!err || typeof err !== "object") return String(err);
    var lead = t("e_" + (err.error || "error"));
    if (lead === "e_" + err.error) lead = t("e_error");
    if (err.fields) {
      return lead + " — " + Object.keys(err.fields).map(function (k) {
        return fieldName(k) + ": " + sentence(err.fields[k]);
      }).join("; ");
    }
    return lead + " — " + sentence(err.message || "");
  }

  function translate() {
    document.documentElement.lang = lang;
    $("lang").value = lang;
    document.querySelectorAll("[data-t]").forEach(function (el) { el.textContent = t(el.dataset.t); });
    document.querySelectorAll("[data-tp]").forEach(function (el) { el.placeholder = t(el.dataset.tp); });
    document.querySelectorAll("[data-ta]").forEach(function (el) { el.setAttribute("aria-label", t(el.dataset.ta)); });
    document.querySelectorAll("#csv-kind option").forEach(function (o) { o.textContent = t(o.value); });
    document.title = t("title");
  }

  function call(method, args) {
    return new Promise(function (resolve, reject) {
      var id = ++nextId, data = JSON.stringify({ id: id, method: method, args: args || [] });
      pending[id] = { resolve: resolve, reject: reject, size: data.length };
      ws.send(data);
    });
  }

  function shown(v) {
    if (v === true) return t("yes");
    if (v === false) return t("no");
    if (Array.isArray(v)) return v.join(", ");
    if (v === null || v === undefined) return "";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  // -- the directory, as last listed ------------------------------------------------------
  function list(kind) { return cache[kind] || []; }
  function find(kind, id) { return list(kind).filter(function (e) { return e.id === id; })[0]; }
  function label(kind, e) {
    if (!e) return "";
    if (kind === "users") return e.displayname && e.displayname !== e.username ? e.displayname + " (" + e.username + ")" : e.username;
    if (kind === "lines") return e.name ? e.device + " — " + e.name : e.device;
    if (kind === "queues") return e.name + " (" + e.asterisk_name + ")";
    if (kind === "callreasons") return e.name ? e.code + " — " + e.name : e.code;
    return e.name;
  }
  function membersOf(kind, e) {
    var users = list("users");
    if (kind === "queues") return users.filter(function (u) { return u.queues && u.queues[e.id] !== undefined; }).length;
    if (kind === "groups") return users.filter(function (u) { return u.group_id === e.id; }).length;
    return users.filter(function (u) {
      return Object.keys(u.queues || {}).some(function (q) { return u.queues[q].team_id === e.id; });
    }).length;
  }
  function cell(kind, e, col) {
    if (Array.isArray(col)) return e[col[0]] === null || e[col[0]] === undefined ? "" : label(col[1], find(col[1], e[col[0]]));
    if (col === "members") return String(membersOf(kind, e));
    if (col === "type") return t(OPTION_TEXT.type[e.type] || String(e.type));
    return shown(e[col]);
  }
  function colName(col) { return Array.isArray(col) ? col[0] : col; }

  function fetch(kinds) {
    return Promise.all(kinds.map(function (k) {
      return call("config." + k + ".list").then(function (result) { cache[k] = result; });
    }));
  }

  // -- the tabs ------------------------------------------------------------------------------
  function open(name) {
    tab = name;
    document.querySelectorAll("nav button").forEach(function (b) {
      b.setAttribute("aria-selected", b.dataset.tab === name ? "true" : "false");
    });
    $("editor").hidden = true;
    $("list").hidden = !KINDS[name];
    $("audit").hidden = name !== "audit";
    $("csv").hidden = name !== "csv";
    if (name === "audit") { auditStack = []; auditBefore = null; return loadAudit(); }
    // A tab of another script (operations.js): its section is its own; ours are hidden above.
    if (name === "csv" || !KINDS[name]) return Promise.resolve();
    page = 0;
    $("search").value = "";
    return load();
  }

  function load() {
    var kind = tab;
    return fetch([kind].concat(KINDS[kind].needs)).then(function () { if (tab === kind && $("editor").hidden) draw(); })
      .catch(function (err) { say(problem(err), true); });
  }

  function matching() {
    var q = $("search").value.trim().toLowerCase(), kind = tab;
    if (!q) return list(kind);
    return list(kind).filter(function (e) {
      return KINDS[kind].cols.some(function (c) { return cell(kind, e, c).toLowerCase().indexOf(q) >= 0; });
    });
  }

  function draw() {
    var kind = tab, spec = KINDS[kind], found = matching();
    var pages = Math.max(1, Math.ceil(found.length / PAGE));
    page = Math.min(page, pages - 1);
    var head = document.createElement("tr");
    spec.cols.concat([null]).forEach(function (c) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = c ? fieldName(colName(c)) : t("actions");
      head.appendChild(th);
    });
    $("head").replaceChildren(head);
    var rows = found.slice(page * PAGE, page * PAGE + PAGE).map(function (e) {
      var tr = document.createElement("tr");
      tr.dataset.id = e.id;
      spec.cols.forEach(function (c) {
        var td = document.createElement("td"); td.dataset.field = colName(c); td.textContent = cell(kind, e, c); tr.appendChild(td);
      });
      var td = document.createElement("td");
      var edit = document.createElement("button"); edit.type = "button"; edit.className = "edit";
      edit.textContent = t("edit"); edit.setAttribute("aria-label", t("edit") + " " + label(kind, e));
      edit.onclick = function () { form(e); };
      var del = document.createElement("button"); del.type = "button"; del.className = "delete";
      del.textContent = t("delete"); del.setAttribute("aria-label", t("delete") + " " + label(kind, e));
      del.onclick = function () { remove(e); };
      td.append(edit, " ", del);
      tr.appendChild(td);
      return tr;
    });
    $("rows").replaceChildren.apply($("rows"), rows);
    $("page").textContent = t("page") + (page + 1) + t("of") + pages;
    $("prev").disabled = page === 0;
    $("next").disabled = page >= pages - 1;
  }

  // -- the form ------------------------------------------------------------------------------
  function labelled(text, control) {
    var l = document.createElement("label"), span = document.createElement("span");
    span.textContent = text;
    l.append(span, control);
    return l;
  }
  // A box to tick, before its text.
  function ticked(text, box) {
    var l = labelled(text, box);
    l.prepend(box);
    return l;
  }
  function select(options, value, aria) {
    var s = document.createElement("select");
    options.forEach(function (o) {
      var opt = document.createElement("option");
      opt.value = String(o[0]); opt.textContent = o[1];
      if (String(o[0]) === String(value)) opt.selected = true;
      s.appendChild(opt);
    });
    if (aria) s.setAttribute("aria-label", aria);
    return s;
  }
  function refOptions(kind, self) {
    var items = list(kind).filter(function (e) { return !self || (e.id !== self.id && !(kind === "callreasons" && e.parent_id !== null)); });
    if (kind === "callreasons") items = items.filter(function (e) { return e.parent_id === null; });
    return [["", t("none")]].concat(items.map(function (e) { return [e.id, label(kind, e)]; }));
  }
  function fieldset(name, table) {
    var fs = document.createElement("fieldset"), legend = document.createElement("legend");
    fs.className = "pick"; fs.dataset.field = name;
    legend.textContent = fieldName(name);
    fs.append(legend, table);
    return fs;
  }
  function number(value, aria) {
    var n = document.createElement("input");
    n.type = "number"; n.min = "0"; n.max = "1000"; n.value = String(value || 0); n.className = "penalty";
    n.setAttribute("aria-label", aria);
    return n;
  }
  function checkbox(checked, cls) {
    var c = document.createElement("input");
    c.type = "checkbox"; c.checked = !!checked; if (cls) c.className = cls;
    return c;
  }
  function grid(headers, rows) {
    var table = document.createElement("table"), thead = document.createElement("thead"), tr = document.createElement("tr");
    headers.forEach(function (h) { var th = document.createElement("th"); th.scope = "col"; th.textContent = h; tr.appendChild(th); });
    thead.appendChild(tr);
    var tbody = document.createElement("tbody");
    rows.forEach(function (r) { tbody.appendChild(r); });
    table.append(thead, tbody);
    return table;
  }
  function row(id, attr, cells) {
    var tr = document.createElement("tr");
    tr.dataset[attr] = id;
    cells.forEach(function (c) { var td = document.createElement("td"); td.append(c); tr.appendChild(td); });
    return tr;
  }

  // A user's queues: ticked ones are memberships, each with its penalty, team and supervisor.
  function queuesPick(entity) {
    var mine = (entity && entity.queues) || {};
    var rows = list("queues").map(function (q) {
      var m = mine[q.id] || null, name = label("queues", q);
      var teams = select([["", t("none")]].concat(list("teams").map(function (tm) { return [tm.id, tm.name]; })),
        m && m.team_id !== null ? m.team_id : "", t("team") + ": " + name);
      teams.className = "team";
      var sup = checkbox(m && m.supervisor, "supervisor");
      sup.setAttribute("aria-label", t("f_supervisor") + ": " + name);
      return row(q.id, "queue", [ticked(name, checkbox(m, "member")), number(m ? m.priorities : 0, t("penalty") + ": " + name),
        teams, sup]);
    });
    return fieldset("queues", grid([t("queue"), t("penalty"), t("team"), t("f_supervisor")], rows));
  }
  // A queue's members: every user, ticked when a member, with the penalty.
  function membersPick(entity) {
    var rows = list("users").map(function (u) {
      var m = entity && u.queues ? u.queues[entity.id] : undefined, name = label("users", u);
      return row(u.id, "user", [ticked(name, checkbox(m !== undefined, "member")),
        number(m ? m.priorities : 0, t("penalty") + ": " + name)]);
    });
    return fieldset("members", grid([t("user"), t("penalty")], rows));
  }
  function linesPick(name, entity) {
    var mine = (entity && entity.line_ids) || [];
    var boxes = document.createElement("div");
    boxes.className = "ticks";
    list("lines").forEach(function (ln) {
      var c = checkbox(mine.indexOf(ln.id) >= 0, "member");
      c.dataset.id = ln.id;
      boxes.appendChild(ticked(label("lines", ln), c));
    });
    return fieldset(name, boxes);
  }

  function form(entity) {
    editing = entity;
    var kind = tab;
    $("editor-title").textContent = entity ? t("editing") + label(kind, entity) : t("newOne") + t(kind);
    var controls = KINDS[kind].fields.map(function (f) {
      var name = f[0], type = f[1], v = entity ? entity[name] : undefined, input;
      if (type === "Q") return queuesPick(entity);
      if (type === "U") return membersPick(entity);
      if (type === "m") return linesPick(name, entity);
      if (type === "s") {
        input = select(f[2].map(function (o) { return [o, t((OPTION_TEXT[name] || {})[o] || "o_" + o)]; }),
          v === undefined ? f[2][0] : v);
      } else if (type === "r") {
        input = select(refOptions(f[2], kind === f[2] ? entity : null), v === null || v === undefined ? "" : v);
      } else {
        input = document.createElement("input");
        if (type === "b") { input.type = "checkbox"; input.checked = !!v; }
        else if (type === "p") { input.type = "password"; input.autocomplete = "new-password"; }
        else input.value = shown(v);
      }
      input.name = name;
      var l = labelled(fieldName(name), input);
      l.dataset.field = name;
      return l;
    });
    $("fields").replaceChildren.apply($("fields"), controls);
    $("error").hidden = true;
    $("list").hidden = true;
    $("editor").hidden = false;
    var first = $("fields").querySelector("input, select");
    if (first) first.focus();
  }

  function valueOf(f) {
    var name = f[0], type = f[1], box = $("fields");
    if (type === "Q") {
      var out = {};
      box.querySelectorAll('[data-field="queues"] tr[data-queue]').forEach(function (tr) {
        if (!tr.querySelector(".member").checked) return;
        var team = tr.querySelector(".team").value;
        out[tr.dataset.queue] = { priorities: parseInt(tr.querySelector(".penalty").value, 10) || 0,
          team_id: team ? parseInt(team, 10) : null, supervisor: tr.querySelector(".supervisor").checked };
      });
      return out;
    }
    if (type === "m") {
      var ids = [];
      box.querySelectorAll('[data-field="' + name + '"] .member').forEach(function (c) { if (c.checked) ids.push(parseInt(c.dataset.id, 10)); });
      return ids;
    }
    var input = box.querySelector('[name="' + name + '"]');
    if (type === "b") return input.checked;
    if (type === "l") return input.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    if (type === "r") return input.value ? parseInt(input.value, 10) : null;
    if (type === "s") return typeof f[2][0] === "number" ? parseInt(input.value, 10) : input.value;
    return input.value;
  }
  function original(f) {
    var v = editing[f[1] === "m" ? "line_ids" : f[0]];
    if (f[1] === "m") return v || [];
    if (f[1] === "Q") {
      var out = {};
      Object.keys(v || {}).forEach(function (k) { out[k] = { priorities: v[k].priorities, team_id: v[k].team_id, supervisor: v[k].supervisor }; });
      return out;
    }
    if (f[1] === "t") return shown(v);
    return v === undefined ? null : v;
  }
  function same(f, a, b) {
    if (f[1] === "m") { a = a.slice().sort(); b = b.slice().sort(); }
    return JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
  }
  function sorted(o) {
    if (!o || typeof o !== "object" || Array.isArray(o)) return o;
    var out = {};
    Object.keys(o).sort().forEach(function (k) { out[k] = sorted(o[k]); });
    return out;
  }

  // What the form sends: on add every field given; on edit only those that changed
  // (a user's name shown is computed, so an untouched one is never sent back).
  function collect() {
    var data = editing ? { id: editing.id } : {};
    KINDS[tab].fields.forEach(function (f) {
      if (f[1] === "U") return;
      var v = valueOf(f);
      if (f[1] === "p") { if (v) data[f[0]] = v; return; }
      if (editing ? !same(f, v, original(f)) : (f[1] !== "t" || v !== "")) data[f[0]] = v;
    });
    return data;
  }

  // The queue's members as the pick list has them ([{user_id, penalty}]), or null when the
  // list changes nobody's membership of queue ``qid`` (nothing to send).
  function pickedMembers(qid) {
    var members = [], changed = false;
    $("fields").querySelectorAll('[data-field="members"] tr[data-user]').forEach(function (tr) {
      var u = find("users", parseInt(tr.dataset.user, 10)), was = (u.queues || {})[qid];
      var now = tr.querySelector(".member").checked, penalty = parseInt(tr.querySelector(".penalty").value, 10) || 0;
      if (now) members.push({ user_id: u.id, penalty: penalty });
      if (now ? (!was || was.priorities !== penalty) : !!was) changed = true;
    });
    return changed ? members : null;
  }

  function closeForm() { $("editor").hidden = true; $("list").hidden = false; editing = null; $("add").focus(); }

  $("editor").addEventListener("submit", function (e) {
    e.preventDefault();
    // A queue's members are set in one call after the queue is saved: all of them or none
    // (config.queues.setMembers), never some users edited and others not.
    var kind = tab, queueMembers = kind === "queues", members = null;
    if (queueMembers && editing) members = pickedMembers(editing.id);
    call("config." + kind + (editing ? ".edit" : ".add"), [collect()]).then(function (saved) {
      if (queueMembers && !editing) members = pickedMembers(saved.id);
      if (members) return call("config.queues.setMembers", [saved.id, members]);
    }).then(function () {
      closeForm(); say(t("saved")); return load();
    }).catch(function (err) { $("error").textContent = problem(err); $("error").hidden = false; load(); });
  });
  $("cancel").onclick = closeForm;

  function remove(entity) {
    if (!confirm(t("confirmDelete"))) return;
    call("config." + tab + ".delete", [entity.id]).then(function () { say(t("deleted")); return load(); })
      .catch(function (err) { say(problem(err), true); });
  }

  // -- CSV import and export -----------------------------------------------------------------
  function csvArgs(dry) {
    var name = ($("csv-file").files[0] || {}).name;
    var args = { kind: $("csv-kind").value, csv: $("csv-text").value, dry_run: dry };
    if (name) args.file = name;
    return args;
  }
  function csvTable(id, headers, rows) {
    var table = $(id);
    table.hidden = rows.length === 0;
    var tr = document.createElement("tr");
    headers.forEach(function (h) { var th = document.createElement("th"); th.scope = "col"; th.textContent = t(h); tr.appendChild(th); });
    table.querySelector("thead").replaceChildren(tr);
    table.querySelector("tbody").replaceChildren.apply(table.querySelector("tbody"), rows.map(function (r) {
      var tr = document.createElement("tr");
      r.forEach(function (v, i) {
        var td = document.createElement("td"); td.textContent = v; td.dataset.field = headers[i]; tr.appendChild(td);
      });
      return tr;
    }));
  }
  function columns(o) { return Object.keys(o).map(function (k) { return k + ": " + o[k]; }).join("; "); }
  function showReport(r) {
    csvTable("csv-problems", ["line", "column", "problem"], r.problems.map(function (p) {
      return [String(p.line), p.column, sentence(p.message)];
    }));
    var changes = [];
    r.added.forEach(function (c) { changes.push([c.line, c.key, "added", columns(c.after)]); });
    r.changed.forEach(function (c) {
      changes.push([c.line, c.key, "changed", Object.keys(c.after).map(function (k) {
        return k + ": " + (c.before[k] || t("empty")) + " → " + (c.after[k] || t("empty")); }).join("; ")]);
    });
    r.unchanged.forEach(function (c) { changes.push([c.line, c.key, "unchanged", ""]); });
    changes.sort(function (a, b) { return a[0] - b[0]; });
    csvTable("csv-changes", ["line", "key", "what", "changes"], changes.map(function (c) {
      return [String(c[0]), c[1], t(c[2]), c[3]];
    }));
    $("csv-changes").querySelectorAll("tbody tr").forEach(function (tr, i) { tr.dataset.what = changes[i][2]; });
  }
  function csvSay(text, bad) { $("csv-message").textContent = text; $("csv-message").className = bad ? "refused" : ""; }
  function counts(r) {
    return { added: r.added.length, changed: r.changed.length, unchanged: r.unchanged.length, problems: r.problems.length };
  }
  function resetPreview() {
    previewed = null;
    $("csv-apply").disabled = true;
  }

  $("csv-preview").onclick = function () {
    resetPreview();
    if (!$("csv-text").value.trim()) { csvSay(t("csvNothing"), true); return; }
    var args = csvArgs(true);
    call("config.import", args).then(function (r) {
      showReport(r);
      var c = counts(r), text = fill(t("csvSummary"), c) + " ";
      if (c.problems) { csvSay(text + t("csvBad"), true); return; }
      if (!c.added && !c.changed) { csvSay(text + t("csvNoChange")); return; }
      previewed = args;
      $("csv-apply").disabled = false;
      csvSay(text + t("csvReady"));
    }).catch(function (err) { csvSay(problem(err), true); });
  };
  $("csv-apply").onclick = function () {
    if (!previewed) return;
    var args = csvArgs(false);
    if (args.csv !== previewed.csv || args.kind !== previewed.kind) { resetPreview(); csvSay(t("csvStale"), true); return; }
    $("csv-apply").disabled = true;
    call("config.import", args).then(function (r) {
      previewed = null;
      showReport(r);
      csvSay(fill(t("csvApplied"), counts(r)));
    }).catch(function (err) { previewed = null; csvSay(problem(err), true); });
  };
  $("csv-file").addEventListener("change", function () {
    var file = $("csv-file").files[0];
    resetPreview();
    if (!file) return;
    var stem = file.name.replace(/\.csv$/i, "").toLowerCase();
    if (KINDS[stem]) $("csv-kind").value = stem;
    file.text().then(function (text) { $("csv-text").value = text; csvSay(""); });
  });
  $("csv-text").addEventListener("input", resetPreview);
  $("csv-kind").addEventListener("change", resetPreview);
  $("csv-export").onclick = function () {
    call("config.export", [$("csv-kind").value]).then(function (r) {
      var a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([r.csv], { type: "text/csv;charset=utf-8" }));
      a.download = r.file;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
      csvSay(fill(t("csvExported"), r));
    }).catch(function (err) { csvSay(problem(err), true); });
  };

  // -- the audit log -----------------------------------------------------------------------
  function changes(entry) {
    var before = entry.before || {}, after = entry.after || {}, out = [];
    Object.keys(Object.assign({}, before, after)).forEach(function (k) {
      var b = shown(before[k]), a = shown(after[k]);
      if (b !== a) out.push(k + ": " + (entry.before ? b + " → " : "") + (entry.after ? a : "∅"));
    });
    return out.join("; ");
  }

  function loadAudit() {
    return call("audit.list", [null, AUDIT_PAGE, auditBefore]).then(function (result) {
      auditNext = result.next;
      var rows = result.entries.map(function (e) {
        var tr = document.createElement("tr");
        tr.dataset.id = e.id;
        [new Date(e.at * 1000).toLocaleString(lang), e.actor, e.source, e.kind, e.action, e.entity_id, changes(e)]
          .forEach(function (v, i) {
            var td = document.createElement("td"); td.textContent = shown(v);
            td.dataset.field = ["at", "actor", "source", "kind", "action", "entity_id", "changes"][i];
            if (i === 6) td.className = "changes";
            tr.appendChild(td);
          });
        return tr;
      });
      $("audit-rows").replaceChildren.apply($("audit-rows"), rows);
      $("older").disabled = auditNext === null;
      $("newer").disabled = auditStack.length === 0;
    }).catch(function (err) { say(problem(err), true); });
  }
  $("older").onclick = function () { auditStack.push(auditBefore); auditBefore = auditNext; loadAudit(); };
  $("newer").onclick = function () { auditBefore = auditStack.pop(); loadAudit(); };

  // -- logging in --------------------------------------------------------------------------
  function askLogin() {
    user = null;
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
  }

  $("login").addEventListener("submit", function (e) {
    e.preventDefault();
    call("login", [$("username").value, $("password").value]).then(function (result) {
      $("password").value = "";
      if (!result.user || !result.user.superuser) {
        call("logout").catch(function () {});
        say(t("refused"), true);
        return;
      }
      user = result.user;
      $("login").hidden = true;
      $("app").hidden = false;
      $("logout").hidden = false;
      say(t("loggedIn") + user.username);
      return open(tab);
    }).catch(function (err) { say(err && err.message ? problem(err) : t("loginFailed"), true); });
  });

  $("logout").onclick = function () {
    call("logout").catch(function () {}).then(function () { askLogin(); say(t("ask")); });
  };

  document.querySelectorAll("nav button").forEach(function (b) { b.onclick = function () { open(b.dataset.tab); }; });
  // A tab another script adds (operations.js, no data-tab) shows its own section: ours step aside.
  document.querySelector("nav").addEventListener("click", function (e) {
    var b = e.target.closest("button");
    if (!b || b.dataset.tab) return;
    ["list", "audit", "csv", "editor"].forEach(function (id) { $(id).hidden = true; });
    document.querySelectorAll("nav button[data-tab]").forEach(function (x) { x.setAttribute("aria-selected", "false"); });
  });
  // The tab list by keyboard, as WAI-ARIA's tabs: arrows move to the previous/next tab, Home/End to the ends.
  document.querySelector("nav").addEventListener("keydown", function (e) {
    var tabs = Array.prototype.slice.call(document.querySelectorAll("nav button:not([hidden])"));
    var i = tabs.indexOf(document.activeElement);
    var to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (i < 0 || to === undefined) return;
    e.preventDefault();
    var next = tabs[(to + tabs.length) % tabs.length];
    next.focus();
    next.click();
  });
  $("search").addEventListener("input", function () { page = 0; draw(); });
  $("prev").onclick = function () { page--; draw(); };
  $("next").onclick = function () { page++; draw(); };
  $("add").onclick = function () { form(null); };
  $("lang").addEventListener("change", function () {
    lang = $("lang").value;
    localStorage.setItem("ucs-admin-lang", lang);
    translate();
    if (user) { if (tab === "audit") loadAudit(); else if (KINDS[tab] && $("editor").hidden) draw(); }
  });

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    ws = new WebSocket(url);
    ws.onmessage = function (m) {
      var msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      if (msg.event === "hello") {
        retry = 1000;
        askLogin();
        say(t("ask"));
      } else if (msg.event === "logout") {
        askLogin();
        say((msg.data && msg.data.reason) || t("ask"));
      } else if (msg.id !== undefined && msg.id !== null && pending[msg.id]) {
        var p = pending[msg.id];
        delete pending[msg.id];
        if (msg.error) p.reject(msg.error); else p.resolve(msg.result);
      } else if (msg.error && (msg.id === null || msg.id === undefined)) {
        // A request refused before it was read (too large): the largest one waiting.
        var ids = Object.keys(pending).sort(function (a, b) { return pending[b].size - pending[a].size; });
        if (ids.length) { var q = pending[ids[0]]; delete pending[ids[0]]; q.reject(msg.error); }
      }
    };
    ws.onclose = function () {
      say(t("lost"));
      pending = {};
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  // For the page's other scripts (operations.js): requests on this page's one session.
  window.UCSAdmin = { call: call };

  translate();
  say(t("connecting"));
  connect();
})();

/* The admin page (/admin/, issue 19, first slice): a superuser logs in over the agent
   bar's WebSocket and lists, adds, edits and deletes users, lines and queues through
   config.<kind>.list/add/edit/delete, and pages through audit.list.  Every refusal
   shows the server's own message. */
(function () {
  "use strict";
  var TEXT = {
    en: {
      title: "UCS administration", language: "Language", logout: "Log out", username: "User name",
      password: "Password", login: "Log in", users: "Users", lines: "Lines", queues: "Queues",
      audit: "Audit log", search: "Search", add: "Add", prev: "Previous", next: "Next", newer: "Newer",
      older: "Older", save: "Save", cancel: "Cancel", at: "When", actor: "Who", source: "Source",
      kind: "What", action: "Action", entity: "Id", changes: "Changes", edit: "Edit", "delete": "Delete",
      connecting: "Connecting…", lost: "Connection lost; reconnecting…", ask: "Log in as a superuser.",
      refused: "Only a superuser may use the administration; you may not.", loggedIn: "Logged in as ",
      loginFailed: "The login failed.", page: "Page ", of: " of ", newOne: "New ", editing: "Edit ",
      confirmDelete: "Delete this entry?", saved: "Saved.", deleted: "Deleted.", yes: "yes", no: "no",
      f_username: "User name", f_password: "Password (empty: unchanged)", f_firstname: "First name",
      f_lastname: "Last name", f_displayname: "Name", f_email: "E-mail", f_locale: "Language",
      f_supervisor: "Supervisor", f_superuser: "Superuser", f_number: "Number", f_device: "Device",
      f_name: "Name", f_identifiers: "Identifiers (comma-separated)", f_auto_answer: "Auto answer",
      f_kind: "Kind", f_asterisk_name: "Asterisk name", f_type: "Type (1 incoming, 0 outgoing)",
      f_require_reason: "Requires a call reason", f_record: "Record calls", f_id: "Id"
    },
    cs: {
      title: "Správa UCS", language: "Jazyk", logout: "Odhlásit", username: "Uživatelské jméno",
      password: "Heslo", login: "Přihlásit", users: "Uživatelé", lines: "Linky", queues: "Fronty",
      audit: "Auditní záznam", search: "Hledat", add: "Přidat", prev: "Předchozí", next: "Další",
      newer: "Novější", older: "Starší", save: "Uložit", cancel: "Zrušit", at: "Kdy", actor: "Kdo",
      source: "Zdroj", kind: "Co", action: "Akce", entity: "Id", changes: "Změny", edit: "Upravit",
      "delete": "Smazat", connecting: "Připojuji…", lost: "Spojení ztraceno; připojuji znovu…",
      ask: "Přihlaste se jako superuživatel.",
      refused: "Správu smí používat jen superuživatel; vy ne.", loggedIn: "Přihlášen: ",
      loginFailed: "Přihlášení se nezdařilo.", page: "Strana ", of: " z ", newOne: "Nový záznam: ",
      editing: "Upravit: ", confirmDelete: "Smazat tento záznam?", saved: "Uloženo.", deleted: "Smazáno.",
      yes: "ano", no: "ne",
      f_username: "Uživatelské jméno", f_password: "Heslo (prázdné: beze změny)", f_firstname: "Jméno",
      f_lastname: "Příjmení", f_displayname: "Jméno", f_email: "E-mail", f_locale: "Jazyk",
      f_supervisor: "Supervizor", f_superuser: "Superuživatel", f_number: "Číslo", f_device: "Zařízení",
      f_name: "Název", f_identifiers: "Identifikátory (oddělené čárkou)", f_auto_answer: "Automatické přijetí",
      f_kind: "Druh", f_asterisk_name: "Název v Asterisku", f_type: "Typ (1 příchozí, 0 odchozí)",
      f_require_reason: "Vyžaduje důvod hovoru", f_record: "Nahrávat hovory", f_id: "Id"
    }
  };
  // Per kind: the columns of the list and the fields of the form (t: text, b: yes/no,
  // i: integer, l: comma-separated list, p: password, sent only when given).
  var KINDS = {
    users: { cols: ["id", "username", "displayname", "supervisor", "superuser"],
      fields: [["username", "t"], ["password", "p"], ["firstname", "t"], ["lastname", "t"], ["email", "t"],
               ["locale", "t"], ["number", "t"], ["supervisor", "b"], ["superuser", "b"]] },
    lines: { cols: ["id", "device", "name", "identifiers", "kind"],
      fields: [["device", "t"], ["name", "t"], ["identifiers", "l"], ["auto_answer", "t"], ["kind", "t"]] },
    queues: { cols: ["id", "name", "asterisk_name", "number", "type"],
      fields: [["name", "t"], ["asterisk_name", "t"], ["number", "t"], ["type", "i"],
               ["require_reason", "b"], ["record", "b"]] }
  };
  var PAGE = 20, AUDIT_PAGE = 20;
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var lang = params.get("lang") || localStorage.getItem("ucs-admin-lang") ||
    ((navigator.language || "").slice(0, 2) === "cs" ? "cs" : "en");
  if (!TEXT[lang]) lang = "en";
  var ws = null, nextId = 0, pending = {}, retry = 1000, user = null;
  var tab = "queues", items = [], page = 0, editing = null, auditStack = [], auditBefore = null, auditNext = null;

  function t(key) { return TEXT[lang][key] || TEXT.en[key] || key; }
  function say(text, refused) { $("status").textContent = text; $("status").className = refused ? "refused" : ""; }
  function problem(err) {
    var text = (err && err.message) || String(err);
    if (err && err.fields) text += " — " + Object.keys(err.fields).map(function (k) { return k + ": " + err.fields[k]; }).join("; ");
    return text;
  }

  function translate() {
    document.documentElement.lang = lang;
    $("lang").value = lang;
    document.querySelectorAll("[data-t]").forEach(function (el) { el.textContent = t(el.dataset.t); });
    document.querySelectorAll("[data-tp]").forEach(function (el) { el.placeholder = t(el.dataset.tp); });
    document.title = t("title");
  }

  function call(method, args) {
    return new Promise(function (resolve, reject) {
      var id = ++nextId;
      pending[id] = { resolve: resolve, reject: reject };
      ws.send(JSON.stringify({ id: id, method: method, args: args || [] }));
    });
  }

  function shown(v) {
    if (v === true) return t("yes");
    if (v === false) return t("no");
    if (Array.isArray(v)) return v.join(", ");
    if (v === null || v === undefined) return "";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  // -- the lists ---------------------------------------------------------------------------
  function open(name) {
    tab = name;
    document.querySelectorAll("nav button").forEach(function (b) {
      b.setAttribute("aria-selected", b.dataset.tab === name ? "true" : "false");
    });
    $("editor").hidden = true;
    $("list").hidden = name === "audit";
    $("audit").hidden = name !== "audit";
    if (name === "audit") { auditStack = []; auditBefore = null; return loadAudit(); }
    page = 0;
    $("search").value = "";
    return load();
  }

  function load() {
    return call("config." + tab + ".list").then(function (result) { items = result; draw(); })
      .catch(function (err) { say(problem(err), true); });
  }

  function matching() {
    var q = $("search").value.trim().toLowerCase();
    if (!q) return items;
    var cols = KINDS[tab].cols;
    return items.filter(function (e) {
      return cols.some(function (c) { return shown(e[c]).toLowerCase().indexOf(q) >= 0; });
    });
  }

  function draw() {
    var kind = KINDS[tab], found = matching();
    var pages = Math.max(1, Math.ceil(found.length / PAGE));
    page = Math.min(page, pages - 1);
    var head = document.createElement("tr");
    kind.cols.concat([""]).forEach(function (c) {
      var th = document.createElement("th"); th.textContent = c ? t("f_" + c) : ""; head.appendChild(th);
    });
    $("head").replaceChildren(head);
    var rows = found.slice(page * PAGE, page * PAGE + PAGE).map(function (e) {
      var tr = document.createElement("tr");
      tr.dataset.id = e.id;
      kind.cols.forEach(function (c) {
        var td = document.createElement("td"); td.dataset.field = c; td.textContent = shown(e[c]); tr.appendChild(td);
      });
      var td = document.createElement("td");
      var edit = document.createElement("button"); edit.type = "button"; edit.className = "edit";
      edit.textContent = t("edit"); edit.onclick = function () { form(e); };
      var del = document.createElement("button"); del.type = "button"; del.className = "delete";
      del.textContent = t("delete"); del.onclick = function () { remove(e); };
      td.append(edit, " ", del);
      tr.appendChild(td);
      return tr;
    });
    $("rows").replaceChildren.apply($("rows"), rows);
    $("page").textContent = t("page") + (page + 1) + t("of") + pages;
    $("prev").disabled = page === 0;
    $("next").disabled = page >= pages - 1;
  }

  function form(entity) {
    editing = entity;
    $("editor-title").textContent = (entity ? t("editing") + (entity.name || entity.username || entity.device) : t("newOne") + t(tab));
    var rows = KINDS[tab].fields.map(function (f) {
      var label = document.createElement("label"), span = document.createElement("span"), input = document.createElement("input");
      span.textContent = t("f_" + f[0]);
      input.name = f[0];
      var v = entity ? entity[f[0]] : undefined;
      if (f[1] === "b") { input.type = "checkbox"; input.checked = !!v; }
      else if (f[1] === "p") { input.type = "password"; input.autocomplete = "new-password"; }
      else if (f[1] === "i") { input.type = "number"; input.value = v === undefined ? "1" : String(v); }
      else input.value = shown(v);
      label.append(span, input);
      return label;
    });
    $("fields").replaceChildren.apply($("fields"), rows);
    $("error").hidden = true;
    $("list").hidden = true;
    $("editor").hidden = false;
    var first = $("fields").querySelector("input");
    if (first) first.focus();
  }

  function collect() {
    var data = editing ? { id: editing.id } : {};
    KINDS[tab].fields.forEach(function (f) {
      var input = $("fields").querySelector('[name="' + f[0] + '"]');
      if (f[1] === "b") data[f[0]] = input.checked;
      else if (f[1] === "p") { if (input.value) data[f[0]] = input.value; }
      else if (f[1] === "i") data[f[0]] = parseInt(input.value, 10);
      else if (f[1] === "l") data[f[0]] = input.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      else data[f[0]] = input.value;
    });
    return data;
  }

  function closeForm() { $("editor").hidden = true; $("list").hidden = false; editing = null; }

  $("editor").addEventListener("submit", function (e) {
    e.preventDefault();
    call("config." + tab + (editing ? ".edit" : ".add"), [collect()]).then(function () {
      closeForm(); say(t("saved")); return load();
    }).catch(function (err) { $("error").textContent = problem(err); $("error").hidden = false; });
  });
  $("cancel").onclick = closeForm;

  function remove(entity) {
    if (!confirm(t("confirmDelete"))) return;
    call("config." + tab + ".delete", [entity.id]).then(function () { say(t("deleted")); return load(); })
      .catch(function (err) { say(problem(err), true); });
  }

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
    }).catch(function (err) { say(problem(err) || t("loginFailed"), true); });
  });

  $("logout").onclick = function () {
    call("logout").catch(function () {}).then(function () { askLogin(); say(t("ask")); });
  };

  document.querySelectorAll("nav button").forEach(function (b) { b.onclick = function () { open(b.dataset.tab); }; });
  $("search").addEventListener("input", function () { page = 0; draw(); });
  $("prev").onclick = function () { page--; draw(); };
  $("next").onclick = function () { page++; draw(); };
  $("add").onclick = function () { form(null); };
  $("lang").addEventListener("change", function () {
    lang = $("lang").value;
    localStorage.setItem("ucs-admin-lang", lang);
    translate();
    if (user) { if (tab === "audit") loadAudit(); else if ($("editor").hidden) draw(); }
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
      } else if (msg.id !== undefined && pending[msg.id]) {
        var p = pending[msg.id];
        delete pending[msg.id];
        if (msg.error) p.reject(msg.error); else p.resolve(msg.result);
      }
    };
    ws.onclose = function () {
      say(t("lost"));
      pending = {};
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  translate();
  say(t("connecting"));
  connect();
})();

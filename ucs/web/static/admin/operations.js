/* The admin page's operations tab (issue 19): who is logged in, on which phone and
   which UCS node (ops.sessions: every node's, the nodes that did not answer named;
   refreshed every few seconds while the tab is shown), a forced logout with a confirmation (ops.logout), the plugins with load and unload (plugins.list,
   plugins.load, plugins.unload), and the AMI link with its last resync (ops.ami).

   It works beside admin.js and changes nothing of it: it is loaded first and notes the
   WebSocket admin.js opens (the page's one session: the superuser logged in there),
   sending its own requests on it with ids of its own ("ops-1", …), which admin.js
   does not know and leaves alone.  Should admin.js expose its request helper as
   window.UCSAdmin.call, that is used instead.  The tab's button is added once the page
   is built; the texts follow the page's language (en/cs). */
(function () {
  "use strict";
  var TEXT = {
    en: {
      tab: "Operations", who: "Logged in", user: "User", role: "Role", status: "Status", phone: "Phone",
      since: "Since", where: "Connections", ami: "Asterisk link", plugins: "Plugins", name: "Name",
      kind: "Kind", state: "State", error: "Error", loaded: "Loaded", load: "Load", reload: "Reload",
      unload: "Unload", pluginName: "Plugin file name", forceLogout: "Log out",
      confirmLogout: "Log {name} out now? Their bar ends the session and they leave every queue.",
      loggedOut: "{name} was logged out.", pluginLoaded: "Plugin {name}: {state}.", nobody: "Nobody is logged in.",
      f_state: "State", f_since: "Since", f_address: "Address", f_version: "Asterisk version",
      f_lost: "Last lost", f_resync: "Last resync", f_resyncs: "Resyncs", f_node: "This UCS",
      up: "connected", connecting: "connecting", down: "down", ok: "complete", incomplete: "incomplete",
      never: "never", superuser: "superuser", supervisor: "supervisor", agent: "agent", noPlugins: "No plugins.",
      ws: "agent bar", iserver: "Interaction Processor", noBar: "no bar connected", node: "UCS node",
      missing: "Not answering, their users are not listed: {nodes}."
    },
    cs: {
      tab: "Provoz", who: "Přihlášení", user: "Uživatel", role: "Role", status: "Stav", phone: "Telefon",
      since: "Od", where: "Připojení", ami: "Spojení s Asteriskem", plugins: "Pluginy", name: "Název",
      kind: "Druh", state: "Stav", error: "Chyba", loaded: "Načten", load: "Načíst", reload: "Načíst znovu",
      unload: "Odebrat", pluginName: "Název souboru pluginu", forceLogout: "Odhlásit",
      confirmLogout: "Odhlásit teď uživatele {name}? Jeho lišta ukončí relaci a odejde ze všech front.",
      loggedOut: "Uživatel {name} byl odhlášen.", pluginLoaded: "Plugin {name}: {state}.",
      nobody: "Nikdo není přihlášen.",
      f_state: "Stav", f_since: "Od", f_address: "Adresa", f_version: "Verze Asterisku",
      f_lost: "Naposledy ztraceno", f_resync: "Poslední synchronizace", f_resyncs: "Synchronizací",
      f_node: "Tento UCS", up: "připojeno", connecting: "připojuji", down: "odpojeno", ok: "úplná",
      incomplete: "neúplná", never: "nikdy", superuser: "superuživatel", supervisor: "supervizor",
      agent: "agent", noPlugins: "Žádné pluginy.", ws: "lišta", iserver: "Interaction Processor",
      noBar: "bez připojené lišty", node: "Uzel UCS",
      missing: "Neodpovídají, jejich uživatelé chybí: {nodes}."
    }
  };
  var REFRESH = 3000;
  var socket = null, nextId = 0, pending = {}, timer = null;

  // -- the page's socket ----------------------------------------------------------------------
  var Native = window.WebSocket;
  function Noted(url, protocols) {
    var ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    socket = ws;
    pending = {};
    ws.addEventListener("message", heard);
    return ws;
  }
  Noted.prototype = Native.prototype;
  ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach(function (k) { Noted[k] = Native[k]; });
  window.WebSocket = Noted;

  function heard(m) {
    var msg;
    try { msg = JSON.parse(m.data); } catch (e) { return; }
    if (typeof msg.id !== "string" || !pending[msg.id]) return;
    var p = pending[msg.id];
    delete pending[msg.id];
    if (msg.error) p.reject(msg.error); else p.resolve(msg.result);
  }

  function call(method, args) {
    if (window.UCSAdmin && typeof window.UCSAdmin.call === "function") return window.UCSAdmin.call(method, args);
    return new Promise(function (resolve, reject) {
      if (!socket || socket.readyState !== Native.OPEN) { reject({ message: "not connected" }); return; }
      var id = "ops-" + (++nextId);
      pending[id] = { resolve: resolve, reject: reject };
      socket.send(JSON.stringify({ id: id, method: method, args: args || [] }));
    });
  }

  // -- texts ----------------------------------------------------------------------------------
  var $ = function (id) { return document.getElementById(id); };
  function lang() { return TEXT[document.documentElement.lang] ? document.documentElement.lang : "en"; }
  function t(key, values) {
    var text = TEXT[lang()][key] || TEXT.en[key] || key;
    Object.keys(values || {}).forEach(function (k) { text = text.split("{" + k + "}").join(values[k]); });
    return text;
  }
  function when(seconds) { return seconds ? new Date(seconds * 1000).toLocaleString(lang()) : t("never"); }
  function problem(err) { return (err && err.message) || String(err); }
  function say(text, refused) {
    var p = $("ops-message");
    p.textContent = text;
    p.className = refused ? "refused" : "";
  }
  function translate() {
    document.querySelectorAll("[data-ops]").forEach(function (el) { el.textContent = t(el.dataset.ops); });
    document.querySelectorAll("[data-ops-p]").forEach(function (el) { el.placeholder = t(el.dataset.opsP); });
  }
  function cell(tr, field, text) {
    var td = document.createElement("td");
    td.dataset.field = field;
    td.textContent = text === null || text === undefined ? "" : String(text);
    tr.appendChild(td);
    return td;
  }
  function button(label, cls, onclick) {
    var b = document.createElement("button");
    b.type = "button"; b.className = cls; b.textContent = label; b.onclick = onclick;
    return b;
  }

  // -- who is logged in ---------------------------------------------------------------------------
  function loadWho() {
    return call("ops.sessions").then(function (reply) {
      var rows = reply.users;
      var missing = $("ops-missing");
      missing.hidden = !reply.missing.length;
      missing.textContent = reply.missing.length ? t("missing", { nodes: reply.missing.join(", ") }) : "";
      var trs = rows.map(function (r) {
        var tr = document.createElement("tr");
        tr.dataset.user = r.username;
        cell(tr, "user", r.displayname && r.displayname !== r.username ? r.displayname + " (" + r.username + ")" : r.username);
        cell(tr, "role", t(r.role));
        cell(tr, "status", r.status ? r.status + (r.reason ? " (" + r.reason + ")" : "") : "");
        cell(tr, "phone", r.line ? r.line.device + (r.line.name ? " — " + r.line.name : "") : "");
        cell(tr, "since", when(r.since));
        cell(tr, "node", r.sessions.map(function (s) { return s.node; }).filter(function (n, i, all) {
          return all.indexOf(n) === i;
        }).join(", "));
        cell(tr, "where", r.sessions.length ? r.sessions.map(function (s) {
          return t(s.kind) + " " + (s.address || "") + " @ " + s.node;
        }).join("; ") : t("noBar"));
        var td = cell(tr, "actions", "");
        if (!r.you) td.appendChild(button(t("forceLogout"), "force-logout", function () { forceLogout(r); }));
        return tr;
      });
      if (!trs.length) {
        var tr = document.createElement("tr");
        cell(tr, "none", t("nobody")).colSpan = 8;
        trs = [tr];
      }
      $("ops-who").replaceChildren.apply($("ops-who"), trs);
    }).catch(function (err) { say(problem(err), true); });
  }

  function forceLogout(r) {
    if (!confirm(t("confirmLogout", { name: r.username }))) return;
    call("ops.logout", [r.user_id]).then(function () {
      say(t("loggedOut", { name: r.username }));
      return loadWho();
    }).catch(function (err) { say(problem(err), true); });
  }

  // -- the AMI link -----------------------------------------------------------------------------
  function loadAMI() {
    return call("ops.ami").then(function (a) {
      var resync = a.last_resync;
      var lost = a.last_lost;
      var items = [
        ["state", t(a.state) + (a.last_failure ? " — " + a.last_failure : "")],
        ["since", when(a.since)],
        ["address", a.address || ""],
        ["version", a.version || ""],
        ["lost", lost ? when(lost.at) + " — " + lost.why : t("never")],
        ["resync", resync ? when(resync.at) + " — " + t(resync.result) +
          (resync.failed && resync.failed.length ? " (" + resync.failed.join("; ") + ")" : "") : t("never")],
        ["resyncs", String(a.resyncs)],
        ["node", a.node]
      ];
      var out = [];
      items.forEach(function (item) {
        var dt = document.createElement("dt"), dd = document.createElement("dd");
        dt.textContent = t("f_" + item[0]);
        dd.dataset.field = item[0];
        dd.textContent = item[1];
        if (item[0] === "state") dd.className = "ami-" + a.state;
        out.push(dt, dd);
      });
      $("ops-ami").replaceChildren.apply($("ops-ami"), out);
    }).catch(function (err) { say(problem(err), true); });
  }

  // -- plugins --------------------------------------------------------------------------------------
  function loadPlugins() {
    return call("plugins.list").then(function (plugins) {
      var trs = plugins.map(function (p) {
        var tr = document.createElement("tr");
        tr.dataset.plugin = p.name;
        cell(tr, "name", p.name);
        cell(tr, "kind", p.kind);
        cell(tr, "state", p.state);
        cell(tr, "loaded", p.loaded ? when(p.loaded) : "");
        cell(tr, "error", p.error || "");
        var td = cell(tr, "actions", "");
        td.appendChild(button(p.state === "running" ? t("reload") : t("load"), "plugin-load", function () { plugin("load", p.name); }));
        if (p.state === "running") {
          td.appendChild(document.createTextNode(" "));
          td.appendChild(button(t("unload"), "plugin-unload", function () { plugin("unload", p.name); }));
        }
        return tr;
      });
      if (!trs.length) {
        var tr = document.createElement("tr");
        cell(tr, "none", t("noPlugins")).colSpan = 6;
        trs = [tr];
      }
      $("ops-plugins").replaceChildren.apply($("ops-plugins"), trs);
    }).catch(function (err) { say(problem(err), true); });
  }

  function plugin(action, name) {
    return call("plugins." + action, [name]).then(function (p) {
      say(t("pluginLoaded", { name: p.name, state: p.state }));
    }, function (err) { say(problem(err), true); }).then(loadPlugins);
  }

  // -- the tab ---------------------------------------------------------------------------------------
  function shown() { return !$("app").hidden && !$("ops").hidden; }

  function refresh() {
    if (!shown()) { stop(); return; }
    Promise.all([loadWho(), loadAMI()]).then(function () {
      if (shown()) timer = setTimeout(refresh, REFRESH);
    });
  }
  function stop() { if (timer !== null) { clearTimeout(timer); timer = null; } }

  function openTab() {
    document.querySelectorAll("nav [role=tab]").forEach(function (b) {
      b.setAttribute("aria-selected", b.id === "ops-tab" ? "true" : "false");
    });
    ["list", "audit", "editor", "csv"].forEach(function (id) { $(id).hidden = true; });
    $("ops").hidden = false;
    say("");
    stop();
    refresh();
    loadPlugins();
  }

  function build() {
    var tab = document.createElement("button");
    tab.id = "ops-tab";
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-selected", "false");
    tab.dataset.ops = "tab";
    document.querySelector("nav[role=tablist]").appendChild(tab);
    tab.onclick = openTab;
    // Another tab (admin.js's) hides this one.
    document.querySelector("nav[role=tablist]").addEventListener("click", function (e) {
      var b = e.target.closest("button");
      if (b && b !== tab) { $("ops").hidden = true; stop(); }
    });
    $("ops-plugin-load").onclick = function () {
      var name = $("ops-plugin-name").value.trim();
      if (name) plugin("load", name);
    };
    $("lang").addEventListener("change", function () {
      translate();
      if (shown()) { loadWho(); loadAMI(); loadPlugins(); }
    });
    // Logged out (or the connection lost): the tab closes with the rest of the page.
    new MutationObserver(function () {
      if ($("app").hidden) { $("ops").hidden = true; stop(); }
    }).observe($("app"), { attributes: true, attributeFilter: ["hidden"] });
    translate();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", build);
  else build();
})();

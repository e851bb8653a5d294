/*!
 * UCS agent bar (operator.js) v4.59.0 (the server's version: ucs.__version__)
 *
 * Embed it in a CRM page as seed 002 says: set window.ucsOperator = {…parameters,
 * callbacks…} and load this script from UCS.  It adds its methods to that object,
 * connects to UCS over a WebSocket and, unless `headless`, draws the bar into
 * the element `renderTo`.  Plain modern JavaScript, no build step; docs/agent-bar.md
 * describes the parameters, callbacks, methods and the wire format.
 */
(function () {
  "use strict";

  var VERSION = "4.59.0";
  var NS = (window.ucsOperator = window.ucsOperator || {});
  if (NS.__ucsLoaded) return;
  NS.__ucsLoaded = true;
  var SCRIPT = document.currentScript;

  // ---------------------------------------------------------------- settings

  var DEFAULTS = {
    lang: "en", renderTo: "app", headless: false, autologin: false, autologout: false,
    identifyURL: true, identifyIP: true, identifyCookie: true, listDevices: true, confirmDevice: false,
    showDialControl: true, confirmUnload: false, notifyWaitingCallers: false,
    topMenuNameContent: "%icon% %name%", showBottomMenu: true, autoOpenAccountCode: true,
    withoutDevice: false, legacyStartup: false, disableIntegratedAutoLogout: false, debounceRequests: false,
    // The link watchdog's beat (ms): after 2.5 beats of silence the bar pings UCS, and a
    // ping unanswered for one more beat means the link is dead (a silent network drop).
    watchdogInterval: 10000,
    messageTimeout: 10000,  // ms an error stays in the bar's message area (0: until closed)
    shortcuts: true,        // Alt+Shift+A/E/H/M/R/N (docs/agent-bar.md)
    softphoneSilence: 5,    // the softphone: seconds without audio from the other side before the bar says so
  };
  function opt(name) {
    var v = NS[name];
    return v === undefined || v === null ? DEFAULTS[name] : v;
  }

  // Seed 002, "Component control": the states each method may be called in.
  var ALLOWED = {
    login: ["CREDENTIALS"], sso: ["CREDENTIALS"], logout: ["IDENTIFY", "DEVICE", "READY"],
    identifier: ["IDENTIFY", "DEVICE"], selectIdentifier: ["IDENTIFY", "DEVICE"],
    provision: ["IDENTIFY", "DEVICE"], identify: ["DEVICE", "READY"],
    changeStatus: ["READY"], suspend: ["READY"], resume: ["READY"], answer: ["READY"], dial: ["READY"],
    hangup: ["READY"], transfer: ["READY"], finishTransfer: ["READY"], blindTransfer: ["READY"],
    tribute: ["READY"], unhold: ["READY"], mute: ["READY"], state: ["READY"], setAccountCode: ["READY"],
    record: ["READY"], stopRecord: ["READY"], recordingUrl: ["READY"],
    selectRingingSound: ["READY"], testRingingSound: ["READY"], stopRingingSoundTest: ["READY"],
    notify: null,
  };
  var STATUSES = ["OFFLINE", "READY", "ACW", "AUX"];
  var CALL = { NEW: 0, DIALING: 1, RINGING: 2, CONNECTED: 3, SUSPENDED: 4, HELD: 5 };
  var RINGING_SOUNDS = ["default", "christmas", "lovingYou", "quest", "rush"];

  // ---------------------------------------------------------------- texts (EN, CS)

  var I18N = {
    en: {
      loading: "Connecting to UCS…", signIn: "Sign in", username: "User name", password: "Password",
      remember: "Remember me", remembered: "Remembered: leave empty", login: "Log in", loggingIn: "Logging in…", badLogin: "Bad user name or password",
      pickPhone: "Choose your phone", identifierLabel: "Phone identifier", pair: "Pair", pairing: "Pairing…",
      noPhones: "No phone is assigned to you; type its identifier.", confirmPhone: "Is this your phone?",
      confirm: "Confirm", another: "Choose another", READY: "Ready", AUX: "Not ready", ACW: "After-call work",
      OFFLINE: "Offline", waiting: "waiting", waitingTitle: "Callers waiting in your queues",
      dial: "Call", dialPlaceholder: "Number", keypad: "Keypad", answer: "Answer", hangup: "Hang up",
      hold: "Hold", unhold: "Resume", mute: "Mute", unmute: "Unmute", transfer: "Transfer",
      record: "Record", stopRecord: "Stop recording", recordingNow: "recording",
      consult: "Consult", blind: "Blind transfer", finishTransfer: "Finish transfer", cancel: "Cancel",
      transferTo: "Transfer to", incoming: "Incoming call", outgoing: "Outgoing call", internal: "Internal call",
      st0: "New", st1: "Dialling", st2: "Ringing", st3: "Connected", st4: "Suspended", st5: "On hold",
      muted: "muted", onHold: "on hold", accountCode: "Call reason", save: "Save", skip: "Skip",
      accountSaved: "Call reason saved", changePhone: "Change phone", logout: "Log out", language: "Čeština",
      phone: "Phone", noPhone: "No phone", connected: "Connected", reconnecting: "Reconnecting…",
      lost: "Connection to UCS lost; reconnecting", restored: "Connection to UCS restored",
      loggedOutElsewhere: "You were logged out in another window.", sessionExpired: "Your session ended; log in again.",
      acwLeft: "left", statusChanged: "Status: {status}", unknownCaller: "Unknown", callerWaiting: "Callers are waiting: {n}",
      queues: "Queues", suspended: "suspended", sub: "Detail", none: "—", notConnected: "Not connected to UCS",
      withoutDevice: "Working without a phone", consulting: "Consulting {number} — the caller is on hold",
      throttled: "Too many failed logins; try again in {seconds} s",
      waitingOne: "caller waiting", waitingOther: "callers waiting",
      onCall: "On call", ringingActivity: "Ringing", dialling: "Calling", onHoldActivity: "On hold",
      statusTime: "in this status for {time}",
      statusMenu: "Change status", menu: "Menu", closeMessage: "Close", dialNumber: "Number to call",
      ringingFrom: "Incoming call from {who}",
      auxReason: "Reason", auxGo: "Set", auxReasonPlaceholder: "e.g. Training",
      shortcuts: "Keyboard shortcuts", scAnswer: "Answer", scHangup: "Hang up", scHold: "Hold / resume",
      scMute: "Mute / unmute", scReady: "Ready", scNotReady: "Not ready",
      failed: "{action} failed: {why}", actionStatus: "Status change", actionSuspend: "Queue pause", actionAccount: "Call reason",
      actionLogout: "Log out", actionPair: "Pairing", actionPhone: "Phone",
      err_invalid_data: "the request was not accepted", err_invalid_state: "not possible now",
      err_permission_denied: "you are not allowed to do that", err_not_found: "not found",
      err_method_not_found: "UCS does not know that", err_processing_error: "it could not be done",
      err_pbx_error: "the phone system did not carry it out", err_too_many_requests: "too many requests; try again",
      err_internal_error: "UCS failed; try again", err_authentication_failed: "not logged in",
      errNumber: "\u201c{number}\u201d is not a phone number", errBusy: "your phone is busy: hang up or hold the call first",
      errNoCall: "there is no call for that", errNotConnected: "not connected to UCS",
      errAuxReason: "a reason is needed", errConsult: "the consulted party has not answered yet",
      // the session on a floor (issue 16): origins, logging out on a call, no phone
      originRefused: "This page ({origin}) may not connect to UCS: its origin is not allowed. Ask the UCS administrator to add it to [web] allowed_origins.",
      logoutOnCall: "You are on a call. Log out only after it ends.", logoutHangup: "Hang up and log out", logoutStay: "Stay logged in",
      errOnCall: "your phone has a call: hang up or transfer it first", errNoPhone: "a phone is needed: choose your phone first",
    },
    cs: {
      loading: "Připojuji se k UCS…", signIn: "Přihlášení", username: "Uživatelské jméno", password: "Heslo",
      remember: "Zapamatovat", remembered: "Zapamatováno: nechte prázdné", login: "Přihlásit", loggingIn: "Přihlašuji…", badLogin: "Špatné jméno nebo heslo",
      pickPhone: "Vyberte svůj telefon", identifierLabel: "Identifikátor telefonu", pair: "Spárovat", pairing: "Páruji…",
      noPhones: "Nemáte přiřazený telefon; zadejte jeho identifikátor.", confirmPhone: "Je toto váš telefon?",
      confirm: "Potvrdit", another: "Vybrat jiný", READY: "Připraven", AUX: "Nepřipraven", ACW: "Dopracování",
      OFFLINE: "Odhlášen", waiting: "čeká", waitingTitle: "Volající čekající ve vašich frontách",
      dial: "Volat", dialPlaceholder: "Číslo", keypad: "Klávesnice", answer: "Přijmout", hangup: "Zavěsit",
      hold: "Podržet", unhold: "Obnovit", mute: "Ztlumit", unmute: "Zapnout mikrofon", transfer: "Přepojit",
      record: "Nahrávat", stopRecord: "Zastavit nahrávání", recordingNow: "nahrává se",
      consult: "Konzultovat", blind: "Přepojit naslepo", finishTransfer: "Dokončit přepojení", cancel: "Zrušit",
      transferTo: "Přepojit na", incoming: "Příchozí hovor", outgoing: "Odchozí hovor", internal: "Interní hovor",
      st0: "Nový", st1: "Vytáčení", st2: "Vyzvání", st3: "Spojeno", st4: "Přerušeno", st5: "Podrženo",
      muted: "ztlumeno", onHold: "podržen", accountCode: "Důvod hovoru", save: "Uložit", skip: "Přeskočit",
      accountSaved: "Důvod hovoru uložen", changePhone: "Změnit telefon", logout: "Odhlásit", language: "English",
      phone: "Telefon", noPhone: "Bez telefonu", connected: "Připojeno", reconnecting: "Znovu se připojuji…",
      lost: "Spojení s UCS ztraceno; připojuji se znovu", restored: "Spojení s UCS obnoveno",
      loggedOutElsewhere: "Byli jste odhlášeni v jiném okně.", sessionExpired: "Relace skončila; přihlaste se znovu.",
      acwLeft: "zbývá", statusChanged: "Stav: {status}", unknownCaller: "Neznámý", callerWaiting: "Čekající volající: {n}",
      queues: "Fronty", suspended: "pozastaveno", sub: "Upřesnění", none: "—", notConnected: "Nepřipojeno k UCS",
      withoutDevice: "Pracuji bez telefonu", consulting: "Konzultace s {number} — volající čeká",
      throttled: "Příliš mnoho neúspěšných přihlášení; zkuste to znovu za {seconds} s",
      waitingOne: "volající čeká", waitingFew: "volající čekají", waitingOther: "volajících čeká",
      onCall: "Hovor", ringingActivity: "Vyzvání", dialling: "Volám", onHoldActivity: "Podržený hovor",
      statusTime: "v tomto stavu {time}",
      statusMenu: "Změnit stav", menu: "Nabídka", closeMessage: "Zavřít", dialNumber: "Číslo k vytočení",
      ringingFrom: "Příchozí hovor od {who}",
      auxReason: "Důvod", auxGo: "Nastavit", auxReasonPlaceholder: "např. Školení",
      shortcuts: "Klávesové zkratky", scAnswer: "Přijmout", scHangup: "Zavěsit", scHold: "Podržet / obnovit",
      scMute: "Ztlumit / zapnout mikrofon", scReady: "Připraven", scNotReady: "Nepřipraven",
      failed: "{action} se nezdařilo: {why}", actionStatus: "Změna stavu", actionSuspend: "Pozastavení fronty", actionAccount: "Důvod hovoru",
      actionLogout: "Odhlášení", actionPair: "Párování", actionPhone: "Telefon",
      err_invalid_data: "požadavek nebyl přijat", err_invalid_state: "teď to nejde",
      err_permission_denied: "k tomu nemáte oprávnění", err_not_found: "nenalezeno",
      err_method_not_found: "UCS to nezná", err_processing_error: "nepodařilo se to provést",
      err_pbx_error: "telefonní ústředna požadavek neprovedla", err_too_many_requests: "příliš mnoho požadavků; zkuste to znovu",
      err_internal_error: "chyba UCS; zkuste to znovu", err_authentication_failed: "nejste přihlášeni",
      errNumber: "\u201e{number}\u201c není telefonní číslo", errBusy: "telefon je obsazený: nejprve zavěste nebo podržte hovor",
      errNoCall: "není žádný hovor, kterého by se to týkalo", errNotConnected: "nepřipojeno k UCS",
      errAuxReason: "je potřeba zadat důvod", errConsult: "konzultovaný ještě nepřijal hovor",
      originRefused: "Tato stránka ({origin}) se nesmí připojit k UCS: její původ (origin) není povolen. Požádejte správce UCS, aby ji přidal do [web] allowed_origins.",
      logoutOnCall: "Máte hovor. Odhlásit se můžete až po jeho skončení.", logoutHangup: "Zavěsit a odhlásit", logoutStay: "Zůstat přihlášen",
      errOnCall: "telefon má hovor: nejprve zavěste nebo hovor přepojte", errNoPhone: "je potřeba telefon: nejprve vyberte svůj telefon",
    },
  };
  // The language: the one the agent picked in the menu (kept in this browser), else the
  // user's locale after login, else the `lang` option.
  var LANG_KEY = "ucsOperatorLang", langPicked = null;
  try { langPicked = I18N[localStorage.getItem(LANG_KEY)] ? localStorage.getItem(LANG_KEY) : null; } catch (e) { /* private mode */ }
  var lang = langPicked || (I18N[opt("lang")] ? opt("lang") : "en");
  // Plural forms: Intl.PluralRules where there is one, else Czech's 1 / 2–4 / other.
  function plural(n) {
    try { return new Intl.PluralRules(lang).select(n); } catch (e) {
      if (lang !== "cs") return n === 1 ? "one" : "other";
      return n === 1 ? "one" : n >= 2 && n <= 4 ? "few" : "other";
    }
  }
  function waitingText(n) {
    var form = plural(n);
    var key = "waiting" + form.charAt(0).toUpperCase() + form.slice(1);
    return I18N[lang][key] || I18N[lang].waitingOther || I18N.en.waitingOther;
  }
  function t(key, values) {
    var s = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
    return format(s, values);
  }
  function format(s, values) {
    if (!values) return s;
    return String(s).replace(/\{(\w+)\}/g, function (m, k) { return values[k] !== undefined ? values[k] : m; });
  }

  // ---------------------------------------------------------------- small helpers

  function fire(name) {
    var fn = NS[name];
    var args = Array.prototype.slice.call(arguments, 1);
    if (name !== "onDebug") debug("callback " + name);
    if (typeof fn !== "function") return;
    try { fn.apply(NS, args); } catch (e) { if (window.console) console.error("ucsOperator." + name + " failed:", e); }
  }
  function debug(message) {
    var fn = NS.onDebug;
    if (typeof fn === "function") { try { fn.call(NS, message); } catch (e) { /* the CRM's problem */ } }
  }
  function warn(message) { fire("onWarning", message); }

  function getCookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }
  function setCookie(name, value, days) {
    var secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = name + "=" + encodeURIComponent(value) + "; Max-Age=" + (days * 86400) + "; Path=/; SameSite=Strict" + secure;
  }
  function dropCookie(name) { document.cookie = name + "=; Max-Age=0; Path=/; SameSite=Strict"; }
  // COOKIE_LOGIN: where versions before the remember-me token kept the password; dropped on sight.
  var COOKIE_LOGIN = "ucsOperatorLogin", COOKIE_ID = "ucsOperatorIdentifier", COOKIE_TOKEN = "ucsOperatorRemember";

  // Every text the bar shows comes from outside (options, the user, callers' names,
  // UCS's messages): it reaches the DOM as text (textContent) or through esc(),
  // never as HTML.  Markup the bar builds as strings holds only its own constants.
  function esc(s) {
    return String(s === undefined || s === null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function handled(p) { p.catch(function () {}); return p; }
  function rejected(message, code) {
    var e = new Error(message); e.code = code || 0;
    return handled(Promise.reject(e));
  }
  function hms(sec) {
    sec = Math.max(0, Math.floor(sec));
    var h = Math.floor(sec / 3600), m = Math.floor(sec / 60) % 60, s = sec % 60;
    return (h ? h + ":" + (m < 10 ? "0" : "") : "") + m + ":" + (s < 10 ? "0" : "") + s;
  }

  // ---------------------------------------------------------------- the model

  var model = {
    appState: "CONNECTING",  // then CREDENTIALS, IDENTIFY, DEVICE, READY (seed 002)
    connected: false, reconnecting: false, hello: null, sid: null, skew: 0,
    user: null, device: null, status: "OFFLINE", reason: "", since: null, acwUntil: null,
    state: null, calls: {}, order: [], waitingCallers: 0, devices: [], notifications: [],
    accountFor: null, transferOpen: false, consult: {}, keypadOpen: false, menuOpen: false, statusOpen: false,
    loginError: "", busy: "", ringingSound: null, autoLogoutOnUnload: false, noAutologin: false,
    remembered: null,  // the user name of a remembered login (the token stays with UCS or in its cookie)
    alerts: [],        // errors shown in the bar's message area: {id, text, detail}
    auxOpen: false,    // the AUX reason field (no AUX reasons configured: any short text)
  };
  try { model.ringingSound = localStorage.getItem("ucsOperatorRingingSound") || "default"; } catch (e) { model.ringingSound = "default"; }

  function serverNow() { return Date.now() / 1000 + model.skew; }
  function setAppState(s) {
    if (model.appState === s) return;
    model.appState = s;
    debug("state " + s);
    render();
    softphoneSync();
  }
  function calls() { return model.order.map(function (u) { return model.calls[u]; }).filter(Boolean); }
  function activeCall() {
    var list = calls();
    for (var i = list.length - 1; i >= 0; i--) if (list[i].state !== CALL.HELD) return list[i];
    return list.length ? list[list.length - 1] : null;
  }
  function heldCall() {
    var list = calls();
    for (var i = 0; i < list.length; i++) if (list[i].state === CALL.HELD) return list[i];
    return null;
  }
  function putCall(call) {
    if (!model.calls[call.uniqueid]) model.order.push(call.uniqueid);
    model.calls[call.uniqueid] = call;
  }
  function dropCall(call) {
    delete model.calls[call.uniqueid];
    delete model.consult[call.uniqueid];
    model.order = model.order.filter(function (u) { return u !== call.uniqueid; });
  }

  // ---------------------------------------------------------------- the connection

  var ws = null, nextId = 0, pending = {}, attempt = 0, reconnectTimer = null, pingTimer = null, lastHeard = 0;

  function wsURL() {
    var api = NS.api || {}, w = api.ws || {};
    var secure = w.secure !== undefined ? w.secure : api.secure !== undefined ? api.secure :
      (String(w.port || api.port || "") === "443" || location.protocol === "https:");
    var host = w.hostname || api.hostname || location.hostname;
    var port = w.port || api.port || (api.hostname ? "" : location.port);
    var path = w.path || ((api.path || "").replace(/\/$/, "") + "/ws");
    if (host.indexOf(":") >= 0 && host[0] !== "[") host = "[" + host + "]";
    return (secure ? "wss://" : "ws://") + host + (port ? ":" + port : "") + path;
  }

  // The http(s) address of one of seed 002's services (api.recording, api.report …), no trailing slash.
  function serviceURL(name) {
    var api = NS.api || {}, w = api[name] || {};
    var secure = w.secure !== undefined ? w.secure : api.secure !== undefined ? api.secure :
      (String(w.port || api.port || "") === "443" || location.protocol === "https:");
    var host = w.hostname || api.hostname || location.hostname;
    var port = w.port || api.port || (api.hostname || w.hostname ? "" : location.port);
    if (host.indexOf(":") >= 0 && host[0] !== "[") host = "[" + host + "]";
    return (secure ? "https://" : "http://") + host + (port ? ":" + port : "") + (w.path || api.path || "").replace(/\/$/, "");
  }

  function connect() {
    reconnectTimer = null;
    var url = wsURL();
    debug("connecting to " + url);
    try { ws = new WebSocket(url); } catch (e) { fire("onError", "Cannot connect to UCS at " + url + ": " + e.message); return retry(); }
    var sock = ws;
    sock.onmessage = function (m) { if (sock === ws) receive(m.data); };
    sock.onclose = function (ev) { if (sock === ws) closed(ev); };
    sock.onerror = function () { /* onclose follows */ };
    // A connection attempt that neither opens nor fails (packets dropped) is given up.
    setTimeout(function () { if (sock === ws && !model.connected) abandon("no hello from UCS"); }, Math.max(5000, 2 * beat()));
  }

  function beat() { return Math.max(100, Number(opt("watchdogInterval")) || DEFAULTS.watchdogInterval); }

  // The link is dead without a close frame (a silent network drop): a browser may wait
  // minutes for the close event.  The old socket is cut loose (its handlers detached) and
  // the bar shows the loss and reconnects at once.
  function abandon(why) {
    var sock = ws;
    if (!sock) return;
    sock.onmessage = sock.onclose = sock.onerror = sock.onopen = null;
    try { sock.close(); } catch (e) { /* already closing */ }
    closed({ code: 4000, reason: why });
  }

  function closed(ev) {
    ws = null;
    var was = model.connected;
    model.connected = false;
    clearInterval(pingTimer);
    Object.keys(pending).forEach(function (id) { pending[id].reject(Object.assign(new Error(t("notConnected")), { code: 0 })); });
    pending = {};
    debug("connection closed (" + ev.code + (ev.reason ? " " + ev.reason : "") + ")");
    if (was) {
      model.reconnecting = true;
      fire("onError", t("lost"));
    } else if (attempt === 0) {
      fire("onError", "Cannot connect to UCS at " + wsURL());
    }
    if (!was) checkOrigin();
    render();
    retry();
  }

  // A WebSocket refused at the handshake (403: the page's origin is not allowed) closes
  // with no reason a script can read, so the bar asks UCS's /origin (a plain CORS GET:
  // the browser sends this page's Origin) and says so instead of "Connecting…".
  function originURL() {
    var u = new URL(wsURL().replace(/^ws/, "http"));
    u.pathname = ((NS.api || {}).path || "").replace(/\/$/, "") + "/origin";
    u.search = "?origin=" + encodeURIComponent(location.origin);  // a same-origin GET carries no Origin
    return u.toString();
  }
  function checkOrigin() {
    if (!window.fetch) return;
    fetch(originURL(), { mode: "cors", credentials: "omit", cache: "no-store" }).then(function (r) { return r.json(); }).then(function (o) {
      if (model.connected) return;
      var refused = o && o.allowed === false ? String(o.origin || location.origin) : null;
      if (refused && refused !== model.originRefused) fire("onError", t("originRefused", { origin: refused }));
      model.originRefused = refused;
      render();
    }, function () { /* UCS not reachable at all: "Connecting…" is the truth */ });
  }

  // Backoff with full jitter: a random wait between 0 and min(15 s, 0.5 s × 2^attempt),
  // so that thousands of bars dropped at once (a UCS restart, a network cut) come back
  // spread out instead of in waves.
  function retry() {
    if (reconnectTimer) return;
    var ceiling = Math.min(15000, 500 * Math.pow(2, Math.min(attempt, 5)));
    attempt++;
    reconnectTimer = setTimeout(connect, Math.random() * ceiling);
  }

  function send(obj) {
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  // One API call: a Promise of the result; rejected with an Error that has `code`.
  function request(method, args) {
    if (!model.connected) return rejected(t("notConnected"));
    var id = ++nextId;
    debug("→ " + method + " " + JSON.stringify(args === undefined ? [] : args).slice(0, 200));
    return handled(new Promise(function (resolve, reject) {
      pending[id] = { resolve: resolve, reject: reject, method: method };
      if (!send({ id: id, method: method, args: args === undefined ? [] : args })) {
        delete pending[id];
        reject(Object.assign(new Error(t("notConnected")), { code: 0 }));
      }
    }));
  }

  function receive(text) {
    lastHeard = Date.now();
    var msg;
    try { msg = JSON.parse(text); } catch (e) { warn("UCS sent a message that is not JSON"); return; }
    if (msg.event !== undefined) {
      debug("← event " + msg.event);
      try { onEvent(msg.event, msg.data || {}, msg.args || {}); } catch (e) { if (window.console) console.error(e); warn("event " + msg.event + ": " + e.message); }
      return;
    }
    var p = pending[msg.id];
    if (!p) { if (msg.error) warn(msg.error.message); return; }
    delete pending[msg.id];
    if (msg.error) {
      var err = new Error(msg.error.message || msg.error.error);
      err.code = msg.error.code; err.error = msg.error.error; err.fields = msg.error.fields;
      err.retryAfter = msg.error.retry_after;  // a throttled login: seconds to wait
      debug("← " + p.method + " error " + err.code + " " + err.message);
      p.reject(err);
    } else {
      debug("← " + p.method + " ok");
      p.resolve(msg.result);
    }
  }

  // The watchdog: after 2.5 beats of silence a session.ping; nothing heard for a beat
  // after it, and the link is given up (abandon).
  function startPing() {
    clearInterval(pingTimer);
    var every = beat(), pinged = 0;
    pingTimer = setInterval(function () {
      if (!model.connected || !ws) return;
      var now = Date.now();
      if (pinged && lastHeard >= pinged) pinged = 0;
      if (pinged && now - pinged >= every) { pinged = 0; abandon("no answer from UCS"); return; }
      if (!pinged && now - lastHeard > 2.5 * every) {
        pinged = now;
        request("session.ping").catch(function () {});
      }
    }, Math.max(50, every / 2));
  }

  // ---------------------------------------------------------------- the flow

  function onHello(data) {
    var first = !model.hello;
    var oldSid = model.sid;
    model.hello = data;
    model.skew = (data.now || Date.now() / 1000) - Date.now() / 1000;
    model.connected = true;
    model.originRefused = null;
    attempt = 0;
    startPing();
    var opts = { autologout: !!opt("autologout") };
    if (model.autoLogoutOnUnload) opts.logoutOnClose = true;
    request("session.options", opts).catch(function (e) { warn(e.message); });
    if (first) fire("onConnect", VERSION);
    if (model.reconnecting && oldSid && model.user) {
      request("session.resume", [oldSid]).then(function (res) {
        model.sid = res.sid;
        model.reconnecting = false;
        fire("onInfo", t("restored"));
        if (res.state === "READY") return loadReady();
        if (res.state === "IDENTIFY" || res.state === "DEVICE") return startPairing();
        credentials();
      }, function (e) {
        model.reconnecting = false;
        model.sid = data.sid;
        forgetUser();
        notifyInternal(t("sessionExpired"), "warning", "CREDENTIALS");
        credentials();
      });
      return;
    }
    model.reconnecting = false;
    model.sid = data.sid;
    if (model.appState === "CONNECTING" || !model.user) credentials();
  }

  function credentials() {
    setAppState("CREDENTIALS");
    if (getCookie(COOKIE_LOGIN)) dropCookie(COOKIE_LOGIN);
    var token = storedToken();
    if (model.noAutologin || (!ownPage() && !token)) { fire("onCredentials"); return; }
    request("remember.who", [token]).then(function (who) {
      if (!who) {
        if (token) dropCookie(COOKIE_TOKEN);
        fire("onCredentials");
        return;
      }
      model.remembered = who.username;
      fillLogin(who.username, "", true);
      render();
      if (opt("autologin")) rememberedLogin().catch(function () {});
      else fire("onCredentials");
    }, function () { fire("onCredentials"); });
  }

  // ---------------------------------------------------------------- remembered logins
  // A token from UCS, never the password (docs/agent-bar.md).  On a page served by UCS
  // itself, UCS keeps it in an HttpOnly cookie this script cannot read, sent with the
  // WebSocket; on a CRM's page elsewhere the bar keeps it in a cookie of that page.

  function ownPage() {
    try {
      var u = new URL(wsURL().replace(/^ws/, "http"));
      return u.protocol === location.protocol && u.host === location.host;
    } catch (e) { return false; }
  }
  function rememberURL() { return ((NS.api || {}).path || "").replace(/\/$/, "") + "/remember"; }
  function postRemember(body) {
    return fetch(rememberURL(), { method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "X-UCS-Remember": "1", "Content-Type": "text/plain" }, body: body });
  }
  function storedToken() { return ownPage() ? null : getCookie(COOKIE_TOKEN); }

  function keepRemembered() {
    var own = ownPage();
    return request("remember.issue", [own]).then(function (r) {
      if (!own) { setCookie(COOKIE_TOKEN, r.token, Math.round((r.expires - serverNow()) / 86400) || 1); return; }
      return postRemember(r.ticket).then(function (res) {
        if (!res.ok) throw new Error("UCS did not keep the login (HTTP " + res.status + ")");
      });
    }).catch(function (e) { warn("remember me: " + e.message); });
  }

  function forgetRemembered() {
    model.remembered = null;
    if (!ownPage()) { dropCookie(COOKIE_TOKEN); return Promise.resolve(); }
    return postRemember("").then(function () {}, function () {});
  }

  function rememberedLogin() {
    model.busy = "login"; model.loginError = ""; render();
    return request("remember.login", [storedToken()]).then(loggedIn, function (e) {
      forgetRemembered();  // expired, revoked, or the password changed: it will not work again
      if (root) els.loginRemember.checked = false;
      model.busy = ""; model.loginError = e.message; render();
      fire("onLoginError", e.code, e.message);
      fire("onCredentials");
      throw e;
    });
  }

  function forgetUser() {
    model.user = null; model.device = null; model.state = null; model.calls = {}; model.order = [];
    model.status = "OFFLINE"; model.reason = ""; model.accountFor = null; model.transferOpen = false; model.consult = {}; model.pairAsked = false;
    superReset();  // the supervisor
  }

  function doLogin(username, password, remember) {
    model.busy = "login"; model.loginError = ""; render();
    return request("login", [String(username), String(password), !!remember]).then(function (res) {
      if (remember) keepRemembered();
      else if (remember === false) forgetRemembered();
      return loggedIn(res);
    }, loginFailed);
  }

  function loginFailed(e) {
    model.busy = "";
    model.loginError = e.code === 401 ? t("badLogin")
      : e.code === 429 && e.retryAfter ? t("throttled", { seconds: e.retryAfter }) : e.message;
    fire("onLoginError", e.code, e.message);
    render();
    throw e;
  }

  function loggedIn(res) {
    model.busy = ""; model.loginError = ""; model.noAutologin = false;
    model.user = res.user;
    if (res.user && I18N[res.user.locale] && !langPicked) lang = res.user.locale;
    fire("onUser", res.user);
    if (res.state === "READY") return loadReady();
    return startPairing();
  }

  function identifierFromURL() {
    var q = new URLSearchParams(location.search);
    return q.get("identifier") || q.get("ucsIdentifier");
  }

  function startPairing() {
    setAppState("IDENTIFY");
    if (superChoice()) { render(); return Promise.resolve(null); }  // the supervisor: how to work, first
    if (opt("withoutDevice")) { render(); return Promise.resolve(null); }
    var tries = [];
    if (opt("identifyURL") && identifierFromURL()) tries.push(identifierFromURL());
    if (opt("identifyIP") && model.hello && model.hello.address) tries.push(model.hello.address);
    if (opt("identifyCookie") && getCookie(COOKIE_ID)) tries.push(getCookie(COOKIE_ID));
    function next(i) {
      if (i >= tries.length) return askIdentifier();
      fire("onIdentifier", tries[i]);
      return pairWith(tries[i], true).then(null, function () { return next(i + 1); });
    }
    return next(0);
  }

  function askIdentifier() {
    var list = opt("listDevices") ? request("devices.list") : Promise.resolve([]);
    return list.then(function (devices) {
      model.devices = devices || [];
      fire("onIdentify", model.devices);
      render();
    }, function (e) { warn(e.message); fire("onIdentify", []); render(); });
  }

  function pairWith(identifier, quiet) {
    model.busy = "pair"; render();
    return request("identifier", [String(identifier)]).then(function (device) {
      model.busy = "";
      model.device = device;
      setCookie(COOKIE_ID, identifier, 365);
      setAppState("DEVICE");
      fire("onDevice", device);
      if (!opt("confirmDevice")) return doProvision();
      render();
      return device;
    }, function (e) {
      model.busy = "";
      if (!quiet) { warn(e.message); notifyInternal(e.message, "error", "IDENTIFY"); }
      render();
      throw e;
    });
  }

  function doProvision() {
    var supervise = superProvision();  // the supervisor: supervising with a phone
    if (supervise) return supervise;
    model.busy = "pair"; render();
    return request("provision").then(function (state) {
      model.busy = "";
      applyState(state);
      setAppState("READY");
      fire("onReady", publicState());
      return publicState();
    }, function (e) { model.busy = ""; warn(e.message); showError("provision", e); throw e; });
  }

  function loadReady() {
    return request("state").then(function (state) {
      applyState(state);
      setAppState("READY");
      fire("onReady", publicState());
      render();
      return publicState();
    }, function (e) { warn(e.message); throw e; });
  }

  function applyState(s) {
    model.state = s;
    model.status = s.status; model.reason = s.reason || "";
    model.user = s.user || model.user;
    model.device = s.device || model.device;
    model.waitingCallers = s.waitingCallers || 0;
    if (s.now) model.skew = s.now - Date.now() / 1000;
    model.since = s.user && s.user.since || null;
    model.acwUntil = null;
    applyCalls(s);
    applyFloorState(s);  // the floor: wrap-up, recent calls, queue figures
    applySuperState();  // the supervisor: team view, wallboard
    render();
    softphoneSync();
  }

  // Every call of this phone as it sees it (state's `calls`; `call` alone from a UCS
  // before issue 16): a consulted agent who talks is connected, a phone rung by a
  // transfer rings, each with its buttons. A consultation this bar started is kept
  // for the calls still there (or taken from the call's `consult` after a reload).
  function applyCalls(s) {
    model.calls = {}; model.order = [];
    (s.calls || (s.call ? [s.call] : [])).forEach(putCall);
    Object.keys(model.consult).forEach(function (u) { if (!model.calls[u]) delete model.consult[u]; });
    calls().forEach(function (c) {
      if (c.state === CALL.HELD && c.consult && model.consult[c.uniqueid] === undefined) model.consult[c.uniqueid] = String(c.consult.number || "");
    });
  }

  // What a call's timer counts from, for this phone: its ring, its own answer (a
  // consulted agent: the consultation's), the start of the hold. UCS sends these
  // per phone (ringing_since, answered_at, held_since); the call's own times are
  // the fallback for a UCS that does not.
  function timerSince(c) {
    if (c.state === CALL.HELD) return c.held_since || c.answered_at || c.connected || c.created;
    if (c.state === CALL.CONNECTED || c.state === CALL.SUSPENDED) return c.answered_at || c.connected || c.created;
    return c.ringing_since || c.created;
  }

  function publicState() {
    var s = Object.assign({}, model.state || {});
    s.status = model.status; s.reason = model.reason; s.call = activeCall();
    s.calls = calls();  // every call the bar shows, as this phone sees it
    s.user = model.user; s.device = model.device; s.waitingCallers = model.waitingCallers;
    s.now = serverNow(); s.ringingSound = model.ringingSound;
    return s;
  }

  // ---------------------------------------------------------------- events from UCS

  var CALL_CALLBACKS = {
    "call.new": "onCallNew", "call.ringing": "onCallRinging", "call.connect": "onCallConnect",
    "call.hold": "onCallHold", "call.resume": "onCallResume", "call.mute": "onCallMute",
    "call.unmute": "onCallUnmute",
  };

  function onEvent(name, data, args) {
    if (name === "hello") return onHello(data);
    if (FLOOR_EVENTS[name]) return FLOOR_EVENTS[name](data);  // the floor: wrap-up, recent calls, queue figures: agent.wrapup, agent.missed
    if (SUPER_EVENTS[name]) return SUPER_EVENTS[name](data);  // the supervisor: team.agent, wallboard
    if (CALL_CALLBACKS[name]) {
      putCall(data);
      softphoneFollow(name, data);  // the softphone: its microphone follows UCS's mute
      if (name === "call.ringing" && data.direction !== "OUTGOING") { model.transferOpen = false; announce(t("ringingFrom", { who: data.caller_name || data.caller_number || t("unknownCaller") })); }
      render();
      fire(CALL_CALLBACKS[name], data);
      return;
    }
    switch (name) {
      case "call.change": case "call.transfer":
        putCall(data); render(); return;
      case "call.hangup":
        dropCall(data);
        if (!calls().length) model.transferOpen = false;
        offerAccount(data);  // the floor: wrap-up, recent calls, queue figures: never in place of a reason being picked
        render();
        fire("onCallHangup", data);
        return;
      case "agent.status":
        model.status = data.status; model.reason = data.reason || "";
        model.since = data.since || null; model.acwUntil = data.acwUntil || null;
        setWrapup(data.wrapup);  // the floor: wrap-up, recent calls, queue figures
        render();
        fire("onStateChange", { status: data.status, reason: model.reason });
        return;
      case "agent.suspend": case "agent.resume":
        var q = (model.state && model.state.queues || []).filter(function (x) { return x.id === data.queue_id || x.queue_id === data.queue_id; })[0];
        if (q) q.suspended = name === "agent.suspend";
        render();
        fire(name === "agent.suspend" ? "onAgentSuspend" : "onAgentResume", data.queue_id);
        return;
      case "agent.logout":
        if (model.status !== "OFFLINE") {
          model.status = "OFFLINE"; model.reason = "";
          render();
          fire("onStateChange", { status: "OFFLINE", reason: "" });
        }
        superKicked(data);  // the supervisor: logged out by a supervisor, back to choosing a phone
        return;
      case "agent.login": case "agent.device":
        return;
      case "waitingCallers":
        var before = model.waitingCallers;
        model.waitingCallers = data.waitingCallers;
        render();
        fire("onWaitingCallersChange", data.waitingCallers);
        figuresSoon();  // the floor: wrap-up, recent calls, queue figures: the per-queue figures follow
        if (opt("notifyWaitingCallers") && data.waitingCallers > before && (model.status === "AUX" || model.status === "ACW")) alertWaiting(data.waitingCallers);
        return;
      case "agents.change":
        if (model.state && model.state.agents) {
          var list = model.state.agents.filter(function (a) { return a.id !== data.id; });
          list.push(data); model.state.agents = list;
        }
        return;
      case "logout":
        forgetUser(); model.noAutologin = true;
        showMessage(t("loggedOutElsewhere"), "warning", "logout", data);
        credentials();
        return;
      case "session.closed":
        model.sid = data.sid;
        forgetUser(); model.noAutologin = true;
        showMessage(data.message || t("loggedOutElsewhere"), "warning", "autologout", data);
        credentials();
        return;
      case "cluster":  // issue 20: this server's link to the other UCS nodes went or came back
        model.notifications = model.notifications.filter(function (n) { return n.group !== "cluster"; });
        if (data.ok === false) notifyInternal(data.message, "warning", null, 0, "cluster", true);
        else render();
        fire("onMessage", { message: data.message, type: data.ok === false ? "warning" : "info", group: "cluster", data: data });
        return;
      case "resync": case "config.change":
        if (model.appState === "READY") request("state").then(function (s) { applyState(s); }, function () {});
        return;
      default:
        debug("unhandled event " + name);
    }
  }

  // Read to screen readers (a polite live region): a ringing call.
  function announce(text) {
    if (!root) return;
    els.announce.textContent = "";
    setTimeout(function () { els.announce.textContent = text; }, 50);
  }

  function callReasons() { return (model.state && model.state.callReasons) || []; }

  function alertWaiting(n) {
    var text = t("callerWaiting", { n: n });
    notifyInternal(text, "warning", "READY", 8000, "waitingCallers", true);
    try {
      if (window.Notification && Notification.permission === "granted") new Notification("UCS", { body: text, tag: "ucs-waiting" });
    } catch (e) { /* no system alerts here */ }
  }

  // notifyWaitingCallers' system alert needs the page's permission: asked once, at login.
  function askAlertPermission() {
    try {
      if (opt("notifyWaitingCallers") && window.Notification && Notification.permission === "default") {
        var p = Notification.requestPermission();
        if (p && p.catch) p.catch(function () {});
      }
    } catch (e) { /* no system alerts here */ }
  }

  function showMessage(message, type, group, data) {
    fire("onMessage", { message: message, type: type, group: group, data: data || {} });
    notifyInternal(message, type, null, 15000, group, true);
  }

  // ---------------------------------------------------------------- notifications (notify)

  var noteId = 0;
  function notifyInternal(title, type, boundState, timeoutMs, group, unique) {
    if (unique) model.notifications = model.notifications.filter(function (n) { return !(n.title === title || (group && n.group === group)); });
    var note = { id: ++noteId, title: title, type: type || "info", boundState: boundState || null, group: group || null };
    model.notifications.push(note);
    // At most 5 of one boundState: a note bound to another state waits for it, however many show now.
    var same = model.notifications.filter(function (n) { return n.boundState === note.boundState; });
    if (same.length > 5) model.notifications.splice(model.notifications.indexOf(same[0]), 1);
    if (timeoutMs) setTimeout(function () { removeNote(note.id); }, timeoutMs);
    render();
    return note.id;
  }
  function removeNote(id) {
    model.notifications = model.notifications.filter(function (n) { return n.id !== id; });
    render();
  }

  // ---------------------------------------------------------------- public methods

  function guard(method, fn) {
    return function () {
      var allowed = ALLOWED[method];
      if (allowed && allowed.indexOf(model.appState) < 0) {
        var text = method + " is allowed in " + allowed.join(", ") + "; the agent bar is in " + model.appState;
        if (allowed.indexOf("READY") >= 0 && (model.appState === "IDENTIFY" || model.appState === "DEVICE")) text += "; it needs a phone: choose your phone first";
        warn(text);
        if (method !== "notify") showError(method, { error: "local_state", code: 412, message: text });
        return rejected(text, 412);
      }
      try {
        var r = fn.apply(null, arguments);
        return r && typeof r.then === "function" ? handled(r) : r;
      } catch (e) {
        warn(e.message);
        showError(method, { error: e.code === 412 ? "local_state" : "invalid_data", code: e.code || 400, message: e.message, fields: e.fields });
        return rejected(e.message, e.code || 400);
      }
    };
  }
  function needCall(method, test, what) {
    var list = calls().filter(test || function () { return true; });
    if (!list.length) {
      var e = new Error(method + ": " + (what || "there is no call"));
      e.code = 412;
      throw e;
    }
    return list[list.length - 1];
  }
  // A call to UCS whose failure the CRM hears about through onWarning and the agent
  // sees in the bar's message area, in the bar's language.
  function act(method, args, info) {
    return request(method, args).then(function (r) { if (info) fire("onInfo", info); return r; },
      function (e) { warn(e.message); showError(method, e, args); throw e; });
  }

  // ---------------------------------------------------------------- errors on the bar

  var ACTIONS = {
    "call.dial": "dial", dial: "dial", "call.answer": "answer", answer: "answer", "call.hangup": "hangup", hangup: "hangup",
    "call.tribute": "hold", tribute: "hold", "call.unhold": "unhold", unhold: "unhold", "call.mute": "mute", mute: "mute",
    "call.record": "record", record: "record", "call.stopRecord": "stopRecord", stopRecord: "stopRecord",
    "call.transfer": "transfer", transfer: "transfer", "call.blindTransfer": "blind", blindTransfer: "blind",
    "call.finishTransfer": "finishTransfer", finishTransfer: "finishTransfer",
    "agent.changeStatus": "actionStatus", changeStatus: "actionStatus", "agent.suspend": "actionSuspend", suspend: "actionSuspend",
    "agent.resume": "actionSuspend", resume: "actionSuspend", "call.setAccountCode": "actionAccount", setAccountCode: "actionAccount",
    login: "login", sso: "login", logout: "actionLogout", identifier: "actionPair", selectIdentifier: "actionPair", provision: "actionPair", identify: "actionPhone",
  };
  // The bar's own words for a refusal, by its code (UCS's `error` kind, and the method and
  // field where they say more); UCS's English text where the bar has none.
  function errorReason(method, e, args) {
    var kind = e.error, fields = e.fields || {};
    var number = args && args[0] !== undefined ? String(args[0]) : "";
    if (kind === "invalid_data" && fields.number !== undefined) return t("errNumber", { number: number });
    if (kind === "invalid_data" && fields.reason !== undefined && /changeStatus/.test(method)) return t("errAuxReason");
    if (kind === "invalid_state" && /dial$/.test(method) && /already a call/.test(e.message)) return t("errBusy");
    if (kind === "invalid_state" && /consultation call .* not connected/.test(e.message)) return t("errConsult");
    if (kind === "invalid_state" && /requires a call reason/.test(e.message)) return t("reasonRequired");  // the floor: wrap-up, recent calls, queue figures
    if (kind === "local_state" && /there is no/.test(e.message)) return t("errNoCall");
    var supWhy = superError(e); if (supWhy) return supWhy;  // the supervisor: scope, monitoring
    if (/needs a phone/.test(e.message) && (kind === "local_state" || kind === "invalid_state")) return t("errNoPhone");
    if (kind === "invalid_state" && /^(logout|identify): your phone .* has a call/.test(e.message)) return t("errOnCall");
    if (kind === "local_state" || kind === "invalid_state") return t("err_invalid_state");
    if (e.code === 0) return t("errNotConnected");
    if (kind && I18N.en["err_" + kind]) return t("err_" + kind);
    return e.message;
  }
  var alertId = 0;
  function showError(method, e, args) {
    if (!root) return;
    var action = ACTIONS[method] ? t(ACTIONS[method]) : method;
    var why = errorReason(method, e, args);
    var text = t("failed", { action: action, why: why });
    model.alerts = model.alerts.filter(function (a) { return a.text !== text; });
    var alert = { id: ++alertId, text: text, detail: e.message && e.message !== why ? e.message : "" };
    model.alerts.push(alert);
    if (model.alerts.length > 3) model.alerts.shift();
    var ms = Number(opt("messageTimeout"));
    if (ms > 0) setTimeout(function () { closeAlert(alert.id); }, ms);
    render();
  }
  function closeAlert(id) {
    var before = model.alerts.length;
    model.alerts = model.alerts.filter(function (a) { return a.id !== id; });
    if (model.alerts.length !== before) render();
  }

  var api = {
    login: function (username, password, remember) {
      if (!username || !password) throw new Error("login needs a user name and a password");
      return doLogin(username, password, remember);
    },
    sso: function (username, token, provider) {
      if (!username || !token) throw new Error("sso needs a user name and a token");
      model.busy = "login"; render();
      return request("sso", [String(username), String(token), provider ? String(provider) : null]).then(function (res) {
        if (provider && !opt("disableIntegratedAutoLogout")) {
          model.autoLogoutOnUnload = true;
          request("session.options", { logoutOnClose: true }).catch(function () {});
        }
        return loggedIn(res);
      }, loginFailed);
    },
    logout: function () {
      return request("logout").then(function () {
        forgetRemembered();  // UCS revoked the user's remembered logins: drop the cookie too
        forgetUser(); model.noAutologin = true; model.autoLogoutOnUnload = false;
        credentials();
      }, function (e) { warn(e.message); showError("logout", e); throw e; });
    },
    identifier: function (identifier) {
      if (!identifier) throw new Error("identifier needs the phone's identifier");
      fire("onIdentifier", String(identifier));
      return pairWith(identifier, false);
    },
    provision: function () { return doProvision(); },
    identify: function () {
      return request("identify").then(function () {
        model.device = null; model.calls = {}; model.order = [];
        superReset();  // the supervisor: choose again how to work
        setAppState("IDENTIFY");
        if (superChoice()) return null;
        return askIdentifier();
      }, function (e) { warn(e.message); showError("identify", e); throw e; });
    },
    changeStatus: function (status, reason) {
      status = String(status || "").toUpperCase();
      if (STATUSES.indexOf(status) < 0) throw new Error("changeStatus: " + JSON.stringify(status) + " is not a status; give OFFLINE, READY, AUX or ACW");
      return act("agent.changeStatus", reason ? [status, String(reason)] : [status], t("statusChanged", { status: t(status) + (reason ? " (" + reason + ")" : "") }));
    },
    suspend: function (queue) { return act("agent.suspend", [Number(queue)]); },
    resume: function (queue) { return act("agent.resume", [Number(queue)]); },
    answer: function () {
      var here = softphoneAnswer() || answerInOtherTab();  // ringing in the bar's own softphone: answered in the browser
      if (here) return here;
      needCall("answer", function (c) { return c.state === CALL.RINGING; }, "there is no ringing call to answer");
      return act("call.answer");
    },
    dial: function (number, queue, line, data) {
      if (!number) throw new Error("dial needs a number");
      Object.keys(model.consult).forEach(function (u) { if (model.consult[u] === "") model.consult[u] = String(number); });
      var args = [String(number)];
      if (queue !== undefined || line !== undefined || data !== undefined) args.push(queue === undefined ? null : queue);
      if (line !== undefined || data !== undefined) args.push(line === undefined ? null : line);
      if (data !== undefined) args.push(data);
      return act("call.dial", args);
    },
    hangup: function () {
      needCall("hangup");
      return softphoneHangup() || act("call.hangup");  // the softphone: a plain call ends in the browser
    },
    transfer: function (number) {
      var c = needCall("transfer", function (c) { return c.state === CALL.CONNECTED || c.state === CALL.HELD; }, "there is no connected call to transfer");
      model.transferOpen = false;
      return act("call.transfer", number ? [String(number)] : []).then(function (r) {
        model.consult[c.uniqueid] = number ? String(number) : "";
        render();
        return r;
      });
    },
    finishTransfer: function () { needCall("finishTransfer"); return act("call.finishTransfer"); },
    blindTransfer: function (number) {
      if (!number) throw new Error("blindTransfer needs a number");
      needCall("blindTransfer");
      model.transferOpen = false;
      return act("call.blindTransfer", [String(number)]);
    },
    tribute: function () {
      needCall("tribute", function (c) { return c.state === CALL.CONNECTED; }, "there is no connected call to hold");
      return act("call.tribute");
    },
    unhold: function () {
      needCall("unhold", function (c) { return c.state === CALL.HELD; }, "there is no call on hold");
      return act("call.unhold");
    },
    mute: function () {
      needCall("mute", function (c) { return c.state === CALL.CONNECTED; }, "there is no connected call to mute");
      var was = softphoneMute();  // the softphone: the microphone off in the browser at once, UCS told too
      return act("call.mute").catch(function (e) { if (was !== null) setMuted(was); throw e; });
    },
    record: function () {
      needCall("record", function (c) { return c.state === CALL.CONNECTED || c.state === CALL.HELD; }, "there is no connected call to record");
      return act("call.record");
    },
    stopRecord: function () { return act("call.stopRecord"); },
    // A short-lived link to a recording of the call (seed 002 api.recording is the service's address).
    recordingUrl: function (uniqueid, file) {
      if (!uniqueid) throw new Error("recordingUrl needs the call's uniqueid");
      return act("recording.url", [String(uniqueid), file ? String(file) : null]).then(function (r) {
        return Object.assign({}, r, { url: serviceURL("recording") + r.url });
      });
    },
    setAccountCode: function (uniqueid, accountCode, subAccountCode, override) {
      if (!uniqueid || !accountCode) throw new Error("setAccountCode needs the call's uniqueid and an account code");
      return act("call.setAccountCode", [String(uniqueid), String(accountCode), subAccountCode ? String(subAccountCode) : null, !!override], t("accountSaved"));
    },
    notify: function (title, type, unique, timeout, boundState, group, other) {
      if (title && typeof title === "object") {  // also notify({title, type, …})
        var o = title; title = o.title; type = o.type; unique = o.unique; timeout = o.timeout;
        boundState = o.boundState; group = o.group; other = o.other;
      }
      var text = format(t(String(title || "")), other && (other.values || other));
      // timeout: seconds when up to 600, else milliseconds; null: until closed.
      var ms = timeout === null || timeout === undefined ? null : (timeout <= 600 ? timeout * 1000 : timeout);
      return notifyInternal(text, type || "info", boundState || null, ms, group || null, !!unique);
    },
    state: function () {
      var snapshot = publicState();
      var p = request("state").then(function (s) { applyState(s); return publicState(); });
      return Object.assign(handled(p), snapshot);
    },
    selectRingingSound: function (sound) {
      if (RINGING_SOUNDS.indexOf(sound) < 0) throw new Error("selectRingingSound: give one of " + RINGING_SOUNDS.join(", "));
      model.ringingSound = sound;
      try { localStorage.setItem("ucsOperatorRingingSound", sound); } catch (e) { /* private mode */ }
      return sound;
    },
    testRingingSound: function () { ringTest(true); },
    stopRingingSoundTest: function () { ringTest(false); },
  };
  api.selectIdentifier = api.identifier;

  Object.keys(api).forEach(function (name) { NS[name] = guard(name, api[name]); });
  NS.version = VERSION;
  // Not in seed 002, for CRMs and tests: the component state and the calls the bar shows.
  NS.componentState = function () { return model.appState; };
  NS.calls = function () { return calls().slice(); };

  // ---------------------------------------------------------------- the visible bar

  var root = null, els = {};
  var ICONS = {
    rec: '<circle cx="12" cy="12" r="6"/>',
    user: '<path d="M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm0 2c-4 0-7 2-7 4.5V20h14v-1.5C19 16 16 14 12 14z"/>',
    phone: '<path d="M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2c.3-.3.7-.4 1-.2 1.1.4 2.3.6 3.6.6.6 0 1 .4 1 1V20c0 .6-.4 1-1 1A17 17 0 0 1 3 4c0-.6.4-1 1-1h3.5c.6 0 1 .4 1 1 0 1.3.2 2.5.6 3.6.1.3 0 .7-.2 1l-2.3 2.2z"/>',
    hangup: '<path d="M12 9c-1.6 0-3.2.3-4.6.7v3.1c0 .4-.2.7-.6.9-1 .5-1.8 1.1-2.6 1.8-.2.2-.4.3-.7.3s-.5-.1-.7-.3L.3 13c-.2-.2-.3-.4-.3-.7s.1-.5.3-.7C3.3 8.8 7.4 7 12 7s8.7 1.8 11.7 4.6c.2.2.3.4.3.7s-.1.5-.3.7l-2.5 2.5c-.2.2-.4.3-.7.3s-.5-.1-.7-.3c-.8-.7-1.7-1.3-2.6-1.8-.3-.2-.6-.5-.6-.9V9.7C15.2 9.3 13.6 9 12 9z"/>',
    pause: '<path d="M7 5h4v14H7zM13 5h4v14h-4z"/>',
    play: '<path d="M8 5v14l11-7z"/>',
    mic: '<path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V21h2v-3.1A7 7 0 0 0 19 11h-2z"/>',
    micoff: '<path d="M19 11h-1.7c0 .7-.2 1.4-.4 2l1.2 1.2c.6-.9.9-2 .9-3.2zm-4 .2V5a3 3 0 0 0-6-.2l6 6.4zM4.3 3 3 4.3l6 6V11a3 3 0 0 0 4.2 2.8l1.7 1.6A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.9V21h2v-3.1c.9-.1 1.8-.4 2.5-.9l4.2 4.3L21 20 4.3 3z"/>',
    transfer: '<path d="M16 3l5 5-5 5V9.5H9v-3h7V3zM8 11v3.5h7v3H8V21l-5-5 5-5z"/>',
    keypad: '<path d="M6 3a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm6 0a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm6 0a2 2 0 1 0 0 4 2 2 0 0 0 0-4zM6 9a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm6 0a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm6 0a2 2 0 1 0 0 4 2 2 0 0 0 0-4zM6 15a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm6 0a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm6 0a2 2 0 1 0 0 4 2 2 0 0 0 0-4z"/>',
    menu: '<path d="M3 6h18v2H3zm0 5h18v2H3zm0 5h18v2H3z"/>',
    people: '<path d="M16 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm-8 0a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm0 2c-2.3 0-7 1.2-7 3.5V19h14v-2.5C15 14.2 10.3 13 8 13zm8 0h-1c1.2.9 2 2 2 3.5V19h6v-2.5c0-2.3-4.7-3.5-7-3.5z"/>',
    chevron: '<path d="M7 10l5 5 5-5z"/>',
    close: '<path d="M19 6.4 17.6 5 12 10.6 6.4 5 5 6.4 10.6 12 5 17.6 6.4 19 12 13.4 17.6 19 19 17.6 13.4 12z"/>',
    warn: '<path d="M1 21h22L12 2 1 21zm12-3h-2v-2h2v2zm0-4h-2v-4h2v4z"/>',
    inbound: '<path d="M20 5.4 18.6 4 8 14.6V9H6v9h9v-2H9.4z"/>',
    outbound: '<path d="M9 5v2h6.6L4 18.6 5.4 20 17 8.4V15h2V5z"/>',
  };
  function icon(name, cls) { return '<svg class="ucs-i ' + (cls || "") + '" viewBox="0 0 24 24" aria-hidden="true">' + (ICONS[name] || "") + "</svg>"; }

  function loadCSS() {
    if (document.querySelector("link[data-ucs-operator]")) return;
    var src = SCRIPT && SCRIPT.src;
    if (!src) return;
    var href = src.replace(/operator(-v[\d.]+)?\.js(\?.*)?$/, "operator-v" + VERSION + ".css");
    var link = document.createElement("link");
    link.rel = "stylesheet"; link.href = href; link.setAttribute("data-ucs-operator", "");
    document.head.appendChild(link);
  }

  function mount() {
    if (opt("headless")) return;
    var host = document.getElementById(opt("renderTo"));
    if (!host) { fire("onError", "renderTo: there is no element with id " + JSON.stringify(opt("renderTo")) + "; the bar runs headless"); return; }
    loadCSS();
    host.innerHTML =
      '<div class="ucs-bar" data-state="CONNECTING">' +
      '<div class="ucs-top">' +
      '<div class="ucs-brand">UCS</div>' +
      '<div class="ucs-name" data-ref="name"></div>' +
      '<div class="ucs-status-wrap" data-ref="statusWrap"></div>' +
      '<div class="ucs-waiting" data-ref="waiting"></div>' +
      '<div class="ucs-history-wrap" data-ref="historyBtn"></div>' +
      '<div class="ucs-spacer"></div>' +
      '<form class="ucs-dial" data-ref="dial" autocomplete="off">' +
      '<label class="ucs-sr" for="ucs-dial-input" data-t="dialNumber"></label>' +
      '<input class="ucs-dial-input" id="ucs-dial-input" data-ref="dialInput" inputmode="tel" name="number">' +
      '<button type="button" class="ucs-btn ucs-icon-btn" data-act="keypad" data-ref="keypadBtn" aria-haspopup="true" aria-expanded="false">' + icon("keypad") + "</button>" +
      '<button type="submit" class="ucs-btn ucs-green" data-ref="dialBtn">' + icon("phone") + '<span data-t="dial"></span></button>' +
      '<div class="ucs-keypad" data-ref="keypad" hidden></div>' +
      "</form>" +
      '<div class="ucs-menu-wrap" data-ref="menuWrap"><button type="button" class="ucs-btn ucs-icon-btn ucs-ghost" data-act="menu" data-ref="menuBtn" aria-haspopup="true" aria-expanded="false">' + icon("menu") + '</button><div class="ucs-menu" data-ref="menu" role="menu" hidden></div></div>' +
      "</div>" +
      '<div class="ucs-alerts" data-ref="alerts" aria-live="assertive" aria-relevant="additions text"></div>' +
      '<div class="ucs-sr" data-ref="announce" aria-live="polite" aria-atomic="true"></div>' +
      '<div class="ucs-body">' +
      '<form class="ucs-card ucs-login" data-ref="login" autocomplete="on">' +
      '<h2 data-t="signIn"></h2>' +
      '<label><span data-t="username"></span><input name="username" autocomplete="username" data-ref="loginUser"></label>' +
      '<label><span data-t="password"></span><input name="password" type="password" autocomplete="current-password" data-ref="loginPass"></label>' +
      '<label class="ucs-check"><input type="checkbox" name="remember" data-ref="loginRemember"><span data-t="remember"></span></label>' +
      '<div class="ucs-form-error" data-ref="loginError" role="alert"></div>' +
      '<div class="ucs-form-notes" data-ref="loginNotes"></div>' +
      '<button type="submit" class="ucs-btn ucs-primary ucs-wide" data-ref="loginBtn"></button>' +
      "</form>" +
      '<form class="ucs-card ucs-pair" data-ref="pair" autocomplete="off">' +
      '<h2 data-t="pickPhone"></h2>' +
      '<div class="ucs-phones" data-ref="phones"></div>' +
      '<label><span data-t="identifierLabel"></span><input name="identifier" data-ref="identifierInput"></label>' +
      '<button type="submit" class="ucs-btn ucs-primary ucs-wide" data-ref="pairBtn"></button>' +
      "</form>" +
      '<div class="ucs-card ucs-confirm" data-ref="confirm"></div>' +
      '<div class="ucs-figures" data-ref="figures" hidden></div>' +
      '<div class="ucs-history" data-ref="history" hidden></div>' +
      '<div class="ucs-calls" data-ref="calls"></div>' +
      '<form class="ucs-transfer" data-ref="transfer" data-form="transfer" autocomplete="off" hidden><label><span data-t="transferTo"></span>' +
      ' <input name="number" inputmode="tel" data-ref="transferInput"></label>' +
      '<button type="submit" class="ucs-btn ucs-primary" data-kind="consult" data-t="consult"></button>' +
      '<button type="submit" class="ucs-btn" data-kind="blind" data-t="blind"></button>' +
      '<button type="button" class="ucs-btn ucs-ghost-dark" data-act="transfer" data-t="cancel"></button></form>' +
      '<div class="ucs-wrapup" data-ref="wrapup" hidden></div>' +
      '<div class="ucs-account" data-ref="account"></div>' +
      '<div class="ucs-loading" data-ref="loading"></div>' +
      "</div>" +
      '<div class="ucs-bottom" data-ref="bottom"></div>' +
      "</div>";
    root = host.firstChild;
    Array.prototype.forEach.call(root.querySelectorAll("[data-ref]"), function (el) { els[el.getAttribute("data-ref")] = el; });
    var keys = "123456789*0#".split("");
    els.keypad.innerHTML = keys.map(function (k) { return '<button type="button" class="ucs-key" data-key="' + k + '">' + k + "</button>"; }).join("");
    mountXfer();  // the transfer: directory, keypad
    root.addEventListener("click", onClick);
    root.addEventListener("keydown", onKeyDown);
    document.addEventListener("keydown", onShortcut, true);
    root.addEventListener("submit", onSubmit);
    mountFloor();  // the floor: wrap-up, recent calls, queue figures
    mountSuper();  // the supervisor: the choice, team, wallboard
    root.addEventListener("click", function (e) { e.ucsInside = !!e.target.closest(".ucs-status-wrap, .ucs-menu-wrap, .ucs-dial"); }, true);
    document.addEventListener("click", function (e) {
      if (!e.ucsInside) {
        if (model.statusOpen || model.menuOpen || model.keypadOpen) { model.statusOpen = model.menuOpen = model.keypadOpen = false; render(); }
      }
    });
    setInterval(tick, 1000);
    render();
  }

  function fillLogin(user, pass, remember) {
    if (!root) return;
    els.loginUser.value = user || ""; els.loginPass.value = pass || ""; els.loginRemember.checked = !!remember;
  }

  function onSubmit(e) {
    e.preventDefault();
    var f = e.target;
    if (superSubmit(f)) return;  // the supervisor: an agent's not-ready reason
    if (f === els.login) {
      askAlertPermission();  // the agent's own click: browsers ask for the permission only then
      var user = els.loginUser.value.trim();
      if (!els.loginPass.value && model.remembered && user === model.remembered) { rememberedLogin().catch(function () {}); return; }
      NS.login(user, els.loginPass.value, els.loginRemember.checked).catch(function () {});
    } else if (f === els.pair) {
      var id = els.identifierInput.value.trim();
      if (id) NS.selectIdentifier(id).catch(function () {});
    } else if (f === els.dial) {
      var n = els.dialInput.value.trim();
      if (!n) return;
      model.keypadOpen = false;
      NS.dial(n).then(function () { els.dialInput.value = ""; }, function () {});
      render();
    } else if (f.getAttribute("data-form") === "aux") {
      var reason = f.querySelector("[name=reason]").value.trim();
      if (!reason) { showError("changeStatus", { error: "invalid_data", code: 400, message: "AUX needs a reason", fields: { reason: "" } }); return; }
      model.statusOpen = false; model.auxOpen = false; render(); focusToggle(els.statusWrap);
      NS.changeStatus("AUX", reason).catch(function () {});
    } else if (f.getAttribute("data-form") === "transfer") {
      var num = f.querySelector("input").value.trim();
      if (!num) return;
      var kind = e.submitter && e.submitter.getAttribute("data-kind");
      (kind === "blind" ? NS.blindTransfer(num) : NS.transfer(num)).catch(function () {});
    } else if (f.getAttribute("data-form") === "account") {
      var code = f.querySelector("[name=code]:checked"), sub = f.querySelector("[name=sub]");
      if (!code || !model.accountFor) return;
      var uid = model.accountFor.uniqueid;
      NS.setAccountCode(uid, code.value, sub && sub.value ? sub.value : null, false).then(function () {
        if (model.accountFor && model.accountFor.uniqueid === uid) { nextAccount(); render(); }
      }, function () {});
    }
  }

  function onClick(e) {
    if (xferClick(e)) return;  // the transfer: directory, keypad, swap, conference
    var key = e.target.closest("[data-key]");
    if (key) { els.dialInput.value += key.getAttribute("data-key"); els.dialInput.focus(); return; }
    var el = e.target.closest("[data-act]");
    if (!el) return;
    var act = el.getAttribute("data-act"), arg = el.getAttribute("data-arg");
    var quiet = function (p) { if (p && p.catch) p.catch(function () {}); };
    switch (act) {
      case "status": model.statusOpen = !model.statusOpen; model.menuOpen = false; model.auxOpen = false; render(); if (model.statusOpen) focusItem(els.statusWrap, 0); break;
      case "aux-open": model.auxOpen = true; render(); var field = els.statusWrap.querySelector("[name=reason]"); if (field) field.focus(); break;
      case "alert-close": closeAlert(Number(arg)); break;
      case "set-status":
        model.statusOpen = false; model.auxOpen = false; render(); focusToggle(els.statusWrap);
        quiet(NS.changeStatus(el.getAttribute("data-status"), arg || undefined)); break;
      case "menu": model.menuOpen = !model.menuOpen; model.statusOpen = false; render(); if (model.menuOpen) focusItem(els.menu, 0); break;
      case "keypad": model.keypadOpen = !model.keypadOpen; render(); break;
      case "answer": quiet(NS.answer()); break;
      case "hangup": quiet(NS.hangup()); break;
      case "hold": quiet(NS.tribute()); break;
      case "unhold": quiet(NS.unhold()); break;
      case "mute": quiet(NS.mute()); break;
      case "record": quiet(NS.record()); break;
      case "stop-record": quiet(NS.stopRecord()); break;
      case "transfer": model.transferOpen = !model.transferOpen; render(); break;
      case "finish": quiet(NS.finishTransfer()); break;
      case "pick-phone": quiet(NS.selectIdentifier(arg)); break;
      case "confirm": quiet(NS.provision()); break;
      case "another": model.device = null; askIdentifier(); setAppState("IDENTIFY"); break;
      case "change-phone": model.menuOpen = false; quiet(NS.identify()); break;
      case "ask-phone": model.menuOpen = false; model.pairAsked = true; askIdentifier(); render(); break;
      case "logout": model.menuOpen = false; if (calls().length) { model.logoutAsk = true; render(); } else quiet(NS.logout()); break;
      case "logout-hangup": quiet(hangupAndLogout()); break;
      case "logout-stay": model.logoutAsk = false; render(); break;
      case "lang":
        model.menuOpen = false; lang = langPicked = lang === "cs" ? "en" : "cs";
        try { localStorage.setItem(LANG_KEY, lang); } catch (err) { /* private mode: this page only */ }
        render(); els.menuBtn.focus(); break;
      case "suspend": quiet(el.getAttribute("data-on") === "1" ? NS.resume(Number(arg)) : NS.suspend(Number(arg))); break;
      case "code": model.accountCode = arg; render(); break;
      case "skip": nextAccount(); render(); break;
      case "note-close": removeNote(Number(arg)); break;
      default: if (!superClick(act, arg)) clickFloor(act, arg);  // the supervisor; the floor: wrap-up, recent calls, queue figures
    }
  }

  // ---------------------------------------------------------------- the keyboard

  // Shortcuts: Alt+Shift+letter (by the key's position, `code`, so any layout works);
  // a CRM page's own typing never uses Alt+Shift.
  var SHORTCUT_LIST = [["A", "scAnswer"], ["E", "scHangup"], ["H", "scHold"], ["M", "scMute"], ["R", "scReady"], ["N", "scNotReady"]];
  function onShortcut(e) {
    if (!e.altKey || !e.shiftKey || e.ctrlKey || e.metaKey || e.repeat || !opt("shortcuts") || model.appState !== "READY") return;
    var letter = /^Key([A-Z])$/.exec(e.code || "");
    if (!letter) return;
    var quiet = function (p) { if (p && p.catch) p.catch(function () {}); };
    var c = activeCall();
    switch (letter[1]) {
      case "A": quiet(NS.answer()); break;
      case "E": quiet(NS.hangup()); break;
      case "H": quiet(c && c.state === CALL.HELD ? NS.unhold() : NS.tribute()); break;
      case "M": quiet(NS.mute()); break;
      case "R": quiet(NS.changeStatus("READY")); break;
      case "N":  // not ready needs a reason: the status menu opens on the AUX choices
        if (!root) return;
        model.statusOpen = true; model.menuOpen = false; render();
        var aux = els.statusWrap.querySelector('.ucs-item[data-status="AUX"]');
        if (aux) aux.focus();
        break;
      default: return;
    }
    e.preventDefault();
  }

  function items(box) { return Array.prototype.slice.call(box.querySelectorAll(".ucs-item, .ucs-aux-form input, .ucs-aux-form button")); }
  function focusItem(box, i) { var list = items(box); if (list.length) list[(i + list.length) % list.length].focus(); }
  function focusToggle(box) { var b = box && box.parentNode && box.querySelector("[data-act=status], [data-act=menu], [data-act=keypad]"); if (b) b.focus(); }

  // Menus: Escape closes the open one (focus back on its button), arrows move between items.
  function onKeyDown(e) {
    if (floorKeys(e)) return;
    if (superKeys(e)) return;  // the supervisor: Escape closes an agent's reason form  // the floor: wrap-up, recent calls, queue figures: the reason picker, the recent calls
    var box = model.statusOpen ? els.statusWrap : model.menuOpen ? els.menuWrap : model.keypadOpen ? els.dial : null;
    if (!box || !box.contains(e.target)) {
      if (e.key === "ArrowDown" && e.target.closest && e.target.closest("[data-act=status], [data-act=menu]")) {
        e.target.click(); e.preventDefault();
      }
      return;
    }
    if (e.key === "Escape") {
      model.statusOpen = model.menuOpen = model.keypadOpen = model.auxOpen = false;
      render(); focusToggle(box); e.preventDefault(); return;
    }
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp" && e.key !== "Home" && e.key !== "End") return;
    if (e.target.tagName === "INPUT" && (e.key === "Home" || e.key === "End")) return;
    var list = items(box), at = list.indexOf(document.activeElement);
    var next = e.key === "Home" ? 0 : e.key === "End" ? list.length - 1 : at + (e.key === "ArrowDown" ? 1 : -1);
    focusItem(box, at < 0 && e.key === "ArrowUp" ? -1 : next);
    e.preventDefault();
  }

  function statusLabel(status, reason) {
    return t(status) + (status === "AUX" && reason ? " · " + reason : "");
  }

  // topMenuNameContent is text with two placeholders, %icon% and %name%; the rest of
  // it stays text, whatever it looks like.
  function nameContent(el, template, name) {
    var key = template + "\u0000" + name;
    if (el.getAttribute("data-for") === key) return;
    el.setAttribute("data-for", key);
    el.textContent = "";
    template.split(/(%icon%|%name%)/).forEach(function (part) {
      if (part === "%icon%") {
        el.insertAdjacentHTML("beforeend", icon("user", "ucs-avatar"));  // the bar's own SVG, a constant
      } else if (part === "%name%") {
        var span = document.createElement("span");
        span.className = "ucs-username";
        span.textContent = name;
        el.appendChild(span);
      } else if (part) {
        el.appendChild(document.createTextNode(part));
      }
    });
  }

  // Replace el's markup only when it changed, keeping what the agent is doing inside it:
  // the values typed in its fields, the focused control and the caret (a redraw must not
  // eat keystrokes).
  function setHTML(el, html) {
    if (el.__ucsHTML === html) return false;
    var active = document.activeElement, key = active && el.contains(active) ? focusKey(active) : null;
    var caret = key && typeof active.selectionStart === "number" ? [active.selectionStart, active.selectionEnd] : null;
    var values = {};
    Array.prototype.forEach.call(el.querySelectorAll("input[name]:not([type=radio]):not([type=checkbox]), select[name]"), function (f) { values[f.name] = f.value; });
    el.innerHTML = html;
    el.__ucsHTML = html;
    Array.prototype.forEach.call(el.querySelectorAll("input[name]:not([type=radio]):not([type=checkbox]), select[name]"), function (f) {
      if (values[f.name] !== undefined) f.value = values[f.name];
    });
    var again = key && el.querySelector(key);
    if (again) {
      again.focus();
      if (caret) { try { again.setSelectionRange(caret[0], caret[1]); } catch (e) { /* not a text field */ } }
    }
    return true;
  }
  function focusKey(node) {
    var sel = node.tagName.toLowerCase();
    ["data-act", "data-arg", "data-status", "data-key", "name"].forEach(function (a) {
      var v = node.getAttribute(a);
      if (v !== null) sel += "[" + a + '="' + (window.CSS && CSS.escape ? CSS.escape(v) : v) + '"]';
    });
    return sel === node.tagName.toLowerCase() ? null : sel;
  }

  // What the agent is doing while a call is up ("On call", "Ringing", …): null without one.
  function activity() {
    var c = activeCall();
    if (!c) return null;
    if (c.state === CALL.HELD) return t("onHoldActivity");
    if (c.state === CALL.CONNECTED) return t("onCall");
    if (c.state === CALL.RINGING && c.direction !== "OUTGOING") return t("ringingActivity");
    return t("dialling");
  }

  function renderTop() {
    var name = (model.user && (model.user.displayname || model.user.username)) || "";
    nameContent(els.name, model.user ? String(opt("topMenuNameContent")) : "", name);
    var ready = model.appState === "READY";
    if (ready) {
      var reasons = (model.state && model.state.auxReasons) || [];
      var item = function (status, arg, label, act) {
        return '<button type="button" class="ucs-item" data-act="' + (act || "set-status") + '" data-status="' + status + '"' +
          (arg !== null ? ' data-arg="' + esc(arg) + '"' : "") + '><i class="ucs-dot s-' + status + '" aria-hidden="true"></i>' + esc(label) + "</button>";
      };
      var items = item("READY", null, t("READY"));
      // AUX needs a reason: one of the configured ones, or (none configured) a short text.
      items += reasons.length ? reasons.map(function (r) { return item("AUX", r.name, t("AUX") + " · " + r.name); }).join("")
        : item("AUX", null, t("AUX") + "…", "aux-open") + (model.auxOpen ?
          '<form class="ucs-aux-form" data-form="aux" autocomplete="off"><label><span>' + esc(t("auxReason")) + '</span><input name="reason" maxlength="64" placeholder="' +
          esc(t("auxReasonPlaceholder")) + '"></label><button type="submit" class="ucs-btn ucs-primary">' + esc(t("auxGo")) + "</button></form>" : "");
      items += item("OFFLINE", null, t("OFFLINE"));
      var act = activity();
      var label = (act ? act + " · " : "") + statusLabel(model.status, model.reason);
      setHTML(els.statusWrap, '<button type="button" class="ucs-status s-' + esc(model.status) + (act ? " ucs-busy" : "") + '" data-act="status" aria-haspopup="true" aria-expanded="' + (model.statusOpen ? "true" : "false") + '">' +
        '<i class="ucs-dot s-' + esc(model.status) + '" aria-hidden="true"></i><span class="ucs-status-text">' + esc(label) + "</span>" +
        '<span class="ucs-status-time" data-status-time></span>' +
        (model.status === "ACW" && model.acwUntil ? ' <span class="ucs-countdown" data-ref-acw></span>' : "") + icon("chevron") + "</button>" +
        '<div class="ucs-dropdown" data-ref-dropdown' + (model.statusOpen ? "" : " hidden") + ">" + items + "</div>");
      // the supervisor: working without an agent, there is no status to change
      if (supervising()) setHTML(els.statusWrap, '<span class="ucs-status ucs-sup-badge" data-supervising>' + icon("people") + '<span class="ucs-status-text">' + esc(t("supervising")) + "</span></span>");
      var n = model.waitingCallers;
      setHTML(els.waiting, '<span class="ucs-waiting-badge' + (n ? " ucs-hot" : "") + '" title="' + esc(t("waitingTitle")) + '">' + icon("people") + "<b>" + esc(n) + "</b> " + esc(waitingText(n)) + "</span>");
    } else {
      setHTML(els.statusWrap, ""); setHTML(els.waiting, "");
    }
    els.dial.hidden = !(ready && opt("showDialControl"));
    els.keypad.hidden = !model.keypadOpen;
    els.keypadBtn.setAttribute("aria-label", t("keypad"));
    els.keypadBtn.setAttribute("aria-expanded", model.keypadOpen ? "true" : "false");
    els.menuBtn.setAttribute("aria-label", t("menu"));
    els.menuBtn.setAttribute("aria-expanded", model.menuOpen ? "true" : "false");
    els.dialInput.placeholder = t("dialPlaceholder");
    els.menuWrap.hidden = !model.user && model.appState !== "CREDENTIALS";
    var menu = '<button type="button" class="ucs-item" data-act="lang" lang="' + (lang === "cs" ? "en" : "cs") + '">' + esc(t("language")) + "</button>";
    if (model.user) {
      if (ready || model.appState === "DEVICE") menu = '<button type="button" class="ucs-item" data-act="change-phone">' + esc(t("changePhone")) + "</button>" + menu;
      // withoutDevice: no phone is paired by itself, but the agent may still choose one.
      if (model.appState === "IDENTIFY" && opt("withoutDevice") && !model.pairAsked) menu = '<button type="button" class="ucs-item" data-act="ask-phone">' + esc(t("pickPhone")) + "</button>" + menu;
      if (ready && model.state && (model.state.queues || []).length && !supervising()) {
        menu += '<div class="ucs-menu-title">' + esc(t("queues")) + "</div>" + model.state.queues.map(function (q) {
          var id = q.id !== undefined ? q.id : q.queue_id;
          return '<button type="button" class="ucs-item" data-act="suspend" data-arg="' + esc(id) + '" data-on="' + (q.suspended ? 1 : 0) + '"><i class="ucs-dot ' + (q.suspended ? "s-OFFLINE" : "s-READY") + '" aria-hidden="true"></i>' + esc(q.name) + (q.suspended ? " · " + esc(t("suspended")) : "") + "</button>";
        }).join("");
      }
      menu += '<button type="button" class="ucs-item ucs-danger" data-act="logout">' + esc(t("logout")) + "</button>";
      if (ready && opt("shortcuts")) {
        menu += '<div class="ucs-menu-title">' + esc(t("shortcuts")) + '</div><dl class="ucs-shortcuts">' + SHORTCUT_LIST.map(function (sc) {
          return "<dt><kbd>Alt</kbd>+<kbd>Shift</kbd>+<kbd>" + sc[0] + "</kbd></dt><dd>" + esc(t(sc[1])) + "</dd>";
        }).join("") + "</dl>";
      }
    }
    setHTML(els.menu, menu);
    els.menu.hidden = !model.menuOpen;
  }

  function callView(c, primary) {
    var dirIcon = c.direction === "OUTGOING" ? "outbound" : "inbound";
    var who = c.direction === "OUTGOING" ? (c.called_name || c.connected_name || c.name) : (c.caller_name || c.name);
    var number = c.number || (c.direction === "OUTGOING" ? c.called_number : c.caller_number) || "";
    var since = timerSince(c);
    var muted = c.caller_muted || c.connected_muted;
    var ringing = c.state === CALL.RINGING || c.state === CALL.DIALING || c.state === CALL.NEW;
    var btn = function (act, ic, label, cls) { return '<button type="button" class="ucs-btn ' + (cls || "") + '" data-act="' + act + '">' + icon(ic) + "<span>" + esc(label) + "</span></button>"; };
    var buttons = "";
    if (primary) {
      if (c.state === CALL.RINGING && c.direction !== "OUTGOING") buttons += btn("answer", "phone", t("answer"), "ucs-green ucs-pulse");
      if (c.state === CALL.CONNECTED) {
        buttons += btn("hold", "pause", t("hold"));
        buttons += btn("mute", muted ? "micoff" : "mic", muted ? t("unmute") : t("mute"), muted ? "ucs-on" : "");
        buttons += btn("transfer", "transfer", t("transfer"), model.transferOpen ? "ucs-on" : "");
      }
      if (c.state === CALL.CONNECTED || c.state === CALL.HELD) {
        buttons += c.recording ? btn("stop-record", "rec", t("stopRecord"), "ucs-on ucs-rec-on") : btn("record", "rec", t("record"));
      }
      var consulting = model.consult[c.uniqueid] !== undefined || (heldCall() && heldCall() !== c && c.state === CALL.CONNECTED);
      // While the agent consults, the caller stays on hold until the transfer is finished or
      // the consultation hung up: UCS refuses a resume then, so none is offered.
      if (c.state === CALL.HELD && model.consult[c.uniqueid] === undefined) buttons += btn("unhold", "play", t("unhold"), "ucs-on");
      if (consulting) buttons += btn("finish", "transfer", t("finishTransfer"), "ucs-primary");
      buttons += xferButtons(c, btn);  // the transfer: swap, conference, keypad
      buttons += btn("hangup", "hangup", t("hangup"), "ucs-red");
    }
    var dirText = c.direction === "OUTGOING" ? t("outgoing") : c.direction === "INTERNAL" ? t("internal") : t("incoming");
    // A supervisor's monitoring session on their own phone: not a call, said so (no recent call, no CDR).
    var mon = c.monitoring && c.monitoring.mode;
    if (mon) dirText = t("supActionMonitor") + " (" + t("sup" + mon.charAt(0).toUpperCase() + mon.slice(1)).toLowerCase() + ")";
    var stateText = t("st" + c.state) + (muted ? " · " + t("muted") : "");
    var recText = c.recording ? '<span class="ucs-rec" data-ref="recording" title="' + esc(t("recordingNow")) + '">' + icon("rec") + esc(t("recordingNow")) + "</span>" : "";
    var consultText = model.consult[c.uniqueid] && !xfer.swapped[c.uniqueid] ? '<div class="ucs-consult">' + icon("transfer") + esc(t("consulting", { number: model.consult[c.uniqueid] })) + "</div>" : "";
    consultText += xferNote(c);  // the transfer: swapped, conference
    var html = '<div class="ucs-call' + (mon ? " ucs-call-monitoring" : "") + (primary ? "" : " ucs-call-held") + (ringing ? " ucs-ringing" : "") + '" data-uniqueid="' + esc(c.uniqueid) + '" data-call-state="' + esc(c.state) + '">' +
      '<div class="ucs-call-icon">' + icon(dirIcon) + "</div>" +
      '<div class="ucs-call-who"><div class="ucs-call-name">' + esc(who || number || t("unknownCaller")) + "</div>" +
      '<div class="ucs-call-meta">' + esc(number) + (c.queue ? ' · <span class="ucs-queue">' + esc(c.queue) + "</span>" : "") + " · " + esc(dirText) + "</div>" + consultText + "</div>" +
      '<div class="ucs-call-state"><span class="ucs-chip st-' + esc(c.state) + '">' + esc(stateText) + '</span><span class="ucs-timer" data-since="' + esc(since || "") + '"></span>' + recText + "</div>" +
      '<div class="ucs-call-actions">' + buttons + "</div></div>";
    return html;
  }

  // The calls are redrawn when they change (the timers tick in place); the transfer form
  // is drawn once and only shown or hidden, so what the agent types there stays.
  function renderCalls() {
    var list = calls(), primary = activeCall();
    var html = list.filter(function (c) { return c !== primary; }).map(function (c) { return callView(c, false); }).join("");
    if (primary) html += callView(primary, true);
    if (setHTML(els.calls, html)) tick();
    els.calls.hidden = !(model.appState === "READY" && list.length);
    var showTransfer = model.appState === "READY" && !!primary && model.transferOpen && primary.state === CALL.CONNECTED;
    if (showTransfer && els.transfer.hidden) {
      els.transfer.hidden = false;
      els.transferInput.value = "";
      els.transferInput.focus();
    } else if (!showTransfer) {
      els.transfer.hidden = true;
    }
    els.transferInput.placeholder = t("dialPlaceholder");
  }

  function renderAccount() {
    var c = model.accountFor;
    if (!c || model.appState !== "READY") { els.account.hidden = true; setHTML(els.account, ""); els.account.removeAttribute("data-for"); return; }
    var reasons = callReasons();
    var tops = reasons.filter(function (r) { return !r.parent_id; });
    var chosen = tops.filter(function (r) { return r.code === model.accountCode; })[0];
    var subs = chosen ? reasons.filter(function (r) { return r.parent_id === chosen.id; }) : [];
    var who = c.direction === "OUTGOING" ? c.called_number : (c.caller_name ? c.caller_name + " · " : "") + c.caller_number;
    els.account.hidden = false;
    els.account.setAttribute("data-for", c.uniqueid);
    var required = reasonRequiredFor(c.uniqueid), more = model.accountQueue.length;  // the floor: wrap-up, recent calls, queue figures
    var html = '<form data-form="account" class="ucs-account-form" aria-describedby="ucs-account-hint"><div class="ucs-account-title" id="ucs-account-title">' + esc(t("accountCode")) +
      ' <span class="ucs-muted">' + esc(who || "") + "</span>" + (required ? ' <span class="ucs-chip ucs-required">' + esc(t("reasonRequiredNote")) + "</span>" : "") +
      (more ? ' <span class="ucs-muted" data-more>' + esc(t("moreReasons", { n: more })) + "</span>" : "") + '<span class="ucs-sr" id="ucs-account-hint">' + esc(t("accountHint")) + "</span></div>" +
      '<div class="ucs-codes" role="radiogroup" aria-labelledby="ucs-account-title"' + (required ? ' aria-required="true"' : "") + ">" + tops.map(function (r) {
        return '<label class="ucs-code' + (chosen === r ? " ucs-on" : "") + '" data-act="code" data-arg="' + esc(r.code) + '"><input type="radio" name="code" data-arg="' + esc(r.code) + '" value="' + esc(r.code) + '"' + (chosen === r ? " checked" : "") + ">" + esc(r.name || r.code) + "</label>";
      }).join("") + "</div>" +
      (subs.length ? '<label class="ucs-sub">' + esc(t("sub")) + ' <select name="sub"><option value="">' + esc(t("none")) + "</option>" + subs.map(function (r) { return '<option value="' + esc(r.code) + '">' + esc(r.name || r.code) + "</option>"; }).join("") + "</select></label>" : "") +
      '<span class="ucs-spacer"></span><button type="submit" class="ucs-btn ucs-primary"' + (chosen ? "" : " disabled") + ">" + esc(t("save")) + "</button>" + (required ? "" : '<button type="button" class="ucs-btn ucs-ghost-dark" data-act="skip">' + esc(t("skip")) + "</button>") + "</form>";
    setHTML(els.account, html);
  }

  function renderNotes(target, state) {
    var notes = model.notifications.filter(function (n) { return !n.boundState || n.boundState === state; });
    return notes.map(function (n) {
      return '<div class="ucs-note ucs-note-' + esc(n.type) + '" data-note="' + esc(n.id) + '"><span>' + esc(n.title) + '</span><button type="button" class="ucs-x" data-act="note-close" data-arg="' + esc(n.id) + '" aria-label="' + esc(t("closeMessage")) + '">' + icon("close") + "</button></div>";
    }).join("");
  }

  function render() {
    if (!root) return;
    var s = model.appState;
    root.setAttribute("data-state", s);
    root.setAttribute("lang", lang);
    Array.prototype.forEach.call(root.querySelectorAll("[data-t]"), function (el) { el.textContent = t(el.getAttribute("data-t")); });
    renderTop();
    tick();
    els.loading.hidden = s !== "CONNECTING";
    els.loading.textContent = model.originRefused ? t("originRefused", { origin: model.originRefused }) : t("loading");
    els.login.hidden = s !== "CREDENTIALS";
    els.loginBtn.textContent = model.busy === "login" ? t("loggingIn") : t("login");
    els.loginBtn.disabled = model.busy === "login" || !model.connected;
    els.loginError.textContent = model.loginError;
    els.loginPass.placeholder = model.remembered ? t("remembered") : "";
    setHTML(els.loginNotes, s === "CREDENTIALS" ? renderNotes(null, s) : "");
    // Errors where the agent looks: under the top bar, each closable, gone after messageTimeout;
    // a lost connection stays there until it is back.
    var lostLink = model.reconnecting && !model.connected ?
      '<div class="ucs-alert ucs-alert-conn" data-alert="connection">' + icon("warn") + '<span class="ucs-alert-text">' + esc(t("lost")) + "</span></div>" : "";
    setHTML(els.alerts, lostLink + model.alerts.map(function (a) {
      return '<div class="ucs-alert" data-alert="' + a.id + '"' + (a.detail ? ' title="' + esc(a.detail) + '"' : "") + '>' + icon("warn") +
        '<span class="ucs-alert-text">' + esc(a.text) + "</span>" + (a.detail && lang === "en" ? '<span class="ucs-alert-detail">' + esc(a.detail) + "</span>" : "") +
        '<button type="button" class="ucs-x" data-act="alert-close" data-arg="' + a.id + '" aria-label="' + esc(t("closeMessage")) + '">' + icon("close") + "</button></div>";
    }).join(""));
    els.pair.hidden = !(s === "IDENTIFY" && (!opt("withoutDevice") || model.pairAsked));
    setHTML(els.phones, model.devices.length ? model.devices.map(function (d) {
      var id = (d.identifiers && d.identifiers[0]) || d.device;
      return '<button type="button" class="ucs-phone" data-act="pick-phone" data-arg="' + esc(id) + '">' + icon("phone") + "<span><b>" + esc(d.name || d.device) + "</b><small>" + esc(d.device) + " · " + esc((d.identifiers || []).join(", ")) + "</small></span></button>";
    }).join("") : '<p class="ucs-muted">' + esc(t("noPhones")) + "</p>");
    els.pairBtn.textContent = model.busy === "pair" ? t("pairing") : t("pair");
    els.pairBtn.disabled = model.busy === "pair";
    els.confirm.hidden = s !== "DEVICE";
    setHTML(els.confirm, s === "DEVICE" && model.device ? "<h2>" + esc(t("confirmPhone")) + '</h2><div class="ucs-phone ucs-static">' + icon("phone") + "<span><b>" + esc(model.device.name || model.device.device) + "</b><small>" + esc(model.device.device) + "</small></span></div>" +
      '<div class="ucs-row"><button type="button" class="ucs-btn ucs-primary" data-act="confirm">' + esc(t("confirm")) + '</button><button type="button" class="ucs-btn ucs-ghost-dark" data-act="another">' + esc(t("another")) + "</button></div>" : "");
    renderCalls();
    renderXfer();  // the transfer: directory, keypad
    renderLogoutAsk();
    renderAccount();
    renderFloor();  // the floor: wrap-up, recent calls, queue figures
    renderSuper();  // the supervisor: the choice, team, wallboard
    renderSoftphone();  // the softphone: status, problems, devices, ringing sound
    var bottom = "";
    if (opt("showBottomMenu")) {
      var conn = model.connected ? '<span class="ucs-conn ucs-ok"><i></i>' + esc(t("connected")) + "</span>" : '<span class="ucs-conn ucs-bad"><i></i>' + esc(model.reconnecting ? t("reconnecting") : t("loading")) + "</span>";
      var phone = model.device ? '<span class="ucs-dev">' + icon("phone") + esc(model.device.name || model.device.device) + "</span>" : (s === "IDENTIFY" && opt("withoutDevice") ? '<span class="ucs-dev">' + esc(t("withoutDevice")) + "</span>" : "");
      bottom = conn + phone + '<span class="ucs-notes">' + (s === "CREDENTIALS" ? "" : renderNotes(null, s)) + "</span>" + '<span class="ucs-ver">v' + VERSION + "</span>";
    }
    setHTML(els.bottom, bottom);
    els.bottom.hidden = !opt("showBottomMenu");
  }

  // Logging out from the menu during a call: UCS refuses it while the phone has a call
  // (the call's controls would be gone with the call still up), so the bar asks whether
  // to hang up first.  Drawn in its own box, above the calls.
  function renderLogoutAsk() {
    var box = root.querySelector("[data-ref=logoutAsk]");
    var show = model.logoutAsk && model.appState === "READY" && calls().length > 0;
    if (!show) { model.logoutAsk = false; if (box) box.hidden = true; return; }
    if (!box) {
      box = document.createElement("div");
      box.className = "ucs-card ucs-logout-ask"; box.setAttribute("data-ref", "logoutAsk"); box.setAttribute("role", "alertdialog");
      els.calls.parentNode.insertBefore(box, els.calls);
    }
    box.hidden = false;
    setHTML(box, '<p class="ucs-logout-text">' + esc(t("logoutOnCall")) + '</p><div class="ucs-row">' +
      '<button type="button" class="ucs-btn ucs-red" data-act="logout-hangup">' + esc(t("logoutHangup")) + "</button>" +
      '<button type="button" class="ucs-btn ucs-ghost-dark" data-act="logout-stay">' + esc(t("logoutStay")) + "</button></div>");
  }
  function hangupAndLogout() {
    model.logoutAsk = false; render();
    var tries = 0;
    function next() {
      // Each reply comes after the events it caused: the bar knows its calls are gone.
      if (!calls().length || tries++ >= 3) return NS.logout();
      return act("call.hangup").then(next);
    }
    return next();
  }

  function tick() {
    if (!root) return;
    Array.prototype.forEach.call(root.querySelectorAll(".ucs-timer[data-since]"), function (el) {
      var since = Number(el.getAttribute("data-since"));
      if (since) el.textContent = hms(serverNow() - since);
    });
    tickFloor();  // the floor: wrap-up, recent calls, queue figures
    tickSuper();  // the supervisor: times in status, call times, longest waits
    var acw = root.querySelector("[data-ref-acw]");
    if (acw && model.acwUntil) acw.textContent = hms(model.acwUntil - serverNow());
    var inStatus = root.querySelector("[data-status-time]");
    if (inStatus) {
      inStatus.textContent = model.since ? hms(serverNow() - model.since) : "";
      inStatus.title = model.since ? t("statusTime", { time: hms(serverNow() - model.since) }) : "";
    }
  }

  // ---------------------------------------------------------------- the floor: wrap-up, recent calls, queue figures
  //
  // Wrap-up control (agent.extendWrapUp / agent.endWrapUp, a queue's required call reason),
  // the recent calls (history.list / history.seen, seed 002 v4.34's call history with
  // `debounceRequests`), and per-queue figures (agent.queueFigures). Kept together here;
  // the shared functions above call in at one clearly marked line each.

  var FLOOR_TEXTS = {
    en: {
      wrapupTitle: "Wrap-up", wrapupLeft: "{time} left", wrapupExtend: "+{n} s", wrapupExtendLabel: "+{n} s: extend wrap-up by {n} seconds",
      wrapupEnd: "End wrap-up", wrapupAtMax: "longest allowed", wrapupExtendAction: "Extend wrap-up", wrapupEndAction: "End wrap-up",
      reasonRequired: "a call reason is required before wrap-up ends", reasonRequiredNote: "A call reason is required for this call",
      wrapupHeld: "Wrap-up is over: save the call reason to go on", reasonPickFirst: "Save or skip the reason of the call before it first",
      moreReasons: "{n} more calls waiting for a reason", accountHint: "Arrows choose, Enter saves, Escape skips",
      recent: "Recent calls", recentMissed: "Recent calls, {n} missed", historyAction: "Recent calls",
      filterDirection: "Direction", filterResult: "Result", filterAll: "All", dirINCOMING: "Incoming", dirOUTGOING: "Outgoing",
      dirINTERNAL: "Internal", resanswered: "Answered", resmissed: "Missed", resunanswered: "Not answered", resother: "Taken by a colleague",
      searchCalls: "Search", searchPlaceholder: "Number or name", redial: "Call back", redialLabel: "Call back {number}",
      noCalls: "No calls", loadingCalls: "Loading…", closePanel: "Close",
      queueFigures: "Your queues", waitingN: "{n} waiting", longest: "longest {time}", nobodyWaiting: "nobody waiting",
    },
    cs: {
      wrapupTitle: "Dopracování", wrapupLeft: "zbývá {time}", wrapupExtend: "+{n} s", wrapupExtendLabel: "+{n} s: prodloužit dopracování o {n} sekund",
      wrapupEnd: "Ukončit dopracování", wrapupAtMax: "nejdéle povoleno", wrapupExtendAction: "Prodloužení dopracování", wrapupEndAction: "Ukončení dopracování",
      reasonRequired: "před koncem dopracování je potřeba uložit důvod hovoru", reasonRequiredNote: "U tohoto hovoru je důvod povinný",
      wrapupHeld: "Dopracování skončilo: pokračujte uložením důvodu hovoru", reasonPickFirst: "Nejprve uložte nebo přeskočte důvod předchozího hovoru",
      moreReasons: "Další hovory čekající na důvod: {n}", accountHint: "Šipky vybírají, Enter ukládá, Escape přeskočí",
      recent: "Poslední hovory", recentMissed: "Poslední hovory, zmeškané: {n}", historyAction: "Poslední hovory",
      filterDirection: "Směr", filterResult: "Výsledek", filterAll: "Vše", dirINCOMING: "Příchozí", dirOUTGOING: "Odchozí",
      dirINTERNAL: "Interní", resanswered: "Přijaté", resmissed: "Zmeškané", resunanswered: "Nepřijaté", resother: "Vzal kolega",
      searchCalls: "Hledat", searchPlaceholder: "Číslo nebo jméno", redial: "Zavolat zpět", redialLabel: "Zavolat zpět {number}",
      noCalls: "Žádné hovory", loadingCalls: "Načítám…", closePanel: "Zavřít",
      queueFigures: "Vaše fronty", waitingN: "čeká: {n}", longest: "nejdéle {time}", nobodyWaiting: "nikdo nečeká",
    },
  };
  Object.keys(FLOOR_TEXTS).forEach(function (l) { Object.keys(FLOOR_TEXTS[l]).forEach(function (k) { if (!I18N[l][k]) I18N[l][k] = FLOOR_TEXTS[l][k]; }); });
  ["extendWrapUp", "endWrapUp", "callHistory", "callHistorySeen", "queueFigures"].forEach(function (m) { ALLOWED[m] = ["READY"]; });
  ACTIONS["agent.extendWrapUp"] = ACTIONS.extendWrapUp = "wrapupExtendAction";
  ACTIONS["agent.endWrapUp"] = ACTIONS.endWrapUp = "wrapupEndAction";
  ACTIONS["history.list"] = ACTIONS.callHistory = "historyAction";

  model.wrapup = null;          // the wrap-up as UCS tells it (agent.status / agent.wrapup / state.user.wrapup)
  model.accountQueue = [];      // ended calls waiting for their reason behind the one in the picker
  model.ended = {};             // the last ended calls by uniqueid (the picker's title for a required reason)
  model.history = { open: false, calls: null, missed: 0, filters: { direction: "", result: "", text: "" }, seq: 0, loading: false };
  model.figures = null;         // {queues: [...]} from agent.queueFigures
  var historyTimer = null, figuresTimer = null;

  // -- wrap-up

  function setWrapup(w) {
    model.wrapup = w || null;
    if (w && w.until) model.acwUntil = w.until;
    if (w && w.reasonRequired && !w.reason && w.call) needReason(w.call);
    if (w && w.held) { model.alerts = model.alerts.filter(function (a) { return a.wrapup !== true; }); pushAlert(t("wrapupHeld"), w.message, true); }
  }
  function pushAlert(text, detail, wrapup) {
    var alert = { id: ++alertId, text: text, detail: detail || "", wrapup: !!wrapup };
    model.alerts.push(alert);
    if (model.alerts.length > 3) model.alerts.shift();
    var ms = Number(opt("messageTimeout"));
    if (ms > 0) setTimeout(function () { closeAlert(alert.id); }, ms);
  }
  // The call whose reason UCS requires is in the picker (first in line when another call's is shown).
  function needReason(uid) {
    if (opt("headless")) return;
    var c = model.ended[uid] || (model.accountFor && model.accountFor.uniqueid === uid ? model.accountFor : { uniqueid: uid });
    if (model.accountFor && model.accountFor.uniqueid === uid) return;
    if (!model.accountFor) { model.accountFor = c; model.accountCode = null; return; }
    model.accountQueue = [c].concat(model.accountQueue.filter(function (x) { return x.uniqueid !== uid; }));
  }
  function reasonRequiredFor(uid) {
    var w = model.wrapup;
    return !!(w && w.reasonRequired && !w.reason && w.call === uid && model.status === "ACW");
  }
  // After a call: its reason picker — never in place of one the agent is filling in.
  function offerAccount(c) {
    model.ended[c.uniqueid] = c;
    var keys = Object.keys(model.ended);
    if (keys.length > 20) delete model.ended[keys[0]];
    if (!(opt("autoOpenAccountCode") && c.connected && callReasons().length && !opt("headless"))) return;
    if (model.accountFor && model.accountFor.uniqueid !== c.uniqueid) {
      model.accountQueue = model.accountQueue.filter(function (x) { return x.uniqueid !== c.uniqueid; }).concat([c]);
      return;
    }
    if (!model.accountFor) { model.accountFor = c; model.accountCode = null; }
  }
  function nextAccount() {
    model.accountFor = model.accountQueue.shift() || null;
    model.accountCode = null;
  }
  function renderWrapup() {
    var w = model.wrapup;
    var show = model.appState === "READY" && model.status === "ACW" && !!w;
    els.wrapup.hidden = !show;
    if (!show) { setHTML(els.wrapup, ""); return; }
    var step = Math.round(w.step || 30);
    var html = '<div class="ucs-wrapup-row" role="group" aria-label="' + esc(t("wrapupTitle")) + '"><b>' + esc(t("wrapupTitle")) + "</b>" +
      (w.until ? ' <span class="ucs-wrapup-left" data-wrapup-left></span>' : "") +
      (w.reasonRequired && !w.reason ? ' <span class="ucs-chip ucs-required">' + esc(t("reasonRequiredNote")) + "</span>" : "") +
      '<span class="ucs-spacer"></span>' +
      (w.until ? '<button type="button" class="ucs-btn" data-act="wrapup-extend"' + (w.canExtend ? ' aria-label="' + esc(t("wrapupExtendLabel", { n: step })) + '"' : " disabled") + ">" +
        esc(w.canExtend ? t("wrapupExtend", { n: step }) : t("wrapupAtMax")) + "</button>" : "") +
      '<button type="button" class="ucs-btn ucs-primary" data-act="wrapup-end">' + esc(t("wrapupEnd")) + "</button></div>";
    setHTML(els.wrapup, html);
  }

  // -- recent calls

  function historyFilters() {
    var f = model.history.filters, out = { limit: 30 };
    if (f.direction) out.direction = f.direction;
    if (f.result) out.result = f.result;
    if (f.text) out.text = f.text;
    return out;
  }
  // Seed 002 v4.34: with debounceRequests a filter change waits 500 ms for another one.
  function historySoon() {
    clearTimeout(historyTimer);
    if (opt("debounceRequests")) historyTimer = setTimeout(loadHistory, 500);
    else loadHistory();
  }
  function loadHistory() {
    clearTimeout(historyTimer);
    var seq = ++model.history.seq;
    model.history.loading = true;
    return request("history.list", [historyFilters()]).then(function (r) {
      if (seq !== model.history.seq) return r;  // an older answer: a newer filter is on its way
      model.history.calls = r.calls; model.history.missed = r.missed; model.history.loading = false;
      if (model.history.open && r.missed) markSeen();
      render();
      return r;
    }, function (e) { model.history.loading = false; warn(e.message); showError("history.list", e); throw e; });
  }
  function markSeen() {
    model.history.missed = 0;
    request("history.seen").catch(function () {});
  }
  function renderHistoryButton() {
    var ready = model.appState === "READY", n = model.history.missed;
    setHTML(els.historyBtn, ready ? '<button type="button" class="ucs-btn ucs-icon-btn ucs-ghost ucs-history-btn" data-act="history" aria-haspopup="dialog" aria-expanded="' +
      (model.history.open ? "true" : "false") + '" aria-label="' + esc(n ? t("recentMissed", { n: n }) : t("recent")) + '" title="' + esc(t("recent")) + '">' + icon("inbound") +
      (n ? '<span class="ucs-missed-badge" data-missed>' + esc(n) + "</span>" : "") + "</button>" : "");
  }
  function when(ts) {
    if (!ts) return "";
    var d = new Date(ts * 1000), today = new Date();
    var time = d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
    return d.toDateString() === today.toDateString() ? time : d.toLocaleDateString(lang, { day: "numeric", month: "numeric" }) + " " + time;
  }
  function renderHistory() {
    var h = model.history, show = model.appState === "READY" && h.open;
    els.history.hidden = !show;
    if (!show) { setHTML(els.history, ""); return; }
    var sel = function (name, label, values, prefix) {
      return '<label><span>' + esc(label) + '</span><select name="' + name + '" data-history-filter>' +
        '<option value="">' + esc(t("filterAll")) + "</option>" + values.map(function (v) {
          return '<option value="' + v + '"' + (h.filters[name] === v ? " selected" : "") + ">" + esc(t(prefix + v)) + "</option>";
        }).join("") + "</select></label>";
    };
    var rows = h.calls === null ? '<p class="ucs-muted">' + esc(t("loadingCalls")) + "</p>" : !h.calls.length ? '<p class="ucs-muted">' + esc(t("noCalls")) + "</p>" :
      '<ul class="ucs-history-list">' + h.calls.map(function (c) {
        var who = c.name ? c.name + " · " + c.number : c.number;
        return '<li class="ucs-history-item' + (c.missed ? " ucs-missed" : "") + '" data-history-call="' + esc(c.uniqueid) + '" data-result="' + esc(c.result) + '">' +
          icon(c.direction === "OUTGOING" ? "outbound" : "inbound") +
          '<span class="ucs-history-who"><b>' + esc(who || t("unknownCaller")) + "</b><small>" + esc(when(c.created)) +
          (c.queue ? " · " + esc(c.queue) : "") + " · " + esc(t("dir" + c.direction)) + (c.duration ? " · " + esc(hms(c.duration)) : "") + "</small></span>" +
          '<span class="ucs-chip ucs-res-' + esc(c.result) + '">' + esc(t("res" + c.result)) + "</span>" +
          (c.number ? '<button type="button" class="ucs-btn ucs-green" data-act="redial" data-arg="' + esc(c.number) + '" aria-label="' + esc(t("redialLabel", { number: c.number })) + '">' +
            icon("phone") + "<span>" + esc(t("redial")) + "</span></button>" : "") + "</li>";
      }).join("") + "</ul>";
    setHTML(els.history, '<section class="ucs-history-panel" role="dialog" aria-label="' + esc(t("recent")) + '">' +
      '<form class="ucs-history-filters" data-form="history" autocomplete="off" role="search">' +
      sel("direction", t("filterDirection"), ["INCOMING", "OUTGOING", "INTERNAL"], "dir") +
      sel("result", t("filterResult"), ["answered", "missed"], "res") +
      '<label><span>' + esc(t("searchCalls")) + '</span><input name="text" type="search" data-history-filter value="' + esc(h.filters.text) + '" placeholder="' + esc(t("searchPlaceholder")) + '"></label>' +
      '<button type="button" class="ucs-x" data-act="history" aria-label="' + esc(t("closePanel")) + '">' + icon("close") + "</button></form>" + rows + "</section>");
  }
  function historyInput(e) {
    var f = e.target;
    if (!f.hasAttribute || !f.hasAttribute("data-history-filter")) return;
    model.history.filters[f.name] = f.name === "text" ? f.value.trim() : f.value;
    historySoon();
  }

  // -- per-queue figures

  function figuresSoon() {
    clearTimeout(figuresTimer);
    figuresTimer = setTimeout(loadFigures, 200);
  }
  function loadFigures() {
    if (model.appState !== "READY") return;
    request("agent.queueFigures").then(function (r) {
      r.at = Date.now() / 1000;  // the waits count on from the reply, whatever the clocks say
      model.figures = r; render();
    }, function (e) { debug("queue figures: " + e.message); });
  }
  function renderFigures() {
    var f = model.figures, show = model.appState === "READY" && !!f && f.queues.length > 0;
    els.figures.hidden = !show;
    if (!show) { setHTML(els.figures, ""); return; }
    setHTML(els.figures, '<span class="ucs-figures-title">' + esc(t("queueFigures")) + "</span>" + f.queues.map(function (q) {
      return '<span class="ucs-figure' + (q.waiting ? " ucs-hot" : "") + '" data-queue-figure="' + esc(q.queue_id) + '"><b>' + esc(q.name) + "</b> " +
        (q.waiting ? esc(t("waitingN", { n: q.waiting })) + ' · <span data-longest="' + esc(q.longestWait) + '"></span>' : esc(t("nobodyWaiting"))) + "</span>";
    }).join(""));
  }

  // -- the hooks the shared functions call

  function mountFloor() {
    root.addEventListener("input", historyInput);
    root.addEventListener("change", historyInput);
  }
  function renderFloor() {
    renderWrapup();
    renderHistoryButton();
    renderHistory();
    renderFigures();
    tickFloor();  // the new parts' timers at once, not at the next second
  }
  function tickFloor() {
    if (!root) return;
    var left = root.querySelector("[data-wrapup-left]");
    if (left && model.wrapup && model.wrapup.until) left.textContent = t("wrapupLeft", { time: hms(Math.max(0, model.wrapup.until - serverNow())) });
    var at = model.figures && model.figures.at;
    Array.prototype.forEach.call(root.querySelectorAll("[data-longest]"), function (el) {
      el.textContent = t("longest", { time: hms(Math.max(0, Number(el.getAttribute("data-longest")) + Date.now() / 1000 - at)) });
    });
  }
  function applyFloorState(s) {
    setWrapup(s.user && s.user.wrapup);
    figuresSoon();
    if (!model.history.calls || model.history.open) loadHistory().catch(function () {});
  }
  var FLOOR_EVENTS = {
    "agent.wrapup": function (data) { setWrapup(data.wrapup); render(); },
    "agent.missed": function (data) {
      model.history.missed = data.missed || 0;
      if (model.history.open) loadHistory().catch(function () {}); else render();
    },
  };
  // The actions of the new controls (onClick's default).
  function clickFloor(act, arg) {
    var quiet = function (p) { if (p && p.catch) p.catch(function () {}); };
    switch (act) {
      case "wrapup-extend": quiet(NS.extendWrapUp()); return true;
      case "wrapup-end": quiet(NS.endWrapUp()); return true;
      case "history":
        model.history.open = !model.history.open;
        if (model.history.open) { loadHistory().catch(function () {}); }
        render();
        if (model.history.open) { var first = els.history.querySelector("select"); if (first) first.focus(); } else els.historyBtn.querySelector("button").focus();
        return true;
      case "redial": quiet(NS.dial(arg)); return true;
    }
    return false;
  }
  // The reason picker by keyboard: arrows move between the reasons (the radios do it),
  // Enter saves, Escape skips (not a reason UCS requires: that one stays, saying so).
  function floorKeys(e) {
    var form = e.target.closest && e.target.closest("[data-form=account]");
    if (form && e.key === "Enter" && e.target.tagName !== "BUTTON") {
      e.preventDefault();
      if (form.querySelector("[name=code]:checked")) form.requestSubmit();
      return true;
    }
    if (form && e.key === "Escape") {
      e.preventDefault();
      if (model.accountFor && reasonRequiredFor(model.accountFor.uniqueid)) { pushAlert(t("reasonPickFirst"), t("reasonRequired")); render(); }
      else { nextAccount(); render(); }
      return true;
    }
    if (e.key === "Escape" && model.history.open && els.history.contains(e.target)) {
      model.history.open = false; render(); els.historyBtn.querySelector("button").focus(); e.preventDefault();
      return true;
    }
    return false;
  }

  var floorApi = {
    extendWrapUp: function () { return act("agent.extendWrapUp", []).then(function (me) { setWrapup(me.wrapup); render(); return me; }); },
    endWrapUp: function () { return act("agent.endWrapUp", []); },
    callHistory: function (filters) {
      if (filters) Object.keys(model.history.filters).forEach(function (k) { model.history.filters[k] = filters[k] || ""; });
      return loadHistory();
    },
    callHistorySeen: function () { markSeen(); render(); return Promise.resolve({ missed: 0 }); },
    queueFigures: function () { return request("agent.queueFigures"); },
  };
  Object.keys(floorApi).forEach(function (name) { NS[name] = guard(name, floorApi[name]); });

  // ---------------------------------------------------------------- the transfer
  // directory (colleagues and queues to consult or transfer to with one click), swap and
  // conference during a consultation, and the in-call keypad (DTMF). Kept together here;
  // the rest of the bar calls in at a few marked places (mount, render, callView, onClick).

  ALLOWED.swap = ALLOWED.conference = ALLOWED.dtmf = ALLOWED.directory = ["READY"];
  ACTIONS["call.swap"] = ACTIONS.swap = "swap";
  ACTIONS["call.conference"] = ACTIONS.conference = "conference";
  ACTIONS["call.dtmf"] = ACTIONS.dtmf = "sendKeys";
  ACTIONS["agents.directory"] = ACTIONS.directory = "directory";
  (function (texts) {
    Object.keys(texts).forEach(function (l) {
      Object.keys(texts[l]).forEach(function (k) { if (!(k in I18N[l])) I18N[l][k] = texts[l][k]; });
    });
  })({
    en: {
      swap: "Swap", conference: "Conference", sendKeys: "Sending keys", directory: "Directory",
      dtmfKeypad: "Keypad", dtmfGroup: "Keypad: keys are sent to the other party", dtmfKey: "Send {key}",
      dtmfSent: "Sent: {keys}", dirSearch: "Search colleagues and queues by name or number",
      dirSearchPlaceholder: "Name or number", dirColleagues: "Colleagues", dirQueues: "Queues",
      dirNone: "Nobody matches", dirOnCall: "On a call", dirConsult: "Consult {name} ({number})",
      dirBlind: "Transfer {name} ({number}) without consulting", dirQueue: "Queue",
      swappedText: "Talking to the caller — {number} is on hold", conferenceText: "Conference with {number}",
      swappedNow: "You talk to the caller; {number} is on hold", swappedBack: "You talk to {number}; the caller is on hold",
      conferenceNow: "The caller, you and {number} talk together",
    },
    cs: {
      swap: "Přepnout", conference: "Konference", sendKeys: "Odeslání tónů", directory: "Adresář",
      dtmfKeypad: "Klávesnice", dtmfGroup: "Klávesnice: tóny jdou druhé straně", dtmfKey: "Odeslat {key}",
      dtmfSent: "Odesláno: {keys}", dirSearch: "Hledat kolegy a fronty podle jména nebo čísla",
      dirSearchPlaceholder: "Jméno nebo číslo", dirColleagues: "Kolegové", dirQueues: "Fronty",
      dirNone: "Nikdo neodpovídá", dirOnCall: "Hovoří", dirConsult: "Konzultovat {name} ({number})",
      dirBlind: "Přepojit na {name} ({number}) bez konzultace", dirQueue: "Fronta",
      swappedText: "Hovoříte s volajícím — {number} čeká", conferenceText: "Konference s {number}",
      swappedNow: "Hovoříte s volajícím; {number} čeká", swappedBack: "Hovoříte s {number}; volající čeká",
      conferenceNow: "Volající, vy a {number} hovoříte spolu",
    },
  });

  var xfer = { dir: null, query: "", timer: null, swapped: {}, conference: {}, dtmfOpen: false, sent: "", buf: "", sending: false };
  var DTMF_KEYS = "123456789*0#".split("");

  NS.swap = guard("swap", function () {
    var c = needCall("swap", function (c) { return !!model.consult[c.uniqueid]; }, "there is no consultation (transfer in progress) to swap in");
    return act("call.swap").then(function (r) {
      xfer.swapped[c.uniqueid] = !xfer.swapped[c.uniqueid];
      announce(t(xfer.swapped[c.uniqueid] ? "swappedNow" : "swappedBack", { number: model.consult[c.uniqueid] }));
      render();
      return r;
    });
  });
  NS.conference = guard("conference", function () {
    var c = needCall("conference", function (c) { return !!model.consult[c.uniqueid]; }, "there is no consultation (transfer in progress) to join");
    return act("call.conference").then(function (r) {
      var number = model.consult[c.uniqueid];
      xfer.conference[c.uniqueid] = number;
      delete model.consult[c.uniqueid]; delete xfer.swapped[c.uniqueid];
      announce(t("conferenceNow", { number: number }));
      render();
      return r;
    });
  });
  NS.dtmf = guard("dtmf", function (digits) {
    digits = String(digits === undefined || digits === null ? "" : digits).replace(/\s+/g, "");
    if (!/^[0-9*#A-Da-d]{1,32}$/.test(digits)) throw new Error("dtmf: " + JSON.stringify(digits) + " is not accepted; give 1 to 32 keys: 0-9, *, # or A-D");
    needCall("dtmf", function (c) { return c.state === CALL.CONNECTED; }, "there is no connected call to send keys to");
    return softphoneDTMF(digits) || act("call.dtmf", [digits]);  // the softphone: in the call's RTP
  });
  // Not in seed 002: whom the agent can consult or transfer to ({agents, queues}).
  NS.directory = guard("directory", function () {
    return request("agents.directory").then(function (d) { xfer.dir = d; renderDirectory(); return d; });
  });

  function mountXfer() {
    els.transfer.insertAdjacentHTML("afterend",
      '<div class="ucs-dir" data-ref="dir" role="region" hidden>' +
      '<input type="search" class="ucs-dir-search" data-ref="dirSearch" autocomplete="off">' +
      '<div class="ucs-dir-list" data-ref="dirList"></div></div>' +
      '<div class="ucs-dtmf" data-ref="dtmf" id="ucs-dtmf" role="group" tabindex="-1" hidden>' +
      '<div class="ucs-dtmf-keys">' + DTMF_KEYS.map(function (k) { return '<button type="button" class="ucs-key" data-dtmf="' + k + '">' + k + "</button>"; }).join("") + "</div>" +
      '<output class="ucs-dtmf-sent" data-ref="dtmfSent" aria-live="polite"></output></div>');
    ["dir", "dirSearch", "dirList", "dtmf", "dtmfSent"].forEach(function (r) { els[r] = root.querySelector('[data-ref="' + r + '"]'); });
    els.dirSearch.addEventListener("input", function () { xfer.query = els.dirSearch.value; renderDirectory(); });
    els.dtmf.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (/^[0-9*#]$/.test(e.key)) { pressKey(e.key); e.preventDefault(); }
      else if (e.key === "Escape") { xfer.dtmfOpen = false; render(); var b = root.querySelector("[data-act=dtmf]"); if (b) b.focus(); e.preventDefault(); }
    });
  }

  // The call's buttons and note during a consultation or a conference, and the keypad's toggle.
  function xferButtons(c, btn) {
    var html = "";
    if (model.consult[c.uniqueid]) {
      html += btn("swap", "transfer", t("swap"), xfer.swapped[c.uniqueid] ? "ucs-on" : "");
      html += btn("conference", "user", t("conference"), "");
    }
    if (c.state === CALL.CONNECTED) {
      html += '<button type="button" class="ucs-btn' + (xfer.dtmfOpen ? " ucs-on" : "") + '" data-act="dtmf" aria-controls="ucs-dtmf" aria-expanded="' + (xfer.dtmfOpen ? "true" : "false") + '">' + icon("keypad") + "<span>" + esc(t("dtmfKeypad")) + "</span></button>";
    }
    return html;
  }
  function xferNote(c) {
    if (model.consult[c.uniqueid] && xfer.swapped[c.uniqueid]) return '<div class="ucs-consult ucs-swapped">' + icon("transfer") + esc(t("swappedText", { number: model.consult[c.uniqueid] })) + "</div>";
    if (xfer.conference[c.uniqueid] !== undefined) return '<div class="ucs-consult ucs-conference">' + icon("user") + esc(t("conferenceText", { number: xfer.conference[c.uniqueid] })) + "</div>";
    return "";
  }

  function xferClick(e) {
    var key = e.target.closest("[data-dtmf]");
    if (key) { pressKey(key.getAttribute("data-dtmf")); return true; }
    var el = e.target.closest("[data-act]");
    var act = el && el.getAttribute("data-act"), arg = el && el.getAttribute("data-arg");
    var quiet = function (p) { if (p && p.catch) p.catch(function () {}); };
    switch (act) {
      case "swap": quiet(NS.swap()); return true;
      case "conference": quiet(NS.conference()); return true;
      case "dtmf":
        xfer.dtmfOpen = !xfer.dtmfOpen; render();
        if (xfer.dtmfOpen) els.dtmf.focus();
        return true;
      case "dir-consult": quiet(NS.transfer(arg)); return true;
      case "dir-blind": quiet(NS.blindTransfer(arg)); return true;
    }
    return false;
  }

  function pressKey(k) {
    xfer.sent = (xfer.sent + k).slice(-24);
    els.dtmfSent.textContent = t("dtmfSent", { keys: xfer.sent });
    xfer.buf += k;
    flushKeys();
  }
  // One request at a time per line (UCS refuses a second one while the first runs):
  // the keys typed meanwhile go together in the next.
  function flushKeys() {
    if (xfer.sending || !xfer.buf) return;
    var digits = xfer.buf.slice(0, 32);
    xfer.buf = xfer.buf.slice(32);
    xfer.sending = true;
    var done = function () { xfer.sending = false; flushKeys(); };
    NS.dtmf(digits).then(done, function () { xfer.buf = ""; done(); });
  }

  function loadDirectory() {
    request("agents.directory").then(function (d) { xfer.dir = d; renderDirectory(); }, function (e) { warn(e.message); });
  }

  function renderXfer() {
    if (!els.dir) return;
    var primary = activeCall();
    Object.keys(xfer.swapped).concat(Object.keys(xfer.conference)).forEach(function (u) {
      if (!model.calls[u]) { delete xfer.swapped[u]; delete xfer.conference[u]; }
    });
    var showDir = model.appState === "READY" && !!primary && model.transferOpen && primary.state === CALL.CONNECTED;
    if (showDir && els.dir.hidden) {
      els.dir.hidden = false; xfer.query = ""; els.dirSearch.value = "";
      loadDirectory();
      if (!xfer.timer) xfer.timer = setInterval(loadDirectory, 5000);  // presence changes with calls too
    } else if (!showDir && !els.dir.hidden) {
      els.dir.hidden = true;
    }
    if (!showDir && xfer.timer) { clearInterval(xfer.timer); xfer.timer = null; }
    els.dir.setAttribute("aria-label", t("directory"));
    els.dirSearch.setAttribute("aria-label", t("dirSearch"));
    els.dirSearch.placeholder = t("dirSearchPlaceholder");
    var showPad = model.appState === "READY" && !!primary && primary.state === CALL.CONNECTED && xfer.dtmfOpen;
    if (!showPad && !(primary && primary.state === CALL.CONNECTED)) { xfer.dtmfOpen = false; xfer.sent = ""; els.dtmfSent.textContent = ""; }
    els.dtmf.hidden = !showPad;
    els.dtmf.setAttribute("aria-label", t("dtmfGroup"));
    Array.prototype.forEach.call(els.dtmf.querySelectorAll("[data-dtmf]"), function (b) { b.setAttribute("aria-label", t("dtmfKey", { key: b.getAttribute("data-dtmf") })); });
    if (showDir) renderDirectory();
  }

  function renderDirectory() {
    if (!els.dirList || els.dir.hidden) return;
    var d = xfer.dir || { agents: [], queues: [] }, q = xfer.query.trim().toLowerCase();
    var match = function (name, number) { return !q || String(name).toLowerCase().indexOf(q) >= 0 || String(number).indexOf(q) >= 0; };
    var row = function (name, number, presence, cls) {
      return '<li class="ucs-dir-row" data-number="' + esc(number) + '"><span class="ucs-dir-who"><b>' + esc(name) + '</b> <span class="ucs-dir-num">' + esc(number) + "</span></span>" +
        '<span class="ucs-chip ' + cls + '">' + esc(presence) + "</span>" +
        '<button type="button" class="ucs-btn ucs-primary" data-act="dir-consult" data-arg="' + esc(number) + '" aria-label="' + esc(t("dirConsult", { name: name, number: number })) + '">' + esc(t("consult")) + "</button>" +
        '<button type="button" class="ucs-btn" data-act="dir-blind" data-arg="' + esc(number) + '" aria-label="' + esc(t("dirBlind", { name: name, number: number })) + '">' + esc(t("blind")) + "</button></li>";
    };
    var agents = (d.agents || []).filter(function (a) { return a.number && match(a.displayname, a.number); }).map(function (a) {
      var presence = a.onCall ? t("dirOnCall") : statusLabel(a.status, a.reason);
      return row(a.displayname, a.number, presence, a.onCall ? "ucs-pres-call" : "ucs-pres-" + String(a.status).toLowerCase());
    });
    var queues = (d.queues || []).filter(function (x) { return match(x.name, x.number); }).map(function (x) {
      return row(x.name, x.number, t("dirQueue"), "ucs-pres-queue");
    });
    var html = (agents.length ? '<h3 class="ucs-dir-h">' + esc(t("dirColleagues")) + '</h3><ul class="ucs-dir-ul">' + agents.join("") + "</ul>" : "") +
      (queues.length ? '<h3 class="ucs-dir-h">' + esc(t("dirQueues")) + '</h3><ul class="ucs-dir-ul">' + queues.join("") + "</ul>" : "") +
      (agents.length || queues.length ? "" : '<p class="ucs-muted">' + esc(t("dirNone")) + "</p>");
    setHTML(els.dirList, html);
  }

  // ---------------------------------------------------------------- the supervisor
  //
  // Supervisor mode (issue 17): a supervisor chooses to work without a phone
  // (supervisor.start), to supervise with a phone (identifier, then supervisor.start: for
  // listening in) or to take calls; the Team panel (supervisor.team, kept live by team.agent
  // pushes: status, reason, time in status, the current call; filter, sortable columns; per-row
  // Ready / Not ready / Log out / Listen / Whisper / Barge) and the queue wallboard strip
  // (wallboard.subscribe, wallboard pushes). Kept together here; the rest of the bar calls in
  // at a few marked places (mount, render, tick, onClick, onSubmit, onKeyDown, onEvent,
  // applyState, startPairing, doProvision, identify, agent.logout, renderTop).

  ALLOWED.supervisorStart = ["IDENTIFY", "DEVICE"];
  ALLOWED.team = ALLOWED.setAgentStatus = ALLOWED.logoutAgent = ALLOWED.monitor = ALLOWED.wallboard = ["READY"];
  ACTIONS["supervisor.start"] = ACTIONS.supervisorStart = "supActionStart";
  ACTIONS["supervisor.team"] = ACTIONS.team = "supTeam";
  ACTIONS["agents.changeStatus"] = ACTIONS.setAgentStatus = "supActionStatus";
  ACTIONS["agents.logout"] = ACTIONS.logoutAgent = "supActionLogout";
  ACTIONS["supervisor.monitor"] = ACTIONS.monitor = "supActionMonitor";
  ACTIONS["wallboard.subscribe"] = ACTIONS.wallboard = "supBoard";
  (function (texts) {
    Object.keys(texts).forEach(function (l) {
      Object.keys(texts[l]).forEach(function (k) { if (!(k in I18N[l])) I18N[l][k] = texts[l][k]; });
    });
  })({
    en: {
      supChoose: "How do you want to work?", supNoPhone: "Supervise without a phone",
      supNoPhoneHint: "Team and queues; no calls, no listening in", supWithPhone: "Supervise with a phone",
      supWithPhoneHint: "Also listen, whisper and barge in on your phone", supAgent: "Take calls",
      supAgentHint: "Pair a phone and work as an agent in your queues", supervising: "Supervising",
      supTeam: "Team", supTeamCount: "{shown} of {all}", supFilter: "Filter the team", supFilterPlaceholder: "Name, status, number, queue",
      supColName: "Agent", supColStatus: "Status", supColTime: "In status", supColCall: "Call", supColDuration: "Call time", supColActions: "Actions",
      supSortBy: "Sort by {col}", supNobody: "Nobody matches", supEmpty: "Nobody in your queues and teams",
      supReady: "Ready", supNotReady: "Not ready", supLogout: "Log out", supListen: "Listen", supWhisper: "Whisper", supBarge: "Barge",
      supReadyLabel: "Set {name} ready", supNotReadyLabel: "Set {name} not ready", supLogoutLabel: "Log out {name}",
      supListenLabel: "Listen to the call of {name}", supWhisperLabel: "Whisper to {name}", supBargeLabel: "Barge into the call of {name}",
      supReasonFor: "Reason for {name}", supSet: "Set", supActionStart: "Supervising", supActionStatus: "Agent's status",
      supActionLogout: "Logging the agent out", supActionMonitor: "Monitoring", supBoard: "Queue wallboard",
      supIn: "Incoming", supOut: "Outgoing", supInternal: "Internal", supHeld: "on hold", supRinging: "ringing",
      supMonitored: "monitored", supDone: "{name}: {what}", supMonitorRinging: "Your phone rings: answer it to {mode} {name}",
      supBoardTitle: "Your queues", supWaiting: "Waiting", supLongest: "Longest", supReadyN: "Ready", supOnCall: "On call",
      supAcw: "ACW", supAux: "Not ready", supAnswered: "Answered", supAbandoned: "Abandoned", supSL: "Service level",
      supQueue: "Queue", supLoggedOut: "You were logged out ({reason}). Choose your phone to work again.",
      errNotYourTeam: "that agent is not in a queue or team you supervise", errNoCallToMonitor: "the agent has no call to monitor",
      errMonitorPhone: "monitoring rings your phone: log in again and choose Supervise with a phone",
    },
    cs: {
      supChoose: "Jak chcete pracovat?", supNoPhone: "Dohled bez telefonu",
      supNoPhoneHint: "Tým a fronty; bez hovorů a odposlechu", supWithPhone: "Dohled s telefonem",
      supWithPhoneHint: "Navíc odposlech, našeptávání a vstup do hovoru na vašem telefonu", supAgent: "Přijímat hovory",
      supAgentHint: "Spárovat telefon a pracovat jako operátor ve svých frontách", supervising: "Dohled",
      supTeam: "Tým", supTeamCount: "{shown} z {all}", supFilter: "Filtrovat tým", supFilterPlaceholder: "Jméno, stav, číslo, fronta",
      supColName: "Operátor", supColStatus: "Stav", supColTime: "Ve stavu", supColCall: "Hovor", supColDuration: "Délka hovoru", supColActions: "Akce",
      supSortBy: "Řadit podle: {col}", supNobody: "Nikdo neodpovídá", supEmpty: "Ve vašich frontách a týmech nikdo není",
      supReady: "Připraven", supNotReady: "Nepřipraven", supLogout: "Odhlásit", supListen: "Poslouchat", supWhisper: "Našeptávat", supBarge: "Vstoupit",
      supReadyLabel: "Připraven: {name}", supNotReadyLabel: "Nepřipraven: {name}", supLogoutLabel: "Odhlásit {name}",
      supListenLabel: "Poslouchat hovor {name}", supWhisperLabel: "Našeptávat {name}", supBargeLabel: "Vstoupit do hovoru {name}",
      supReasonFor: "Důvod pro {name}", supSet: "Nastavit", supActionStart: "Dohled", supActionStatus: "Stav operátora",
      supActionLogout: "Odhlášení operátora", supActionMonitor: "Odposlech", supBoard: "Přehled front",
      supIn: "Příchozí", supOut: "Odchozí", supInternal: "Interní", supHeld: "podržen", supRinging: "vyzvání",
      supMonitored: "odposloucháván", supDone: "{name}: {what}", supMonitorRinging: "Zvoní váš telefon: přijměte ho ({mode}, {name})",
      supBoardTitle: "Vaše fronty", supWaiting: "Čeká", supLongest: "Nejdéle", supReadyN: "Připraveno", supOnCall: "Hovoří",
      supAcw: "Dopracování", supAux: "Nepřipraveno", supAnswered: "Přijato", supAbandoned: "Zavěšeno", supSL: "Úroveň služby",
      supQueue: "Fronta", supLoggedOut: "Byli jste odhlášeni ({reason}). Pro další práci vyberte telefon.",
      errNotYourTeam: "tento operátor není ve frontě ani týmu, který řídíte", errNoCallToMonitor: "operátor nemá hovor k odposlechu",
      errMonitorPhone: "odposlech vyzvání váš telefon: přihlaste se znovu a zvolte Dohled s telefonem",
    },
  });

  var sup = {
    plan: null,        // the supervisor's choice at login: "none", "phone", "agent" (null: not chosen yet)
    rows: {},          // the team view by user id (supervisor.team, then team.agent pushes)
    loaded: false, filter: "", sort: { key: "name", dir: 1 }, reasonFor: null,
    board: null,       // the wallboard (wallboard.subscribe, then wallboard pushes)
  };
  var SUP_COLS = [["name", "supColName"], ["status", "supColStatus"], ["time", "supColTime"], ["call", "supColCall"], ["duration", "supColDuration"]];
  var SUP_ORDER = { READY: 0, ACW: 1, AUX: 2, OFFLINE: 3 };

  function isSupervisor(u) {
    u = u || model.user;
    if (!u) return false;
    if (u.superuser || u.supervisor) return true;
    var q = u.queues || {};
    return Object.keys(q).some(function (k) { return q[k] && q[k].supervisor; });
  }
  // Working as a supervisor only: READY and no agent (supervisor.start; after a reload, OFFLINE in READY).
  function supervising() { return model.appState === "READY" && isSupervisor() && model.status === "OFFLINE"; }
  function superChoice() { return model.appState === "IDENTIFY" && isSupervisor() && sup.plan === null && !model.pairAsked; }
  function superReset() { sup.plan = null; sup.rows = {}; sup.loaded = false; sup.board = null; sup.reasonFor = null; }

  function superStart() {
    model.busy = "pair"; render();
    return request("supervisor.start").then(function (state) {
      model.busy = "";
      applyState(state);
      setAppState("READY");
      fire("onReady", publicState());
      return publicState();
    }, function (e) { model.busy = ""; warn(e.message); showError("supervisor.start", e); render(); throw e; });
  }
  // doProvision's hook: a supervisor who chose to supervise with a phone starts supervising.
  function superProvision() { return model.user && isSupervisor() && sup.plan === "phone" ? superStart() : null; }

  function loadTeam() {
    return request("supervisor.team").then(function (rows) {
      sup.rows = {}; (rows || []).forEach(function (r) { sup.rows[r.id] = r; });
      sup.loaded = true; render(); return rows;
    }, function (e) { warn(e.message); showError("supervisor.team", e); throw e; });
  }
  function loadBoard() {
    return request("wallboard.subscribe").then(function (b) { sup.board = b; render(); return b; },
      function (e) { warn(e.message); showError("wallboard.subscribe", e); throw e; });
  }
  // applyState's hook: a supervisor's team and wallboard, asked again at each state (login,
  // reload, reconnect, resync); UCS keeps one subscription per session.
  function applySuperState() {
    if (!isSupervisor()) return;
    loadTeam().catch(function () {});
    loadBoard().catch(function () {});
  }
  var SUPER_EVENTS = {
    "team.agent": function (row) { if (row && row.id !== undefined) { sup.rows[row.id] = row; render(); } },
    "wallboard": function (b) { sup.board = b; render(); },
  };

  // agent.logout's hook: a supervisor (or UCS) logged this agent out. Where UCS sent the
  // session back to choosing a phone, so does the bar (state is refused outside READY).
  function superKicked(data) {
    if (model.appState !== "READY" || !data.reason || data.reason === "logout") return;
    request("state").then(function (s) { applyState(s); }, function (e) {
      if (e.code !== 412 || model.appState !== "READY") return;
      model.device = null; model.calls = {}; model.order = []; model.consult = {}; model.transferOpen = false;
      sup.plan = null;
      showMessage(t("supLoggedOut", { reason: data.reason }), "warning", "supervisorLogout", data);
      setAppState("IDENTIFY");
      askIdentifier();
    });
  }

  var superApi = {
    supervisorStart: function () { sup.plan = sup.plan || (model.device ? "phone" : "none"); return superStart(); },
    team: function () { return loadTeam(); },
    setAgentStatus: function (userId, status, reason) {
      status = String(status || "").toUpperCase();
      if (STATUSES.indexOf(status) < 0) throw new Error("setAgentStatus: " + JSON.stringify(status) + " is not a status; give OFFLINE, READY, AUX or ACW");
      var name = rowName(userId);
      return act("agents.changeStatus", reason ? [Number(userId), status, String(reason)] : [Number(userId), status],
        t("supDone", { name: name, what: statusLabel(status, reason) })).then(function (r) { announce(t("supDone", { name: name, what: statusLabel(status, reason) })); return r; });
    },
    logoutAgent: function (userId) {
      var name = rowName(userId);
      return act("agents.logout", [Number(userId)], t("supDone", { name: name, what: t("OFFLINE") })).then(function (r) { announce(t("supDone", { name: name, what: t("OFFLINE") })); return r; });
    },
    monitor: function (userId, mode) {
      mode = mode || "listen";
      if (["listen", "whisper", "barge"].indexOf(mode) < 0) throw new Error("monitor: give listen, whisper or barge");
      return act("supervisor.monitor", [Number(userId), mode]).then(function (r) {
        var text = t("supMonitorRinging", { mode: t("sup" + mode.charAt(0).toUpperCase() + mode.slice(1)).toLowerCase(), name: rowName(userId) });
        notifyInternal(text, "info", "READY", 8000, "monitor", true); announce(text);
        return r;
      });
    },
    wallboard: function () { return loadBoard(); },
  };
  Object.keys(superApi).forEach(function (name) { NS[name] = guard(name, superApi[name]); });

  function rowName(id) { var r = sup.rows[id]; return r ? r.displayname || r.username : "#" + id; }

  function mountSuper() {
    els.pair.insertAdjacentHTML("beforebegin", '<div class="ucs-card ucs-sup-choice" data-ref="supChoice" role="group" aria-labelledby="ucs-sup-choose" hidden></div>');
    els.figures.insertAdjacentHTML("beforebegin",
      '<section class="ucs-board" data-ref="board" aria-labelledby="ucs-board-title" hidden></section>' +
      '<section class="ucs-team" data-ref="team" aria-labelledby="ucs-team-title" hidden>' +
      '<div class="ucs-team-head"><h2 class="ucs-team-title" id="ucs-team-title"></h2><span class="ucs-muted" data-ref="teamCount" aria-live="polite"></span>' +
      '<span class="ucs-spacer"></span><label class="ucs-team-filter"><span class="ucs-sr" data-ref="teamFilterLabel"></span>' +
      '<input type="search" data-ref="teamFilter" autocomplete="off"></label></div>' +
      '<div class="ucs-team-body" data-ref="teamBody"></div></section>');
    ["supChoice", "board", "team", "teamCount", "teamFilter", "teamFilterLabel", "teamBody"].forEach(function (r) { els[r] = root.querySelector('[data-ref="' + r + '"]'); });
    els.teamFilter.addEventListener("input", function () { sup.filter = els.teamFilter.value; renderTeam(); });
  }

  function rowStatus(r) { return statusLabel(r.status, r.reason); }
  function rowCallText(c) {
    if (!c) return "";
    return [c.number || c.name || t("unknownCaller"), c.direction === "OUTGOING" ? t("supOut") : c.direction === "INTERNAL" ? t("supInternal") : t("supIn"), c.queue || ""].filter(Boolean).join(" ");
  }
  function teamRows() {
    var q = sup.filter.trim().toLowerCase();
    var list = Object.keys(sup.rows).map(function (k) { return sup.rows[k]; });
    var all = list.length;
    if (q) list = list.filter(function (r) {
      return [r.displayname, r.username, rowStatus(r), r.status, r.call ? rowCallText(r.call) : ""].join(" ").toLowerCase().indexOf(q) >= 0;
    });
    var now = serverNow(), key = sup.sort.key, dir = sup.sort.dir;
    var val = function (r) {
      switch (key) {
        case "status": return [SUP_ORDER[r.status] !== undefined ? SUP_ORDER[r.status] : 9, String(r.reason || "").toLowerCase()];
        case "time": return [r.since ? now - r.since : -1];
        case "call": return [r.call ? 0 : 1, r.call ? String(r.call.number) : ""];
        case "duration": return [r.call ? now - r.call.since : -1];
        default: return [String(r.displayname || r.username).toLowerCase()];
      }
    };
    list.sort(function (a, b) {
      var x = val(a), y = val(b);
      for (var i = 0; i < x.length; i++) { if (x[i] < y[i]) return -dir; if (x[i] > y[i]) return dir; }
      return String(a.displayname).localeCompare(String(b.displayname));
    });
    return { list: list, all: all };
  }

  function renderSuper() {
    if (!els.team) return;
    var choice = superChoice();
    els.supChoice.hidden = !choice;
    if (choice) els.pair.hidden = true;
    var opt3 = function (plan, label, hint) {
      return '<button type="button" class="ucs-phone ucs-sup-plan" data-act="sup-plan" data-arg="' + plan + '">' + icon(plan === "none" ? "people" : "phone") +
        "<span><b>" + esc(t(label)) + "</b><small>" + esc(t(hint)) + "</small></span></button>";
    };
    setHTML(els.supChoice, choice ? '<h2 id="ucs-sup-choose">' + esc(t("supChoose")) + "</h2>" + opt3("none", "supNoPhone", "supNoPhoneHint") +
      opt3("phone", "supWithPhone", "supWithPhoneHint") + opt3("agent", "supAgent", "supAgentHint") : "");
    var show = model.appState === "READY" && isSupervisor();
    els.team.hidden = !show; els.board.hidden = !show || !sup.board || !(sup.board.queues || []).length;
    if (!show) return;
    els.team.querySelector(".ucs-team-title").textContent = t("supTeam");
    els.teamFilterLabel.textContent = t("supFilter");
    els.teamFilter.placeholder = t("supFilterPlaceholder");
    renderTeam();
    renderBoard();
  }

  function renderTeam() {
    var got = teamRows(), list = got.list;
    els.teamCount.textContent = sup.loaded ? t("supTeamCount", { shown: list.length, all: got.all }) : t("loadingCalls");
    var reasons = (model.state && model.state.auxReasons) || [];
    var canSpy = !!model.device;
    var head = "<thead><tr>" + SUP_COLS.map(function (c) {
      var on = sup.sort.key === c[0];
      return '<th scope="col" aria-sort="' + (on ? (sup.sort.dir > 0 ? "ascending" : "descending") : "none") + '"><button type="button" class="ucs-sort" data-act="sup-sort" data-arg="' + c[0] + '" aria-label="' + esc(t("supSortBy", { col: t(c[1]) })) + '">' +
        esc(t(c[1])) + (on ? '<span aria-hidden="true">' + (sup.sort.dir > 0 ? " ▲" : " ▼") + "</span>" : "") + "</button></th>";
    }).join("") + '<th scope="col">' + esc(t("supColActions")) + "</th></tr></thead>";
    var body = list.map(function (r) {
      var name = r.displayname || r.username, c = r.call, id = esc(r.id);
      var b = function (act, label, aria, cls) { return '<button type="button" class="ucs-btn ucs-sm ' + (cls || "") + '" data-act="' + act + '" data-arg="' + id + '" aria-label="' + esc(t(aria, { name: name })) + '">' + esc(t(label)) + "</button>"; };
      var actions = "";
      if (r.logged_in) {
        if (r.status !== "READY") actions += b("sup-ready", "supReady", "supReadyLabel", "ucs-green");
        actions += b("sup-aux", "supNotReady", "supNotReadyLabel", sup.reasonFor === r.id ? "ucs-on" : "");
        actions += b("sup-logout", "supLogout", "supLogoutLabel", "ucs-ghost-dark");
        if (canSpy && c) actions += b("sup-listen", "supListen", "supListenLabel") + b("sup-whisper", "supWhisper", "supWhisperLabel") + b("sup-barge", "supBarge", "supBargeLabel");
      }
      if (r.logged_in && sup.reasonFor === r.id) {
        actions += '<form class="ucs-sup-aux" data-form="sup-aux" data-arg="' + id + '" autocomplete="off"><label><span class="ucs-sr">' + esc(t("supReasonFor", { name: name })) + "</span>" +
          (reasons.length ? '<select name="supReason">' + reasons.map(function (x) { return '<option value="' + esc(x.name) + '">' + esc(x.name) + "</option>"; }).join("") + "</select>"
            : '<input name="supReason" maxlength="64" placeholder="' + esc(t("auxReasonPlaceholder")) + '">') +
          '</label><button type="submit" class="ucs-btn ucs-sm ucs-primary">' + esc(t("supSet")) + '</button><button type="button" class="ucs-btn ucs-sm ucs-ghost-dark" data-act="sup-aux-cancel" data-arg="' + id + '">' + esc(t("cancel")) + "</button></form>";
      }
      var call = c ? '<span class="ucs-sup-call">' + icon(c.direction === "OUTGOING" ? "outbound" : "inbound") + esc(rowCallText(c)) +
        (c.held ? ' <span class="ucs-chip st-5">' + esc(t("supHeld")) + "</span>" : c.state === CALL.RINGING ? ' <span class="ucs-chip st-2">' + esc(t("supRinging")) + "</span>" : "") +
        ((r.monitored || []).length ? ' <span class="ucs-chip ucs-sup-mon">' + esc(t("supMonitored")) + "</span>" : "") + "</span>" : "";
      return '<tr data-agent-row="' + id + '" data-status="' + esc(r.status) + '"><th scope="row" class="ucs-sup-name">' + esc(name) + "</th>" +
        '<td><i class="ucs-dot s-' + esc(r.status) + '" aria-hidden="true"></i> <span data-agent-status>' + esc(rowStatus(r)) + "</span></td>" +
        '<td class="ucs-num" data-sup-since="' + esc(r.since || "") + '"></td><td data-agent-call>' + call + "</td>" +
        '<td class="ucs-num" data-sup-since="' + esc(c ? c.since : "") + '"></td><td class="ucs-sup-actions">' + actions + "</td></tr>";
    }).join("");
    var html = got.all ? '<table class="ucs-team-table"><caption class="ucs-sr">' + esc(t("supTeam")) + "</caption>" + head + "<tbody>" + body + "</tbody></table>" +
      (list.length ? "" : '<p class="ucs-muted">' + esc(t("supNobody")) + "</p>") : (sup.loaded ? '<p class="ucs-muted">' + esc(t("supEmpty")) + "</p>" : "");
    if (setHTML(els.teamBody, html)) tickSuper();
  }

  function renderBoard() {
    var b = sup.board;
    if (!b || !(b.queues || []).length) { setHTML(els.board, ""); return; }
    var cols = [["waiting", "supWaiting"], ["longest", "supLongest"], ["ready", "supReadyN"], ["on_call", "supOnCall"], ["acw", "supAcw"],
      ["not_ready", "supAux"], ["answered", "supAnswered"], ["abandoned", "supAbandoned"], ["service_level", "supSL"]];
    var html = '<h2 class="ucs-board-title" id="ucs-board-title">' + esc(t("supBoardTitle")) + '</h2><table class="ucs-board-table"><thead><tr><th scope="col">' + esc(t("supQueue")) + "</th>" +
      cols.map(function (c) { return '<th scope="col">' + esc(t(c[1])) + "</th>"; }).join("") + "</tr></thead><tbody>" +
      b.queues.map(function (q) {
        return '<tr data-board-queue="' + esc(q.asterisk_name) + '"' + (q.waiting ? ' class="ucs-hot"' : "") + '><th scope="row">' + esc(q.name) + "</th>" + cols.map(function (c) {
          if (c[0] === "longest") return '<td class="ucs-num" data-field="longest" data-sup-since="' + esc(q.waiting ? q.longest_since || "" : "") + '"></td>';
          var v = q[c[0]];
          if (c[0] === "service_level") v = v === null || v === undefined ? "—" : Math.round(v) + " %";
          return '<td class="ucs-num" data-field="' + c[0] + '">' + esc(v) + "</td>";
        }).join("") + "</tr>";
      }).join("") + "</tbody></table>";
    if (setHTML(els.board, html)) tickSuper();
  }

  function tickSuper() {
    if (!els.team || els.team.hidden) return;
    var now = serverNow();
    Array.prototype.forEach.call(root.querySelectorAll("[data-sup-since]"), function (el) {
      var since = Number(el.getAttribute("data-sup-since"));
      el.textContent = since ? hms(now - since) : "";
    });
  }

  function superClick(act, arg) {
    var quiet = function (p) { if (p && p.catch) p.catch(function () {}); };
    var id = Number(arg);
    switch (act) {
      case "sup-plan":
        sup.plan = arg;
        if (arg === "none") quiet(NS.supervisorStart());
        else { render(); quiet(startPairing()); }
        return true;
      case "sup-sort":
        if (sup.sort.key === arg) sup.sort.dir = -sup.sort.dir; else sup.sort = { key: arg, dir: 1 };
        renderTeam(); return true;
      case "sup-ready": quiet(NS.setAgentStatus(id, "READY")); return true;
      case "sup-aux":
        sup.reasonFor = sup.reasonFor === id ? null : id; renderTeam();
        var f = els.teamBody.querySelector("[name=supReason]"); if (f) f.focus();
        return true;
      case "sup-aux-cancel": sup.reasonFor = null; renderTeam(); focusRow(id, "sup-aux"); return true;
      case "sup-logout": quiet(NS.logoutAgent(id)); return true;
      case "sup-listen": quiet(NS.monitor(id, "listen")); return true;
      case "sup-whisper": quiet(NS.monitor(id, "whisper")); return true;
      case "sup-barge": quiet(NS.monitor(id, "barge")); return true;
    }
    return false;
  }
  function focusRow(id, act) { var b = els.teamBody.querySelector('[data-act="' + act + '"][data-arg="' + id + '"]'); if (b) b.focus(); }
  function superSubmit(f) {
    if (f.getAttribute("data-form") !== "sup-aux") return false;
    var id = Number(f.getAttribute("data-arg")), reason = f.querySelector("[name=supReason]").value.trim();
    if (!reason) { showError("agents.changeStatus", { error: "invalid_data", code: 400, message: "AUX needs a reason", fields: { reason: "" } }); return true; }
    sup.reasonFor = null; renderTeam(); focusRow(id, "sup-aux");
    NS.setAgentStatus(id, "AUX", reason).catch(function () {});
    return true;
  }
  function superKeys(e) {
    var form = e.target.closest && e.target.closest("[data-form=sup-aux]");
    if (form && e.key === "Escape") {
      var id = Number(form.getAttribute("data-arg"));
      sup.reasonFor = null; renderTeam(); focusRow(id, "sup-aux"); e.preventDefault();
      return true;
    }
    return false;
  }
  function superError(e) {
    if (e.error === "permission_denied" && /you supervise/.test(e.message || "")) return t("errNotYourTeam");
    if (/no call to monitor/.test(e.message || "")) return t("errNoCallToMonitor");
    if (/pair one first/.test(e.message || "")) return t("errMonitorPhone");
    return null;
  }

  // ---------------------------------------------------------------- the softphone (issue 18)
  //
  // When the agent's line is a WebRTC line (device.kind "webrtc") the bar itself is the
  // phone: it loads the vendored JsSIP (vendor/, only then), asks UCS for the line's SIP
  // account over this authenticated socket (softphone.credentials: only the agent paired
  // with the line gets it) and registers to the PJSIP endpoint over its WebSocket
  // (DTLS-SRTP). Where each action happens, and why (docs/agent-bar.md, "The softphone"):
  //  - answer, mute, DTMF and hanging up a plain call act on the browser's own session:
  //    they work the instant the agent clicks, and mute keeps the microphone's sound in
  //    the browser. Mute is also sent to UCS (call.mute), so that UCS's model, its events
  //    and the other bars see it as they do for a desk phone; hanging up is a BYE, which
  //    Asterisk reports exactly as a desk phone's hang-up.
  //  - hold, transfers, and hanging up during a consultation, a conference or a hold go
  //    through UCS/AMI as for a desk phone: UCS's hold (Redirect to music on hold, Bridge
  //    back) is what its model, events and CDRs are built on; a browser's re-INVITE hold
  //    would only silence the line and leave the caller without music.
  //  - dial: UCS originates to the line (the agent's leg rings the browser first) with a
  //    Call-Info answer-after=0 header; the softphone answers such a call itself, without
  //    ringing, because the agent placed it. Every other call rings (the chosen sound).
  //  - the microphone permission is asked when the WebRTC line is chosen (the agent has
  //    just clicked, and a prompt during a ringing call would lose the call); the phone
  //    registers only once it is allowed, so that no queue call rings a phone that cannot
  //    speak. A refusal is explained on the bar, with a Retry.
  //  - one phone per browser: a Web Lock per line lets one tab register; another tab of
  //    the same agent says where the phone is, and takes over when that tab goes.

  var JSSIP_FILE = "vendor/jssip-3.13.8.min.js";
  var MIC_KEY = "ucsOperatorMicrophone", SPEAKER_KEY = "ucsOperatorSpeaker";
  var phone = { line: null, ua: null, session: null, status: "off", audio: null, loading: null, gen: 0,
                muted: false, ring: null, ringKind: null, release: null, abort: null, problem: null, detail: "", tabs: null,
                audioLost: false, silentFor: 0, watch: null, autoAnswered: false, account: null,
                mic: stored(MIC_KEY), speaker: stored(SPEAKER_KEY) };
  function stored(key) { try { return localStorage.getItem(key) || ""; } catch (e) { return ""; } }
  function store(key, value) { try { if (value) localStorage.setItem(key, value); else localStorage.removeItem(key); } catch (e) { /* private mode */ } }

  ALLOWED.audioDevices = ALLOWED.selectMicrophone = ALLOWED.selectSpeaker = null;  // any state: chosen before login too
  (function (texts) {
    Object.keys(texts).forEach(function (l) {
      Object.keys(texts[l]).forEach(function (k) { if (!(k in I18N[l])) I18N[l][k] = texts[l][k]; });
    });
  })({
    en: {
      spTitle: "Softphone", sp_off: "off", sp_connecting: "connecting…", sp_registered: "ready for calls",
      sp_ringing: "ringing", sp_connected: "on a call", sp_failed: "not registered",
      sp_disconnected: "no connection to the phone system; reconnecting…", sp_unregistered: "not registered",
      sp_micDenied: "microphone blocked", sp_otherTab: "in another tab",
      micDenied: "The softphone cannot use your microphone: the browser blocked it. Allow the microphone for this page (the icon at the left of the address bar), then choose Retry.",
      micMissing: "The softphone found no microphone. Connect one (or choose another), then choose Retry.",
      micInsecure: "The softphone cannot use a microphone on this page: browsers allow it only on secure pages (https://). Ask the administrator to serve the CRM over HTTPS.",
      spRetry: "Retry", spOtherTab: "Your softphone works in another tab of this browser; calls ring there.",
      spRegFailed: "The softphone could not register: {why}.",
      noAudio: "No sound from the other side for {seconds} s: the network may be failing.",
      microphone: "Microphone", speaker: "Speaker", ringingSoundLabel: "Ringing sound", ringTest: "Test the ring",
      ringTestStop: "Stop the ring", deviceDefault: "Browser's default",
      sound_default: "Classic", sound_christmas: "Christmas", sound_lovingYou: "Loving you", sound_quest: "Quest", sound_rush: "Rush",
    },
    cs: {
      spTitle: "Softphone", sp_off: "vypnutý", sp_connecting: "připojuje se…", sp_registered: "připraven na hovory",
      sp_ringing: "vyzvání", sp_connected: "hovor", sp_failed: "nezaregistrován",
      sp_disconnected: "bez spojení s ústřednou; připojuje se znovu…", sp_unregistered: "nezaregistrován",
      sp_micDenied: "mikrofon zablokován", sp_otherTab: "v jiné záložce",
      micDenied: "Softphone nemůže použít váš mikrofon: prohlížeč ho zablokoval. Povolte mikrofon pro tuto stránku (ikona vlevo v adresním řádku) a zvolte Zkusit znovu.",
      micMissing: "Softphone nenašel žádný mikrofon. Připojte ho (nebo vyberte jiný) a zvolte Zkusit znovu.",
      micInsecure: "Softphone nemůže na této stránce použít mikrofon: prohlížeče ho povolují jen na zabezpečených stránkách (https://). Požádejte správce, aby CRM zpřístupnil přes HTTPS.",
      spRetry: "Zkusit znovu", spOtherTab: "Váš softphone běží v jiné záložce tohoto prohlížeče; hovory zvoní tam.",
      spRegFailed: "Softphone se nepodařilo zaregistrovat: {why}.",
      noAudio: "Už {seconds} s nepřichází zvuk od druhé strany: síť možná selhává.",
      microphone: "Mikrofon", speaker: "Reproduktor", ringingSoundLabel: "Vyzváněcí tón", ringTest: "Vyzkoušet vyzvánění",
      ringTestStop: "Zastavit vyzvánění", deviceDefault: "Výchozí v prohlížeči",
      sound_default: "Klasický", sound_christmas: "Vánoční", sound_lovingYou: "Loving you", sound_quest: "Quest", sound_rush: "Rush",
    },
  });

  function loadJsSIP() {
    if (window.JsSIP) return Promise.resolve(window.JsSIP);
    if (phone.loading) return phone.loading;
    var src = SCRIPT && SCRIPT.src;
    if (!src) return Promise.reject(new Error("the softphone needs the bar loaded from UCS (its script's URL)"));
    phone.loading = new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = src.replace(/operator(-v[\d.]+)?\.js(\?.*)?$/, JSSIP_FILE);
      s.async = true; s.setAttribute("data-ucs-jssip", "");
      s.onload = function () { window.JsSIP ? resolve(window.JsSIP) : reject(new Error("JsSIP did not load")); };
      s.onerror = function () { phone.loading = null; reject(new Error("cannot load " + s.src)); };
      document.head.appendChild(s);
    });
    return phone.loading;
  }

  function phoneStatus(status, detail) {
    if (phone.status === status && !detail) return;
    phone.status = status;
    debug("softphone " + status + (detail ? ": " + detail : ""));
    render();
    fire("onSoftphone", softphoneInfo());
  }

  function softphoneInfo() {
    var s = phone.session;
    return { status: phone.status, line: phone.line, problem: phone.problem, muted: phone.muted,
             audio: phone.audioLost ? "lost" : "ok", ringing: phone.ringKind,
             microphone: phone.mic, speaker: phone.speaker,
             call: s ? { direction: s.direction, state: s.isEstablished() ? "CONNECTED" : s.isEnded() ? "ENDED" : "RINGING",
                         remote: s.remote_identity && s.remote_identity.uri ? s.remote_identity.uri.user : "",
                         autoAnswered: phone.autoAnswered } : null };
  }

  // Start, keep or stop the softphone after the bar's state or phone changed. A lost
  // socket to UCS changes neither, so a call goes on while the bar reconnects.
  function softphoneSync(force) {
    var d = model.device;
    var want = model.appState === "READY" && d && d.kind === "webrtc" ? d.id : null;
    if (want === phone.line && !force) return;
    softphoneStop();
    if (want === null) return;
    phone.line = want;
    openTabs(want);
    var gen = ++phone.gen;
    var live = function () { return gen === phone.gen; };
    phoneStatus("connecting");
    oneTab(want, gen).then(function () {
      if (!live()) return null;
      phoneStatus("connecting");
      return askMicrophone().then(function () {
        if (!live()) return null;
        return loadJsSIP();
      }).then(function (JsSIP) {
        if (!live() || !JsSIP) return null;
        return request("softphone.credentials").then(function (acc) {
          if (!live()) return;
          phone.account = acc;
          startUA(JsSIP, acc);
        });
      });
    }).catch(function (e) {
      if (!live()) return;
      if (e.mic) {
        phone.problem = e.mic;
        phoneStatus("micDenied", e.message);
        fire("onMessage", { message: t(e.mic), type: "error", group: "softphone", data: { problem: e.mic } });
        return;
      }
      phone.problem = "registration"; phone.detail = e.message;
      phoneStatus("failed", e.message);
      warn("softphone: " + e.message);
    });
  }

  function startUA(JsSIP, acc) {
    var ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(acc.ws_url)], uri: acc.uri,
      authorization_user: acc.username, password: acc.password,
      display_name: model.user && model.user.displayname || undefined,
      register: true, session_timers: false, user_agent: "UCS agent bar " + VERSION,
      // JsSIP reconnects a dropped WebSocket by itself (then registers again): soon, then
      // at most every 30 s; the browser's "online" event makes it try at once.
      connection_recovery_min_interval: 2, connection_recovery_max_interval: 30,
    });
    phone.ua = ua;
    ua.on("registered", function () { if (phone.ua === ua) { phone.problem = null; phoneStatus(phone.session ? phone.status : "registered"); } });
    ua.on("unregistered", function () { if (phone.ua === ua) phoneStatus("unregistered"); });
    ua.on("registrationFailed", function (e) {
      if (phone.ua !== ua) return;
      phone.problem = "registration"; phone.detail = e.cause;
      phoneStatus("failed", e.cause);
      warn("softphone: registration failed (" + e.cause + ")");
    });
    ua.on("disconnected", function () { if (phone.ua === ua && !phone.session) phoneStatus("disconnected"); });
    ua.on("newRTCSession", function (e) { if (phone.ua === ua) phoneSession(e.session, e.originator, e.request); });
    ua.start();
  }

  function softphoneStop() {
    var ua = phone.ua;
    phone.gen++;
    phone.ua = null; phone.session = null; phone.line = null; phone.account = null; phone.problem = null;
    phone.muted = false; phone.autoAnswered = false;
    stopWatch();
    if (phone.ringKind === "call") stopRing();
    if (ua) { try { ua.stop(); } catch (e) { /* closing */ } }
    if (phone.abort) { try { phone.abort.abort(); } catch (e) { /* done */ } phone.abort = null; }
    if (phone.release) { phone.release(); phone.release = null; }
    if (phone.tabs) { try { phone.tabs.close(); } catch (e) { /* closed */ } phone.tabs = null; }
    if (phone.status !== "off") phoneStatus("off");
  }

  // The tabs of one line talk over a BroadcastChannel: Answer clicked in a tab whose phone
  // works in another tab is answered there (UCS cannot make a browser answer).
  var tabAsks = {}, tabAskId = 0;
  function openTabs(line) {
    if (!window.BroadcastChannel) return;
    var ch = phone.tabs = new BroadcastChannel("ucs-softphone-" + line);
    ch.onmessage = function (e) {
      var m = e.data || {};
      if (m.op === "answer" && phone.ua && phone.tabs === ch) {
        var done = softphoneAnswer();
        if (done) ch.postMessage({ re: m.id, ok: true });
      } else if (m.re && tabAsks[m.re]) {
        tabAsks[m.re](m);
      }
    };
  }
  function answerInOtherTab() {
    var ch = phone.tabs;
    if (!ch || phone.status !== "otherTab") return null;
    var id = (++tabAskId) + "-" + Math.random().toString(36).slice(2);
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { delete tabAsks[id]; reject(Object.assign(new Error("answer: the tab with your softphone did not answer; answer there"), { code: 412 })); }, 2000);
      tabAsks[id] = function () { clearTimeout(timer); delete tabAsks[id]; resolve({ answered: "softphone in another tab" }); };
      ch.postMessage({ op: "answer", id: id });
    });
  }

  // One registered phone per line in this browser: the tab that holds the line's Web
  // Lock registers; another waits for it (says so) and registers when that tab closes,
  // logs out or chooses another phone. (No Web Locks: every tab registers.)
  function oneTab(line, gen) {
    var locks = navigator.locks;
    if (!locks || !locks.request) return Promise.resolve();
    var name = "ucs-softphone-" + line;
    return new Promise(function (resolve, reject) {
      function hold() {
        if (gen !== phone.gen) return undefined;  // stopped meanwhile: let go at once
        resolve();
        return new Promise(function (release) { phone.release = release; });
      }
      locks.request(name, { ifAvailable: true }, function (lock) {
        if (lock) return hold();
        if (gen !== phone.gen) return undefined;
        phoneStatus("otherTab");
        phone.abort = window.AbortController ? new AbortController() : null;
        locks.request(name, phone.abort ? { signal: phone.abort.signal } : {}, hold).catch(function () { /* aborted */ });
        return undefined;
      }).catch(reject);
    });
  }

  // The constraints of the microphone: the one chosen, and seed 002's audioInputConstraints.
  function micConstraints(anyMic) {
    var c = {}, a = opt("audioInputConstraints") || {};
    ["echoCancellation", "noiseSuppression", "autoGainControl"].forEach(function (k) {
      if (typeof a[k] === "boolean") c[k] = a[k];
    });
    if (phone.mic && !anyMic) c.deviceId = { exact: phone.mic };
    return Object.keys(c).length ? c : true;
  }
  // The microphone for a call: the one chosen, else (unplugged since) the browser's default.
  function micStream() {
    var md = navigator.mediaDevices;
    return md.getUserMedia({ audio: micConstraints(), video: false }).catch(function (e) {
      if (!phone.mic || !e || (e.name !== "OverconstrainedError" && e.name !== "NotFoundError")) throw e;
      warn("softphone: the chosen microphone is not there; the browser's default is used");
      return md.getUserMedia({ audio: micConstraints(true), video: false });
    });
  }
  function micError(key, cause) {
    var e = new Error(t(key) + (cause ? " (" + cause + ")" : ""));
    e.mic = key;
    return e;
  }
  function askMicrophone() {
    var md = navigator.mediaDevices;
    if (!window.isSecureContext || !md || !md.getUserMedia) return Promise.reject(micError("micInsecure"));
    return micStream().then(function (stream) {
      stream.getTracks().forEach(function (tr) { tr.stop(); });
    }, function (e) {
      var name = e && e.name;
      throw micError(name === "NotFoundError" || name === "OverconstrainedError" || name === "NotReadableError" ? "micMissing" : "micDenied", name);
    });
  }
  // Allowed later in the browser's site settings: the softphone starts without a Retry.
  try {
    if (navigator.permissions && navigator.permissions.query) {
      navigator.permissions.query({ name: "microphone" }).then(function (p) {
        p.onchange = function () { if (p.state === "granted" && phone.status === "micDenied") softphoneSync(true); };
      }, function () { /* not queryable here */ });
    }
  } catch (e) { /* no Permissions API */ }

  // The network is back (a laptop woke up, Wi-Fi changed): reconnect and register at once.
  window.addEventListener("online", function () {
    var ua = phone.ua;
    if (!ua) return;
    debug("softphone: the network is back");
    if (ua.isConnected()) { ua.register(); return; }
    if (phone.session) return;  // JsSIP's own recovery; the call's media cannot survive a new address anyway
    var acc = phone.account;
    phone.ua = null;
    try { ua.stop(); } catch (e) { /* closing */ }
    if (acc && window.JsSIP) startUA(window.JsSIP, acc);
  });

  // A call from Asterisk to this phone. UCS's click-to-dial says "answer-after=0": the
  // agent placed it, so it is answered at once; any other call rings.
  function phoneSession(session, originator, req) {
    if (originator !== "remote") return;  // the bar dials through UCS, which rings this phone
    if (phone.session && !phone.session.isEnded()) { session.terminate({ status_code: 486 }); return; }
    phone.session = session; phone.muted = false; phone.audioLost = false;
    var info = req && req.getHeader ? req.getHeader("Call-Info") || "" : "";
    phone.autoAnswered = /answer-after=0/.test(info);
    var ended = function () {
      if (phone.session !== session) return;
      if (phone.ringKind === "call") stopRing();
      stopWatch();
      phone.session = null; phone.muted = false; phone.audioLost = false;
      phoneStatus(phone.ua ? (phone.ua.isRegistered() ? "registered" : "unregistered") : "off");
    };
    session.on("confirmed", function () { if (phone.ringKind === "call") stopRing(); phoneStatus("connected"); watchAudio(session); });
    session.on("accepted", function () { if (phone.ringKind === "call") stopRing(); });
    session.on("ended", ended);
    session.on("failed", ended);
    session.on("peerconnection", function (e) { phoneAudio(e.peerconnection); });
    if (session.connection) phoneAudio(session.connection);
    phoneStatus("ringing");
    if (phone.autoAnswered) { setTimeout(function () { if (phone.session === session && !session.isEnded()) answerHere(session); }, 0); return; }
    startRing("call");
  }

  function phoneAudio(pc) {
    if (!phone.audio) {
      phone.audio = document.createElement("audio");
      phone.audio.autoplay = true; phone.audio.setAttribute("data-ucs-softphone", "");
      phone.audio.style.display = "none";
      document.body.appendChild(phone.audio);
      applySpeaker();
    }
    pc.addEventListener("track", function (e) {
      phone.audio.srcObject = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
    });
  }
  function applySpeaker() {
    var id = phone.speaker || "";
    if (phone.audio && phone.audio.setSinkId) phone.audio.setSinkId(id).catch(function (e) { warn("softphone: speaker " + id + ": " + e.message); });
    if (phone.ring && phone.ring.ctx.setSinkId) phone.ring.ctx.setSinkId(id).catch(function () { /* the default plays */ });
  }

  function answerHere(session) {
    micStream().then(function (stream) {
      var stop = function () { stream.getTracks().forEach(function (tr) { tr.stop(); }); };
      if (session.isEnded()) { stop(); return; }
      session.on("ended", stop);
      session.on("failed", stop);
      session.answer({ mediaStream: stream });
    }, function (e) {
      warn("softphone: no microphone for the call: " + (e && e.message));
      if (!session.isEnded()) session.terminate({ status_code: 480 });
    });
  }

  // answer(): a call ringing in the softphone is answered here, in the browser.
  function softphoneAnswer() {
    var s = phone.session;
    if (!s || s.isEstablished() || s.isEnded()) return null;
    if (phone.ringKind === "call") stopRing();
    answerHere(s);
    return Promise.resolve({ answered: "softphone" });
  }

  // hangup(): the browser's BYE (or a 603 Decline while it rings) for a plain call; a call
  // in a consultation, a conference or on hold is UCS's to end (what hanging up means then).
  function softphoneHangup() {
    var s = phone.session;
    if (!s || s.isEnded()) return null;
    var list = calls();
    if (list.length > 1 || Object.keys(model.consult).length || Object.keys(xfer.conference).length) return null;
    if (list.length === 1 && list[0].state === CALL.HELD) return null;
    s.terminate(s.isEstablished() ? {} : { status_code: 603 });
    return Promise.resolve({ hungUp: "softphone" });
  }

  // mute(): the microphone's track off in the browser at once; the previous state, or null.
  function softphoneMute() {
    var s = phone.session;
    if (!s || !s.isEstablished()) return null;
    var was = phone.muted;
    setMuted(!was);
    return was;
  }
  function setMuted(on) {
    var s = phone.session;
    if (!s || !s.isEstablished() || phone.muted === on) return;
    if (on) s.mute({ audio: true }); else s.unmute({ audio: true });
    phone.muted = on;
    fire("onSoftphone", softphoneInfo());
  }
  // UCS's call.mute/call.unmute for this phone's side of the call: the track follows.
  function softphoneFollow(name, c) {
    if (!phone.session || !model.device || (name !== "call.mute" && name !== "call.unmute")) return;
    var mine = c.caller_line_id === model.device.id ? c.caller_muted : c.connected_line_id === model.device.id ? c.connected_muted : null;
    if (mine !== null && mine !== undefined) setMuted(!!mine);
  }

  // dtmf(): RFC 4733 telephone-events in the call's RTP (the WebRTC way), appended to any
  // keys still being played.
  function softphoneDTMF(digits) {
    var s = phone.session, pc = s && s.isEstablished() && s.connection;
    var sender = pc && pc.getSenders().filter(function (x) { return x.dtmf && x.track && x.track.kind === "audio"; })[0];
    if (!sender) return null;
    if (!sender.dtmf.canInsertDTMF) return null;
    sender.dtmf.insertDTMF(sender.dtmf.toneBuffer + digits.replace(/[^0-9*#A-D]/gi, "").toUpperCase(), 120, 70);
    return Promise.resolve({ sent: digits, via: "softphone" });
  }

  // RTP counters of the softphone's call (getStats): audio packets sent and received, and
  // the microphone's settings.
  function softphoneStats() {
    var s = phone.session, pc = s && s.connection;
    if (!pc) return Promise.resolve(null);
    var sender = pc.getSenders().filter(function (x) { return x.track && x.track.kind === "audio"; })[0];
    var mic = sender && sender.track.getSettings ? sender.track.getSettings() : {};
    return pc.getStats().then(function (report) {
      var out = { packetsSent: 0, packetsReceived: 0, bytesSent: 0, bytesReceived: 0, dtls: "",
                  // what the browser made of audioInputConstraints and the chosen microphone
                  microphone: { deviceId: mic.deviceId || "", echoCancellation: mic.echoCancellation,
                                noiseSuppression: mic.noiseSuppression, autoGainControl: mic.autoGainControl } };
      report.forEach(function (r) {
        if (r.type === "outbound-rtp" && r.kind === "audio") { out.packetsSent += r.packetsSent || 0; out.bytesSent += r.bytesSent || 0; }
        if (r.type === "inbound-rtp" && r.kind === "audio") { out.packetsReceived += r.packetsReceived || 0; out.bytesReceived += r.bytesReceived || 0; }
        if (r.type === "transport" && r.dtlsState) out.dtls = r.dtlsState;
      });
      return out;
    });
  }

  // Audio that stops: no RTP received for softphoneSilence seconds (default 5) of a call
  // that is not on hold (UCS's hold leaves the line silent on purpose) is shown on the
  // bar; it clears by itself when packets come again.
  function watchAudio(session) {
    stopWatch();
    var last = -1, still = 0, every = 1000;
    var limit = Math.max(1, Number(opt("softphoneSilence")) || DEFAULTS.softphoneSilence);
    phone.watch = setInterval(function () {
      if (phone.session !== session) { stopWatch(); return; }
      if (calls().some(function (c) { return c.state === CALL.HELD; })) { still = 0; return; }
      softphoneStats().then(function (st) {
        if (!st || phone.session !== session) return;
        if (st.packetsReceived > last) {
          last = st.packetsReceived; still = 0;
          if (phone.audioLost) { phone.audioLost = false; phoneStatus(phone.status, "audio back"); }
          return;
        }
        still += every / 1000;
        phone.silentFor = still;
        if (still >= limit && !phone.audioLost) {
          phone.audioLost = true;
          phoneStatus(phone.status, "no audio for " + still + " s");
          fire("onMessage", { message: t("noAudio", { seconds: still }), type: "warning", group: "softphone", data: { problem: "audio" } });
        }
      }, function () { /* the call ended meanwhile */ });
    }, every);
  }
  function stopWatch() { if (phone.watch) { clearInterval(phone.watch); phone.watch = null; } }

  // The ringing sound (seed 002's ringingSound): a tone pattern per sound, repeated every
  // 3 s from the chosen speaker while a call rings here, or while the ring test runs.
  var RING_TONES = { "default": [440, 480], christmas: [659, 784], lovingYou: [523, 659], quest: [392, 587], rush: [880, 988] };
  function startRing(kind) {
    stopRing();
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return;
    var ctx = new AC(), freqs = RING_TONES[model.ringingSound] || RING_TONES["default"];
    function burst() {
      for (var i = 0; i < 4; i++) {
        var o = ctx.createOscillator(), g = ctx.createGain();
        o.frequency.value = freqs[i % 2]; g.gain.value = 0.08;
        o.connect(g); g.connect(ctx.destination);
        o.start(ctx.currentTime + i * 0.5); o.stop(ctx.currentTime + i * 0.5 + 0.35);
      }
    }
    phone.ring = { ctx: ctx, timer: setInterval(burst, 3000), stopAt: kind === "test" ? setTimeout(function () { if (phone.ringKind === "test") stopRing(); }, 15000) : null };
    phone.ringKind = kind;
    if (phone.speaker && ctx.setSinkId) ctx.setSinkId(phone.speaker).catch(function () { /* the default plays */ });
    if (ctx.state === "suspended" && ctx.resume) ctx.resume().catch(function () {});
    burst();
    render();
    fire("onSoftphone", softphoneInfo());
  }
  function stopRing() {
    var r = phone.ring;
    if (!r) return;
    phone.ring = null; phone.ringKind = null;
    clearInterval(r.timer); clearTimeout(r.stopAt);
    try { r.ctx.close(); } catch (e) { /* closed */ }
    render();
    fire("onSoftphone", softphoneInfo());
  }
  // Seed 002's ring test: the chosen sound from the chosen speaker (softphone or not).
  function ringTest(on) {
    if (on) startRing("test");
    else if (phone.ringKind === "test") stopRing();
  }

  // The microphones and speakers to choose from (labels need the microphone permission).
  function audioDevices() {
    var md = navigator.mediaDevices;
    if (!md || !md.enumerateDevices) return Promise.reject(micError("micInsecure"));
    return md.enumerateDevices().then(function (list) {
      function of(kind) {
        return list.filter(function (d) { return d.kind === kind; }).map(function (d, i) {
          return { id: d.deviceId, label: d.label || (kind === "audioinput" ? t("microphone") : t("speaker")) + " " + (i + 1) };
        });
      }
      return { microphones: of("audioinput"), speakers: of("audiooutput"), microphone: phone.mic, speaker: phone.speaker,
               canChooseSpeaker: !!(window.HTMLMediaElement && HTMLMediaElement.prototype.setSinkId) };
    });
  }
  function chooseDevice(kind, id) {
    id = id === undefined || id === null ? "" : String(id);
    return audioDevices().then(function (d) {
      var list = kind === "mic" ? d.microphones : d.speakers;
      if (id && !list.some(function (x) { return x.id === id; })) {
        var e = new Error((kind === "mic" ? "selectMicrophone" : "selectSpeaker") + ": " + JSON.stringify(id) + " is not one of this browser's " +
          (kind === "mic" ? "microphones" : "speakers") + "; give an id from audioDevices() (or \"\" for the browser's default)");
        e.code = 400;
        throw e;
      }
      if (kind === "mic") {
        phone.mic = id; store(MIC_KEY, id);
        replaceMic();
      } else {
        phone.speaker = id; store(SPEAKER_KEY, id);
        applySpeaker();
      }
      render();
      fire("onSoftphone", softphoneInfo());
      return id;
    });
  }
  // A microphone chosen during a call: its track replaces the old one in the call.
  function replaceMic() {
    var s = phone.session, pc = s && s.isEstablished() && s.connection;
    if (!pc) return;
    micStream().then(function (stream) {
      var track = stream.getAudioTracks()[0];
      var sender = pc.getSenders().filter(function (x) { return x.track && x.track.kind === "audio"; })[0];
      if (!sender || !track) return;
      var old = sender.track;
      track.enabled = !phone.muted;
      var stop = function () { track.stop(); };  // the microphone is free once the call ends
      s.on("ended", stop); s.on("failed", stop);
      return sender.replaceTrack(track).then(function () { if (old) old.stop(); });
    }).catch(function (e) { warn("softphone: microphone: " + e.message); });
  }

  NS.softphone = function () { return softphoneInfo(); };
  NS.softphoneStats = function () { return softphoneStats(); };
  NS.audioDevices = guard("audioDevices", function () { return audioDevices(); });
  NS.selectMicrophone = guard("selectMicrophone", function (id) { return chooseDevice("mic", id); });
  NS.selectSpeaker = guard("selectSpeaker", function (id) { return chooseDevice("speaker", id); });

  // The softphone's card under the calls: its status, a problem and what to do, and the
  // microphone, speaker and ringing sound to choose (only on a WebRTC line).
  var spDevices = null;
  function renderSoftphone() {
    var box = root.querySelector("[data-ref=softphone]");
    var show = model.appState === "READY" && model.device && model.device.kind === "webrtc";
    if (!show) { if (box) box.hidden = true; spDevices = null; return; }
    if (!box) {
      box = document.createElement("div");
      box.className = "ucs-card ucs-softphone"; box.setAttribute("data-ref", "softphone");
      box.setAttribute("role", "region");
      els.calls.parentNode.insertBefore(box, els.calls.nextSibling);
      box.addEventListener("change", function (e) {
        var f = e.target;
        if (f.name === "sp-mic") NS.selectMicrophone(f.value).catch(function () {});
        if (f.name === "sp-speaker") NS.selectSpeaker(f.value).catch(function () {});
        if (f.name === "sp-sound") NS.selectRingingSound(f.value);
      });
      box.addEventListener("click", function (e) {
        var el = e.target.closest("[data-sp]");
        if (!el) return;
        var what = el.getAttribute("data-sp");
        if (what === "retry") softphoneSync(true);
        if (what === "ring-test") { if (phone.ringKind === "test") NS.stopRingingSoundTest(); else NS.testRingingSound(); }
      });
    }
    box.hidden = false;
    box.setAttribute("aria-label", t("spTitle"));
    if (!spDevices && phone.status !== "micDenied") {
      spDevices = { microphones: [], speakers: [] };
      audioDevices().then(function (d) { spDevices = d; render(); }, function () {});
    }
    var problem = phone.status === "micDenied" ? t(phone.problem || "micDenied") :
      phone.status === "otherTab" ? t("spOtherTab") :
      phone.problem === "registration" ? t("spRegFailed", { why: phone.detail || t("sp_failed") }) : "";
    var options = function (list, chosen) {
      return '<option value="">' + esc(t("deviceDefault")) + "</option>" + list.filter(function (d) { return d.id && d.id !== "default"; }).map(function (d) {
        return '<option value="' + esc(d.id) + '"' + (d.id === chosen ? " selected" : "") + ">" + esc(d.label) + "</option>";
      }).join("");
    };
    var html = '<div class="ucs-sp-head"><b>' + esc(t("spTitle")) + '</b> <span class="ucs-sp-status" data-sp-status="' + esc(phone.status) + '">' + esc(t("sp_" + phone.status)) + "</span></div>";
    if (problem) {
      html += '<div class="ucs-sp-problem" role="alert" data-sp-problem="' + esc(phone.problem || phone.status) + '">' + icon("warn") + "<span>" + esc(problem) + "</span>" +
        (phone.status === "micDenied" || phone.problem === "registration" ? '<button type="button" class="ucs-btn" data-sp="retry">' + esc(t("spRetry")) + "</button>" : "") + "</div>";
    }
    if (phone.audioLost) html += '<div class="ucs-sp-problem" role="alert" data-sp-problem="audio">' + icon("warn") + "<span>" + esc(t("noAudio", { seconds: phone.silentFor })) + "</span></div>";
    var d = spDevices || { microphones: [], speakers: [] };
    html += '<div class="ucs-sp-settings">' +
      '<label><span>' + esc(t("microphone")) + '</span><select name="sp-mic">' + options(d.microphones, phone.mic) + "</select></label>" +
      (d.canChooseSpeaker ? '<label><span>' + esc(t("speaker")) + '</span><select name="sp-speaker">' + options(d.speakers, phone.speaker) + "</select></label>" : "") +
      '<label><span>' + esc(t("ringingSoundLabel")) + '</span><select name="sp-sound">' + RINGING_SOUNDS.map(function (s) {
        return '<option value="' + s + '"' + (s === model.ringingSound ? " selected" : "") + ">" + esc(t("sound_" + s)) + "</option>";
      }).join("") + "</select></label>" +
      '<button type="button" class="ucs-btn" data-sp="ring-test" aria-pressed="' + (phone.ringKind === "test" ? "true" : "false") + '">' + esc(t(phone.ringKind === "test" ? "ringTestStop" : "ringTest")) + "</button></div>";
    setHTML(box, html);
  }
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", function () { spDevices = null; render(); });
  }

  // ---------------------------------------------------------------- start

  function onUnload() {
    if (model.autoLogoutOnUnload && model.user && ws && ws.readyState === 1) {
      try { ws.send(JSON.stringify({ id: ++nextId, method: "logout", args: [] })); } catch (e) { /* going away */ }
    }
  }

  function start() {
    mount();
    window.addEventListener("beforeunload", function (e) {
      if (opt("confirmUnload") && model.user) { e.preventDefault(); e.returnValue = ""; return ""; }
    });
    window.addEventListener("pagehide", onUnload);
    connect();
  }

  if (opt("legacyStartup") || document.readyState === "complete") start();
  else window.addEventListener("load", start);
})();

/* The demo CRM: set up window.ucsOperator before operator.js loads, log every callback,
 * and wire the buttons to window.ucsOperator.*.  Query parameters change the bar's
 * switches for a try: ?headless=1&confirmDevice=1&lang=cs&autologout=1 … — only the
 * switches in FROM_URL, as true/false, and a language the bar has: a link must not be
 * able to set any text the bar shows (or any other setting), whatever it contains. */
(function () {
  "use strict";
  var CALLBACKS = ["onError", "onWarning", "onInfo", "onDebug", "onMessage", "onConnect", "onCredentials",
    "onLoginError", "onUser", "onIdentify", "onIdentifier", "onDevice", "onReady", "onStateChange",
    "onCallNew", "onCallRinging", "onCallConnect", "onCallHold", "onCallResume", "onCallHangup",
    "onCallMute", "onCallUnmute", "onAgentSuspend", "onAgentResume", "onWaitingCallersChange", "onSoftphone"];
  var log = window.ucsDemoLog = [];
  var lastCall = null;

  var params = new URLSearchParams(location.search);
  var settings = {
    renderTo: "ucsOperator", headless: false, autologin: false, listDevices: true, confirmDevice: false,
    identifyIP: false, notifyWaitingCallers: true, showDialControl: true, autoOpenAccountCode: true, lang: "en",
  };
  var FROM_URL = ["headless", "autologin", "autologout", "listDevices", "confirmDevice", "identifyURL", "identifyIP",
    "identifyCookie", "notifyWaitingCallers", "showDialControl", "showBottomMenu", "autoOpenAccountCode",
    "withoutDevice", "confirmUnload", "disableIntegratedAutoLogout", "debounceRequests", "showDebug"];
  params.forEach(function (v, k) {
    if (FROM_URL.indexOf(k) >= 0 && /^(1|0|true|false)$/.test(v)) settings[k] = v === "1" || v === "true";
    else if (k === "lang" && /^(en|cs)$/.test(v)) settings.lang = v;
  });

  function show(name, args) {
    var entry = { name: name, args: args, time: Date.now() };
    log.push(entry);
    if (name === "onDebug" && !settings.showDebug) return;
    var list = document.getElementById("log");
    if (!list) return;
    var li = document.createElement("li");
    li.className = "cb cb-" + name;
    var text = args.map(function (a) { return typeof a === "string" ? a : JSON.stringify(a); }).join(", ");
    li.innerHTML = '<span class="t"></span><b></b> <code></code>';
    li.querySelector(".t").textContent = new Date(entry.time).toLocaleTimeString();
    li.querySelector("b").textContent = name;
    li.querySelector("code").textContent = text.length > 400 ? text.slice(0, 400) + "…" : text;
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 300) list.removeChild(list.lastChild);
  }

  var op = window.ucsOperator = settings;
  CALLBACKS.forEach(function (name) {
    op[name] = function () {
      var args = Array.prototype.slice.call(arguments);
      show(name, args);
      if (/^onCall/.test(name)) { lastCall = args[0]; customer(args[0], name); }
      if (name === "onCredentials" && params.get("ssoOnCredentials")) sso();
    };
  });

  function customer(call, name) {
    var box = document.getElementById("customer");
    if (!box || !call) return;
    if (name === "onCallHangup") { box.hidden = true; return; }
    var number = call.direction === "OUTGOING" ? call.called_number : call.caller_number;
    box.hidden = false;
    box.innerHTML = "<h3>Customer card</h3><dl><dt>Name</dt><dd></dd><dt>Number</dt><dd></dd><dt>Queue</dt><dd></dd><dt>Call</dt><dd></dd></dl>";
    var dd = box.querySelectorAll("dd");
    dd[0].textContent = (call.direction === "OUTGOING" ? call.called_name : call.caller_name) || "—";
    dd[1].textContent = number || "—";
    dd[2].textContent = call.queue || "—";
    dd[3].textContent = call.uniqueid;
  }

  function val(id) { return document.getElementById(id).value; }

  // seed 002: token = base64(sha1(secret + username + timestamp) + username + timestamp)
  function ssoToken(secret, username) {
    var ts = String(Math.floor(Date.now() / 1000));
    var enc = new TextEncoder();
    return crypto.subtle.digest("SHA-1", enc.encode(secret + username + ts)).then(function (digest) {
      var bytes = new Uint8Array(digest), tail = enc.encode(username + ts), all = new Uint8Array(bytes.length + tail.length);
      all.set(bytes); all.set(tail, bytes.length);
      var bin = ""; all.forEach(function (b) { bin += String.fromCharCode(b); });
      return btoa(bin);
    });
  }
  window.ucsDemoSsoToken = ssoToken;

  function sso() {
    var user = params.get("ssoUser") || val("u");
    return ssoToken(val("secret"), user).then(function (token) { return op.sso(user, token, "Acme CRM"); });
  }

  var ACTIONS = {
    login: function () { return op.login(val("u"), val("p"), document.getElementById("remember").checked); },
    sso: sso,
    logout: function () { return op.logout(); },
    selectIdentifier: function () { return op.selectIdentifier(val("ident")); },
    provision: function () { return op.provision(); },
    identify: function () { return op.identify(); },
    ready: function () { return op.changeStatus("READY"); },
    lunch: function () { return op.changeStatus("AUX", "Lunch"); },
    "break": function () { return op.changeStatus("AUX", "Break"); },
    offline: function () { return op.changeStatus("OFFLINE"); },
    suspend: function () { return op.suspend(1); },
    resume: function () { return op.resume(1); },
    state: function () { return op.state().then(function (s) { show("state()", [s]); }); },
    dial: function () { return op.dial(val("num")); },
    transfer: function () { return op.transfer(val("num")); },
    transferMode: function () { return op.transfer(); },
    blindTransfer: function () { return op.blindTransfer(val("num")); },
    answer: function () { return op.answer(); },
    hangup: function () { return op.hangup(); },
    tribute: function () { return op.tribute(); },
    unhold: function () { return op.unhold(); },
    mute: function () { return op.mute(); },
    finishTransfer: function () { return op.finishTransfer(); },
    setAccountCode: function () { return op.setAccountCode(lastCall && lastCall.uniqueid, val("code"), val("sub"), true); },
    notify: function () { return op.notify(val("note"), "success", true, 10); },
  };

  document.addEventListener("click", function (e) {
    var b = e.target.closest("[data-call]");
    if (b) {
      var r = ACTIONS[b.getAttribute("data-call")]();
      if (r && r.catch) r.catch(function () { /* onWarning already told */ });
    }
    if (e.target.id === "clear") { document.getElementById("log").innerHTML = ""; }
  });
})();

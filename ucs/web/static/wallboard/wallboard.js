/* The queue wallboard: read-only, live.  Opens the agent bar's WebSocket, logs in
   (a supervisor) or gives the wallboard token (?token=…), calls wallboard.subscribe
   and redraws on each "wallboard" push.  Longest waits tick every second from the
   server's timestamps (corrected for the clock difference). */
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var token = params.get("token");
  var ws = null, nextId = 0, pending = {}, board = null, skew = 0, retry = 1000;
  var $ = function (id) { return document.getElementById(id); };

  function say(text) { $("status").textContent = text; }

  function call(method, args) {
    return new Promise(function (resolve, reject) {
      var id = ++nextId;
      pending[id] = { resolve: resolve, reject: reject };
      ws.send(JSON.stringify({ id: id, method: method, args: args || [] }));
    });
  }

  function clock(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function cell(tr, text, cls) {
    var td = document.createElement(tr.children.length ? "td" : "th");
    if (!tr.children.length) td.scope = "row";
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function draw() {
    if (!board) return;
    var now = Date.now() / 1000 - skew;
    var body = $("rows");
    var rows = [];
    board.queues.forEach(function (q) {
      var tr = document.createElement("tr");
      tr.dataset.queue = q.asterisk_name;
      var longest = q.longest_since ? now - q.longest_since : 0;
      cell(tr, q.name);
      cell(tr, String(q.waiting), q.waiting ? "alert" : "").dataset.field = "waiting";
      cell(tr, q.waiting ? clock(longest) : "–").dataset.field = "longest_wait";
      cell(tr, String(q.ready)).dataset.field = "ready";
      cell(tr, String(q.on_call)).dataset.field = "on_call";
      cell(tr, String(q.acw)).dataset.field = "acw";
      cell(tr, String(q.not_ready)).dataset.field = "not_ready";
      cell(tr, String(q.answered)).dataset.field = "answered";
      cell(tr, String(q.abandoned)).dataset.field = "abandoned";
      cell(tr, q.service_level === null ? "–" : q.service_level + " %").dataset.field = "service_level";
      cell(tr, clock(q.average_handle)).dataset.field = "average_handle";
      cell(tr, clock(q.average_wait)).dataset.field = "average_wait";
      rows.push(tr);
    });
    body.replaceChildren.apply(body, rows);
    $("board").hidden = false;
  }

  function show(data) {
    board = data;
    skew = Date.now() / 1000 - data.now;
    draw();
    say("Live · " + data.day + " · service level within " + (data.queues[0] ? data.queues[0].service_level_seconds : "") + " s");
  }

  function subscribe() {
    return call("wallboard.subscribe", token ? [token] : []).then(show);
  }

  function askLogin() {
    say("Log in as a supervisor to see the wallboard.");
    $("login").hidden = false;
  }

  $("login").addEventListener("submit", function (e) {
    e.preventDefault();
    call("login", [$("username").value, $("password").value]).then(function () {
      $("login").hidden = true;
      $("password").value = "";
      return subscribe();
    }).catch(function (err) { say(err.message || "The login failed."); });
  });

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    ws = new WebSocket(url);
    ws.onmessage = function (m) {
      var msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      if (msg.event === "hello") {
        retry = 1000;
        if (token) subscribe().catch(function (err) { say(err.message); });
        else askLogin();
      } else if (msg.event === "wallboard") {
        show(msg.data);
      } else if (msg.id !== undefined && pending[msg.id]) {
        var p = pending[msg.id];
        delete pending[msg.id];
        if (msg.error) p.reject(msg.error); else p.resolve(msg.result);
      }
    };
    ws.onclose = function () {
      say("Connection lost; reconnecting…");
      pending = {};
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  setInterval(draw, 1000);
  connect();
})();

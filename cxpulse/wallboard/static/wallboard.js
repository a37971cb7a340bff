/* cxpulse wallboard page: one tile per (queue, channel) plus a totals tile, fed by Server-Sent Events.
 *
 * URL: /?queues=billing,tech-support&window=15m   (default: every queue, window 15m)
 * Data: GET /api/config (targets, stale_after_seconds), GET /events (event "kpis": {age_seconds, document};
 * event "breach": {queue, channel, threshold_seconds, breached_at}). EventSource reconnects by itself; when
 * the browser gives up (readyState CLOSED) we open a new one.
 * Formatting mirrors cxpulse/wallboard/format.py exactly (the browser test compares both).
 */
(function () {
  "use strict";

  var NULL = "\u2013";
  var WARN_POINTS = 10;
  var EPS = 1e-9;
  var BREACH_SHOW_MS = 15000;

  // ---------------------------------------------------------------------------------------- formatting
  function halfUp(x) { return Math.floor(x + 0.5); }
  function isNull(v) { return v === null || v === undefined; }
  function pad2(n) { return (n < 10 ? "0" : "") + n; }

  var format = {
    count: function (v) { return isNull(v) ? NULL : String(Math.trunc(v)); },
    percent: function (r) { return isNull(r) ? NULL : halfUp(r * 100) + "%"; },
    percent1: function (r) {
      if (isNull(r)) return NULL;
      var t = halfUp(r * 1000);
      var sign = t < 0 ? "-" : "";
      t = Math.abs(t);
      return sign + Math.floor(t / 10) + "." + (t % 10) + "%";
    },
    score: function (v) { return isNull(v) ? NULL : halfUp(v) + "%"; },
    nps: function (v) {
      if (isNull(v)) return NULL;
      var n = halfUp(v);
      return n > 0 ? "+" + n : String(n === 0 ? 0 : n);
    },
    duration: function (s) {
      if (isNull(s)) return NULL;
      var total = Math.max(0, halfUp(s));
      var h = Math.floor(total / 3600), rest = total % 3600;
      var m = Math.floor(rest / 60), sec = rest % 60;
      return h ? h + ":" + pad2(m) + ":" + pad2(sec) : pad2(m) + ":" + pad2(sec);
    },
    threshold: function (s) {
      if (isNull(s)) return NULL;
      var v = halfUp(s);
      if (v < 120 || v % 60) return v + "s";
      if (v % 3600) return Math.floor(v / 60) + "m";
      return Math.floor(v / 3600) + "h";
    },
    slState: function (sl, target) {
      if (isNull(sl) || isNull(target)) return "none";
      if (sl >= target - EPS) return "good";
      if (sl * 100 >= target * 100 - WARN_POINTS - EPS) return "warn";
      return "bad";
    }
  };

  // field -> [source ("live" | "window"), document key, formatter, caption]
  var FIELDS = {
    waiting: ["live", "waiting", format.count, "Waiting"],
    longest_wait: ["live", "longest_wait_seconds", format.duration, "Longest"],
    service_level: ["window", "service_level", format.percent, "Service level"],
    asa: ["window", "asa_seconds", format.duration, "ASA"],
    abandon_rate: ["window", "abandon_rate", format.percent1, "Abandon"],
    nps: ["window", "nps", format.nps, "NPS"],
    csat: ["window", "csat", format.score, "CSAT"],
    fcr: ["window", "fcr", format.percent, "FCR"]
  };
  var SMALL = ["asa", "abandon_rate", "nps", "csat", "fcr"];

  // ---------------------------------------------------------------------------------------- state
  var params = new URLSearchParams(window.location.search);
  var windowName = params.get("window") || "15m";
  var queueFilter = (params.get("queues") || "").split(",").map(function (s) { return s.trim(); })
    .filter(function (s) { return s.length > 0; });

  var config = { stale_after_seconds: 5, channels: {}, queues: [] };
  var targets = {};  // "queue\u001fchannel" -> {sl_target, sl_threshold_seconds}
  var lastUpdateMs = 0;
  var lastDoc = null;
  var tiles = {};  // key -> {el, values: {field: element}}
  var tileOrder = "";
  var source = null;
  var breachHideAt = 0;
  var breachCount = 0;

  var $ = function (id) { return document.getElementById(id); };

  // ---------------------------------------------------------------------------------------- config
  function applyConfig(c) {
    config = c;
    targets = {};
    (c.queues || []).forEach(function (q) { targets[q.queue + "\u001f" + q.channel] = q; });
  }

  function loadConfig() {
    return fetch("/api/config", { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("config " + r.status); return r.json(); })
      .then(applyConfig)
      .catch(function () { /* channel defaults of the page; the next page load asks again */ });
  }

  // the queue's override over its channel's default, as KpiSettings.for_queue (settings do not change while
  // the wallboard runs, so a queue that appears later needs no new request)
  function targetOf(queue, channel) {
    var found = targets[queue + "\u001f" + channel];
    if (found) return found;
    var base = (config.channels || {})[channel];
    var over = (config.overrides || {})[queue] || {};
    if (!base) return null;
    return {
      sl_target: isNull(over.sl_target) ? base.sl_target : over.sl_target,
      sl_threshold_seconds: isNull(over.sl_threshold_seconds) ? base.sl_threshold_seconds : over.sl_threshold_seconds
    };
  }

  // ---------------------------------------------------------------------------------------- tiles
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function testIdBase(queue, channel) {
    return queue === null ? "totals" : "tile-" + queue + "-" + channel;
  }

  function stat(cls, field, base, values) {
    var box = el("div", "stat " + cls);
    var value = el("div", "value " + field, NULL);
    value.dataset.testid = base + "-" + field;
    values[field] = value;
    box.appendChild(value);
    box.appendChild(el("div", "caption", FIELDS[field][3]));
    return box;
  }

  function makeTile(queue, channel) {
    var base = testIdBase(queue, channel);
    var values = {};
    var tile = el("section", "tile" + (queue === null ? " totals" : ""));
    tile.dataset.testid = base;
    var head = el("div", "tile-head");
    head.appendChild(el("div", "tile-name", queue === null ? "All queues" : queue));
    head.appendChild(el("div", "tile-channel", queue === null ? "total" : channel));
    tile.appendChild(head);

    var main = el("div", "tile-main");
    var big = el("div", "big");
    var sl = el("div", "value service_level", NULL);
    sl.dataset.testid = base + "-service_level";
    values.service_level = sl;
    big.appendChild(sl);
    var caption = el("div", "caption", "Service level");
    values._slCaption = caption;
    big.appendChild(caption);
    main.appendChild(big);
    var live = el("div", "live");
    live.appendChild(stat("waiting", "waiting", base, values));
    live.appendChild(stat("longest", "longest_wait", base, values));
    main.appendChild(live);
    tile.appendChild(main);

    var small = el("div", "tile-small");
    SMALL.forEach(function (f) { small.appendChild(stat("small", f, base, values)); });
    tile.appendChild(small);
    return { el: tile, values: values, queue: queue, channel: channel };
  }

  function fillTile(tile, entry) {
    var win = (entry.windows || {})[windowName] || {};
    var live = entry.live || {};
    Object.keys(FIELDS).forEach(function (f) {
      var spec = FIELDS[f];
      var src = spec[0] === "live" ? live : win;
      var text = spec[2](src[spec[1]]);
      var node = tile.values[f];
      if (node.textContent !== text) node.textContent = text;
    });
    tile.values.waiting.classList.toggle("busy", (live.waiting || 0) > 0);
    var state = "none";
    if (tile.queue !== null) {
      var t = targetOf(tile.queue, tile.channel);
      state = format.slState(win.service_level, t ? t.sl_target : null);
      tile.values._slCaption.textContent = t
        ? "target " + format.percent(t.sl_target) + " in " + format.threshold(t.sl_threshold_seconds)
        : "Service level";
    } else {
      tile.values._slCaption.textContent = format.count(win.offered) + " offered";
    }
    var slNode = tile.values.service_level;
    slNode.dataset.state = state;
    slNode.className = "value service_level state-" + state;
    tile.el.classList.remove("state-good", "state-warn", "state-bad", "state-none");
    tile.el.classList.add("state-" + state);
  }

  function layout() {
    var board = $("board");
    var n = board.children.length;
    if (!n) return;
    var w = board.clientWidth, h = board.clientHeight;
    var best = 1, bestScore = -1;
    for (var cols = 1; cols <= n; cols++) {
      var rows = Math.ceil(n / cols);
      var tw = w / cols, th = h / rows;
      var score = Math.min(tw / 1.45, th);  // tiles read best a little wider than tall
      if (score > bestScore + 0.5) { bestScore = score; best = cols; }
    }
    board.style.gridTemplateColumns = "repeat(" + best + ", minmax(0, 1fr))";
    board.style.gridTemplateRows = "repeat(" + Math.ceil(n / best) + ", minmax(0, 1fr))";
  }

  function render(doc) {
    lastDoc = doc;
    var entries = (doc.queues || []).filter(function (q) {
      return queueFilter.length === 0 || queueFilter.indexOf(q.queue) >= 0;
    });
    var keys = ["\u0000totals"].concat(entries.map(function (q) { return q.queue + "\u001f" + q.channel; }));
    var order = keys.join("\u001e");
    var board = $("board");
    if (order !== tileOrder) {
      var next = {};
      keys.forEach(function (key, i) {
        next[key] = tiles[key] || (i === 0 ? makeTile(null, null) : makeTile(entries[i - 1].queue, entries[i - 1].channel));
      });
      board.replaceChildren.apply(board, keys.map(function (k) { return next[k].el; }));
      tiles = next;
      tileOrder = order;
      layout();
    }
    fillTile(tiles["\u0000totals"], doc.totals || { live: {}, windows: {} });
    entries.forEach(function (q) { fillTile(tiles[q.queue + "\u001f" + q.channel], q); });
    document.body.dataset.generatedAt = doc.generated_at || "";
    var at = doc.generated_at ? new Date(doc.generated_at) : null;
    $("updated").textContent = at ? at.toLocaleTimeString([], { hour12: false }) : NULL;
  }

  // ---------------------------------------------------------------------------------------- stale, breaches
  function tick() {
    var now = Date.now();
    $("clock").textContent = new Date(now).toLocaleTimeString([], { hour12: false });
    var limit = (config.stale_after_seconds || 5) * 1000;
    var age = lastUpdateMs ? now - lastUpdateMs : Infinity;
    var stale = age > limit;
    document.body.classList.toggle("stale", stale);
    document.body.classList.toggle("no-data", !lastUpdateMs);
    document.body.dataset.stale = stale ? "true" : "false";
    $("stale-banner").hidden = !stale;
    if (stale) {
      $("stale-text").textContent = lastUpdateMs
        ? "no update for " + format.duration(age / 1000) + " (last data " + new Date(lastUpdateMs).toLocaleTimeString([], { hour12: false }) + ")"
        : "no data received yet";
    }
    if (breachHideAt && now > breachHideAt) {
      $("breach-banner").hidden = true;
      breachHideAt = 0;
      breachCount = 0;
    }
  }

  function onBreach(b) {
    if (queueFilter.length && queueFilter.indexOf(b.queue) < 0) return;
    breachCount += 1;
    // queue, channel and threshold only: never a contact or customer id on screen
    $("breach-text").textContent = b.queue + " (" + b.channel + ") waited over " + format.threshold(b.threshold_seconds);
    $("breach-more").textContent = breachCount > 1 ? "+" + (breachCount - 1) + " more" : "";
    var banner = $("breach-banner");
    banner.hidden = false;
    banner.dataset.queue = b.queue;
    breachHideAt = Date.now() + BREACH_SHOW_MS;
    var tile = tiles[b.queue + "\u001f" + b.channel];
    if (tile) {
      tile.el.classList.remove("flash");
      void tile.el.offsetWidth;  // restart the animation
      tile.el.classList.add("flash");
    }
  }

  // ---------------------------------------------------------------------------------------- connection
  function setConn(text, cls) {
    var c = $("conn");
    c.textContent = text;
    c.className = "conn " + cls;
  }

  function connect() {
    var qs = new URLSearchParams({ window: windowName });
    if (queueFilter.length) qs.set("queues", queueFilter.join(","));
    source = new EventSource("/events?" + qs.toString());
    source.onopen = function () { setConn("live", "ok"); };
    source.addEventListener("kpis", function (e) {
      var msg = JSON.parse(e.data);
      lastUpdateMs = Date.now() - (msg.age_seconds || 0) * 1000;
      render(msg.document);
      tick();
    });
    source.addEventListener("breach", function (e) { onBreach(JSON.parse(e.data)); });
    source.onerror = function () {
      setConn("reconnecting", "down");
      if (source.readyState === EventSource.CLOSED) {  // the browser gave up (e.g. HTTP error): retry ourselves
        source.close();
        setTimeout(connect, 3000);
      }
    };
  }

  window.cxpulseWallboard = { format: format, fields: FIELDS, render: render };

  document.addEventListener("DOMContentLoaded", function () {
    $("window-name").textContent = windowName + (queueFilter.length ? " \u00b7 " + queueFilter.join(", ") : "");
    window.addEventListener("resize", layout);
    setInterval(tick, 500);
    tick();
    loadConfig().then(connect);
  });
})();

/* cxpulse wallboard page: one tile per (queue, channel) plus a totals tile, fed by Server-Sent Events.
 *
 * URL: /?board=NAME&queues=billing,tech-support&window=15m&rotate=30s&boards=a,b
 *   (default: the unnamed board, every queue, window 15m; rotate: switch between boards in place)
 * Data: GET /api/config?board= (targets, the board, the board names), GET /events?board= (events "hello",
 * "kpis" {age_seconds, document: entries with their thresholds and display_name}, "breach" {queue, channel,
 * threshold_seconds, breached_at, id}, "messages" [...]); every event has an id (the breaches stream's), so
 * the browser's own reconnect sends Last-Event-ID, and a new EventSource we open gets ?last_id=: breaches
 * published while the page was away are replayed once (the page also ignores an id it has seen).
 * Formatting and colours mirror cxpulse/wallboard/format.py and thresholds.py (the browser test compares).
 * Sound: a Web Audio chime (no file) on a new breach and on a figure entering critical, after one click on
 * "Enable sound" (browsers refuse audio before a gesture); the choice is kept in localStorage.
 */
(function () {
  "use strict";

  var NULL = "\u2013";
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
    // the colour of a value in its band: the twin of cxpulse/wallboard/thresholds.py's state()
    state: function (value, band) {
      if (isNull(value) || !band || (isNull(band.warn) && isNull(band.critical))) return "none";
      if (band.direction === "below") {
        if (!isNull(band.critical) && value < band.critical - EPS) return "critical";
        if (!isNull(band.warn) && value < band.warn - EPS) return "warn";
        return "good";
      }
      if (!isNull(band.critical) && value >= band.critical - EPS) return "critical";
      if (!isNull(band.warn) && value >= band.warn - EPS) return "warn";
      return "good";
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
  var BIG_SLOTS = 3;  // the first metric big, the next two beside it, the rest in the small row
  var COMPACT_FROM = 25;  // tiles (auto size): from this many, the compact tile
  var RANK = { none: 0, good: 0, warn: 1, critical: 2 };

  // ---------------------------------------------------------------------------------------- state
  var params = new URLSearchParams(window.location.search);
  var windowName = params.get("window") || "15m";
  var queueFilter = (params.get("queues") || "").split(",").map(function (s) { return s.trim(); })
    .filter(function (s) { return s.length > 0; });
  var boardName = params.get("board") || "";
  var rotateMs = parseDuration(params.get("rotate"));
  var rotation = (params.get("boards") || "").split(",").map(function (s) { return s.trim(); })
    .filter(function (s) { return s.length > 0; });

  var config = { stale_after_seconds: 5, channels: {}, queues: [] };
  var board = { metrics: Object.keys(FIELDS), tile_size: "auto", display_names: {} };
  var lastUpdateMs = 0;
  var lastDoc = null;
  var tiles = {};  // key -> {el, values: {field: element}, states: {field: state}}
  var tileOrder = "";
  var source = null;
  var lastId = null;  // the newest breaches-stream id received
  var breachHideAt = 0;
  var breachCount = 0;
  var messages = [];  // [{id, text, queues, hideAt}]
  var hooks = { chimes: [], breaches: [], banners: [], boards: [] };  // for tests: what the page did

  var $ = function (id) { return document.getElementById(id); };

  function parseDuration(text) {
    var m = /^(\d+)(ms|s|m|h)?$/.exec((text || "").trim());
    if (!m) return 0;
    var n = parseInt(m[1], 10);
    return n * ({ ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] || "s"]);
  }

  function idNewer(a, b) {  // stream ids "ms-seq": is a after b?
    if (!b) return true;
    var x = a.split("-"), y = b.split("-");
    var ms = Number(x[0]) - Number(y[0]);
    return ms > 0 || (ms === 0 && Number(x[1]) > Number(y[1]));
  }

  // ---------------------------------------------------------------------------------------- config
  function applyConfig(c) {
    config = c;
    if (c.board) board = c.board;
    if (!rotation.length && c.boards) rotation = [""].concat(c.boards);
    document.title = "cxpulse \u00b7 " + (board.title || "wallboard");
  }

  function loadConfig() {
    var qs = new URLSearchParams();
    if (boardName) qs.set("board", boardName);
    return fetch("/api/config?" + qs.toString(), { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("config " + r.status); return r.json(); })
      .then(applyConfig)
      .catch(function () { /* channel defaults of the page; the next page load asks again */ });
  }

  // ---------------------------------------------------------------------------------------- sound
  var sound = {
    ctx: null,
    wanted: window.localStorage && localStorage.getItem("cxpulse.sound") === "on",
    on: function () { return this.wanted && this.ctx !== null && this.ctx.state === "running"; },
    enable: function () {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      if (!this.ctx) this.ctx = new Ctx();
      this.ctx.resume();
      this.wanted = true;
      try { localStorage.setItem("cxpulse.sound", "on"); } catch (e) { /* private mode */ }
      showSound();
    },
    mute: function () {
      this.wanted = false;
      try { localStorage.setItem("cxpulse.sound", "off"); } catch (e) { /* private mode */ }
      showSound();
    },
    // two sine notes, soft attack and decay: audible across a room, not an alarm siren
    chime: function (why, critical) {
      hooks.chimes.push({ why: why, played: this.on() });
      if (!this.on()) return;
      var ctx = this.ctx, t = ctx.currentTime;
      var notes = critical ? [880, 660, 880] : [660, 880];
      notes.forEach(function (f, i) {
        var osc = ctx.createOscillator(), gain = ctx.createGain();
        osc.type = "sine";
        osc.frequency.value = f;
        var at = t + i * 0.22;
        gain.gain.setValueAtTime(0.0001, at);
        gain.gain.exponentialRampToValueAtTime(0.35, at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.6);
        osc.connect(gain).connect(ctx.destination);
        osc.start(at);
        osc.stop(at + 0.65);
      });
    }
  };

  function showSound() {
    var btn = $("sound");
    var on = sound.wanted;
    btn.textContent = on ? "\u266a sound on" : (sound.ctx ? "\u266a muted" : "\u266a enable sound");
    btn.dataset.state = on ? "on" : "off";
    btn.setAttribute("aria-pressed", on ? "true" : "false");
    // the one-click offer on first load: the browser will not play before a gesture on this page
    $("sound-offer").hidden = sound.ctx !== null || localStorage.getItem("cxpulse.sound") === "off";
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
    var box = el("div", "stat " + cls + " " + field);
    var line = el("div", "value-line");
    var value = el("div", "value " + field, NULL);
    value.dataset.testid = base + "-" + field;
    values[field] = value;
    line.appendChild(value);
    var mark = el("span", "mark", "");
    mark.dataset.testid = base + "-" + field + "-mark";
    values[field + "_mark"] = mark;
    line.appendChild(mark);
    box.appendChild(line);
    var caption = el("div", "caption", FIELDS[field][3]);
    values[field + "_caption"] = caption;
    box.appendChild(caption);
    return box;
  }

  function makeTile(queue, channel, name) {
    var base = testIdBase(queue, channel);
    var values = {};
    var tile = el("section", "tile" + (queue === null ? " totals" : ""));
    tile.dataset.testid = base;
    var head = el("div", "tile-head");
    var title = el("div", "tile-name", queue === null ? "All queues" : name);
    head.appendChild(title);
    var flag = el("div", "tile-flag", "");
    flag.dataset.testid = base + "-flag";
    head.appendChild(flag);
    head.appendChild(el("div", "tile-channel", queue === null ? "total" : channel));
    tile.appendChild(head);

    var metrics = board.metrics.filter(function (f) { return FIELDS[f]; });
    var main = el("div", "tile-main");
    if (metrics.length > 0) main.appendChild(stat("big", metrics[0], base, values));
    var side = el("div", "live");
    metrics.slice(1, BIG_SLOTS).forEach(function (f) { side.appendChild(stat("side", f, base, values)); });
    main.appendChild(side);
    tile.appendChild(main);

    var small = el("div", "tile-small");
    metrics.slice(BIG_SLOTS).forEach(function (f) { small.appendChild(stat("small", f, base, values)); });
    small.style.gridTemplateColumns = "repeat(" + Math.max(1, metrics.length - BIG_SLOTS) + ", minmax(0, 1fr))";
    tile.appendChild(small);
    var agents = queue === null ? null : agentsLine(base);
    if (agents) tile.appendChild(agents.el);
    return { el: tile, values: values, queue: queue, channel: channel, states: {}, title: title, flag: flag,
             agents: agents };
  }

  // agents of a queue (contract v2): counts by state and "staffed N / needed M", hidden without agent data
  var AGENT_STATES = [["available", "available"], ["on_contact", "on contact"], ["wrap_up", "wrap"], ["away", "away"]];

  function agentsLine(base) {
    var box = el("div", "tile-agents");
    box.dataset.testid = base + "-agents";
    box.hidden = true;
    var counts = el("div", "agents-counts");
    var spans = {};
    AGENT_STATES.forEach(function (s, i) {
      if (i) counts.appendChild(el("span", "sep", " \u00b7 "));
      var n = el("span", "agents-n", NULL);
      n.dataset.testid = base + "-agents-" + s[0];
      spans[s[0]] = n;
      counts.appendChild(n);
      counts.appendChild(el("span", "agents-label", " " + s[1]));
    });
    box.appendChild(counts);
    var staffing = el("div", "agents-staffing");
    staffing.dataset.testid = base + "-staffing";
    box.appendChild(staffing);
    return { el: box, counts: spans, staffing: staffing };
  }

  function fillAgents(line, agents) {
    line.el.hidden = !agents;
    if (!agents) return;
    var live = agents.live || {}, staffing = agents.staffing || {};
    AGENT_STATES.forEach(function (s) { line.counts[s[0]].textContent = format.count(live[s[0]]); });
    var needed = staffing.agents_required;
    var short = !isNull(needed) && staffing.agents_staffed < needed;
    // the word SHORT and the mark say it too: colour is never the only signal
    line.staffing.textContent = "staffed " + format.count(staffing.agents_staffed) + " / needed " +
      format.count(needed) + (short ? " \u25a0 SHORT" : "");
    line.staffing.dataset.short = short ? "true" : "false";
    line.staffing.className = "agents-staffing" + (short ? " state-critical" : "");
  }

  // the agents panel (wallboard.show_agents): agents by state with their time in state; a name when the
  // source gave one, else nothing that identifies the agent
  var PANEL_STATES = [["available", "Available"], ["on_contact", "On contact"], ["wrap_up", "Wrap-up"], ["away", "Away"]];

  function renderAgentsPanel(list, ageSeconds) {
    var panel = $("agents-panel");
    var on = Array.isArray(list);
    panel.hidden = !on;
    document.body.classList.toggle("with-agents", on);
    if (!on) return;
    var groups = PANEL_STATES.map(function (s) {
      var members = list.filter(function (a) { return a.state === s[0]; });
      var group = el("section", "agents-group state-" + s[0]);
      group.dataset.testid = "agents-group-" + s[0];
      group.appendChild(el("h2", "agents-group-title", s[1] + " (" + members.length + ")"));
      var ul = el("ul", "agents-list");
      members.forEach(function (a) {
        var li = el("li", "agent");
        li.dataset.testid = "agent";
        li.dataset.state = a.state;
        li.appendChild(el("span", "agent-name", a.agent_name || NULL));
        if (a.state === "away" && a.reason) li.appendChild(el("span", "agent-reason", a.reason));
        var since = el("span", "agent-time", format.duration((a.seconds_in_state || 0) + (ageSeconds || 0)));
        since.dataset.testid = "agent-time";
        li.appendChild(since);
        ul.appendChild(li);
      });
      group.appendChild(ul);
      return group;
    });
    panel.replaceChildren.apply(panel, groups);
  }

  var MARKS = { warn: "\u25b2", critical: "\u25a0" };  // triangle, square: colour is never the only signal
  var WORDS = { warn: "WARNING", critical: "CRITICAL" };

  // the feedback tile (contract v2): detractor feedback awaiting a follow-up on the board's queues and the
  // oldest one's age, each queue coloured against its own feedback_response_target (band "oldest_awaiting",
  // resolved by the server: warn from half the target, critical from the target, when it is a breach)
  var FEEDBACK_KEY = "\u0000feedback";
  var FEEDBACK_WORDS = { warn: "WARNING", critical: "OVERDUE" };
  var FEEDBACK_ROWS = 6;  // queues listed in the tile, the worst first

  function hasFeedback(entries) {
    return entries.some(function (q) { return q.live && !isNull(q.live.awaiting_follow_up); });
  }

  function feedbackStat(cls, name, caption, values) {
    var box = el("div", "stat " + cls + " feedback-" + name);
    var line = el("div", "value-line");
    var value = el("div", "value", NULL);
    value.dataset.testid = "feedback-" + name;
    line.appendChild(value);
    var mark = el("span", "mark", "");
    mark.dataset.testid = "feedback-" + name + "-mark";
    line.appendChild(mark);
    box.appendChild(line);
    var capt = el("div", "caption", caption);
    capt.dataset.testid = "feedback-" + name + "-caption";
    box.appendChild(capt);
    values[name] = value;
    values[name + "_mark"] = mark;
    values[name + "_caption"] = capt;
    return box;
  }

  function makeFeedbackTile() {
    var values = {};
    var tile = el("section", "tile feedback-tile");
    tile.dataset.testid = "feedback";
    var head = el("div", "tile-head");
    head.appendChild(el("div", "tile-name", "Feedback"));
    var flag = el("div", "tile-flag", "");
    flag.dataset.testid = "feedback-flag";
    head.appendChild(flag);
    head.appendChild(el("div", "tile-channel", "follow-up"));
    tile.appendChild(head);
    var main = el("div", "tile-main");
    main.appendChild(feedbackStat("big", "awaiting", "awaiting follow-up", values));
    var side = el("div", "live");
    side.appendChild(feedbackStat("side", "oldest", "oldest", values));
    main.appendChild(side);
    tile.appendChild(main);
    var list = el("ul", "feedback-queues");
    list.dataset.testid = "feedback-queues";
    tile.appendChild(list);
    return { el: tile, values: values, flag: flag, list: list, feedback: true, queue: undefined };
  }

  function feedbackTarget(entry) {
    var t = config.queues && config.queues.filter(function (q) {
      return q.queue === entry.queue && q.channel === entry.channel;
    })[0];
    if (t && !isNull(t.feedback_response_target)) return t.feedback_response_target;
    var band = (entry.thresholds || {}).oldest_awaiting;
    return band ? band.critical : null;
  }

  function paint(node, mark, state, words) {
    node.dataset.state = state;
    node.className = "value state-" + state;
    mark.textContent = MARKS[state] || "";
    mark.className = "mark state-" + state;
    mark.setAttribute("aria-label", words[state] || "");
  }

  function fillFeedback(tile, entries) {
    var rows = entries.filter(function (q) { return q.live && !isNull(q.live.awaiting_follow_up); }).map(function (q) {
      var live = q.live;
      var n = live.awaiting_follow_up || 0;
      var state = n > 0 ? format.state(live.oldest_awaiting_seconds, (q.thresholds || {}).oldest_awaiting) : "none";
      return { entry: q, n: n, oldest: n > 0 ? live.oldest_awaiting_seconds : 0, state: state };
    });
    var total = rows.reduce(function (s, r) { return s + r.n; }, 0);
    var oldest = rows.reduce(function (best, r) { return r.n > 0 && (!best || r.oldest > best.oldest) ? r : best; }, null);
    var worst = rows.reduce(function (w, r) {  // "good" once anything awaits; "none" while nothing does
      return r.state !== "none" && (w === "none" || RANK[r.state] > RANK[w]) ? r.state : w;
    }, "none");
    var v = tile.values;
    v.awaiting.textContent = format.count(total);
    paint(v.awaiting, v.awaiting_mark, worst, FEEDBACK_WORDS);
    v.oldest.textContent = oldest ? format.duration(oldest.oldest) : NULL;
    paint(v.oldest, v.oldest_mark, oldest ? oldest.state : "none", FEEDBACK_WORDS);
    var target = oldest ? feedbackTarget(oldest.entry) : null;
    v.oldest_caption.textContent = "oldest" + (isNull(target) ? "" : " \u00b7 target " + format.threshold(target));
    tile.flag.textContent = FEEDBACK_WORDS[worst] || "";
    tile.flag.className = "tile-flag state-" + worst;
    tile.el.dataset.state = worst;
    tile.el.classList.remove("state-good", "state-warn", "state-critical", "state-none");
    tile.el.classList.add("state-" + (worst === "none" ? "good" : worst));
    var shown = rows.filter(function (r) { return r.n > 0; }).sort(function (a, b) {
      return RANK[b.state] - RANK[a.state] || b.oldest - a.oldest;
    }).slice(0, FEEDBACK_ROWS);
    tile.list.replaceChildren.apply(tile.list, shown.map(function (r) {
      var li = el("li", "feedback-queue state-" + r.state);
      li.dataset.testid = "feedback-queue";
      li.dataset.queue = r.entry.queue;
      li.dataset.channel = r.entry.channel;
      li.dataset.state = r.state;
      var name = r.entry.display_name || r.entry.queue;
      var t = feedbackTarget(r.entry);
      li.appendChild(el("span", "feedback-name", name + " (" + r.entry.channel + ")"));
      li.appendChild(el("span", "feedback-n", format.count(r.n) + " \u00b7 " + format.duration(r.oldest) +
        (isNull(t) ? "" : " / " + format.threshold(t))));
      var mark = el("span", "mark state-" + r.state, (MARKS[r.state] || "") +
        (FEEDBACK_WORDS[r.state] && r.state === "critical" ? " " + FEEDBACK_WORDS[r.state] : ""));
      mark.setAttribute("aria-label", FEEDBACK_WORDS[r.state] || "");
      li.appendChild(mark);
      return li;
    }));
  }

  function fillTile(tile, entry) {
    var win = (entry.windows || {})[windowName] || {};
    var live = entry.live || {};
    var bands = entry.thresholds || {};
    var worst = "none";
    var entered = [];
    Object.keys(FIELDS).forEach(function (f) {
      var node = tile.values[f];
      if (!node) return;
      var spec = FIELDS[f];
      var src = spec[0] === "live" ? live : win;
      var text = spec[2](src[spec[1]]);
      if (node.textContent !== text) node.textContent = text;
      var state = tile.queue === null ? "none" : format.state(src[spec[1]], bands[f]);
      if (state === "critical" && tile.states[f] !== undefined && tile.states[f] !== "critical") entered.push(f);
      tile.states[f] = state;
      node.dataset.state = state;
      node.className = "value " + f + " state-" + state;
      var mark = tile.values[f + "_mark"];
      mark.textContent = MARKS[state] || "";
      mark.className = "mark state-" + state;
      mark.setAttribute("aria-label", WORDS[state] || "");
      if (RANK[state] > RANK[worst]) worst = state;
    });
    if (tile.queue !== null) {
      var name = entry.display_name || tile.queue;
      if (tile.title.textContent !== name) tile.title.textContent = name;
      var capt = tile.values.service_level_caption;
      var sl = bands.service_level;
      var t = config.queues && config.queues.filter(function (q) { return q.queue === tile.queue && q.channel === tile.channel; })[0];
      if (capt && t) capt.textContent = "target " + format.percent(t.sl_target) + " in " + format.threshold(t.sl_threshold_seconds);
      else if (capt && sl && !isNull(sl.warn)) capt.textContent = "target " + format.percent(sl.warn);
    } else if (tile.values.service_level_caption) {
      tile.values.service_level_caption.textContent = format.count(win.offered) + " offered";
    }
    tile.flag.textContent = WORDS[worst] || "";
    tile.flag.className = "tile-flag state-" + worst;
    tile.el.dataset.state = worst;
    tile.el.classList.remove("state-good", "state-warn", "state-critical", "state-none");
    tile.el.classList.add("state-" + (worst === "none" && tile.queue !== null ? "good" : worst));
    if (entered.length) sound.chime("critical " + tile.queue + " " + entered.join(","), true);
  }

  function compact(n) {
    return board.tile_size === "compact" || (board.tile_size === "auto" && n >= COMPACT_FROM);
  }

  function layout() {
    var boardEl = $("board");
    var n = boardEl.children.length;
    if (!n) return;
    var small = compact(n);
    document.body.classList.toggle("compact", small);
    document.body.classList.toggle("large", board.tile_size === "large");
    var w = boardEl.clientWidth, h = boardEl.clientHeight;
    var best = 1, bestScore = -1;
    var ratio = small ? 1.6 : 1.45;  // tiles read best a little wider than tall
    for (var cols = 1; cols <= n; cols++) {
      var rows = Math.ceil(n / cols);
      var tw = w / cols, th = h / rows;
      var score = Math.min(tw / ratio, th);
      if (score > bestScore + 0.5) { bestScore = score; best = cols; }
    }
    boardEl.style.gridTemplateColumns = "repeat(" + best + ", minmax(0, 1fr))";
    boardEl.style.gridTemplateRows = "repeat(" + Math.ceil(n / best) + ", minmax(0, 1fr))";
  }

  function render(doc) {
    lastDoc = doc;
    var entries = (doc.queues || []).filter(function (q) {
      return queueFilter.length === 0 || queueFilter.indexOf(q.queue) >= 0;
    });
    var withTotals = !!doc.totals;
    var withFeedback = hasFeedback(entries);
    var keys = (withTotals ? ["\u0000totals"] : []).concat(entries.map(function (q) { return q.queue + "\u001f" + q.channel; }))
      .concat(withFeedback ? [FEEDBACK_KEY] : []);
    var order = keys.join("\u001e");
    var boardEl = $("board");
    if (order !== tileOrder) {
      var next = {};
      var offset = withTotals ? 1 : 0;
      keys.forEach(function (key, i) {
        var q = entries[i - offset];
        next[key] = tiles[key] || (key === FEEDBACK_KEY ? makeFeedbackTile()
          : withTotals && i === 0 ? makeTile(null, null) : makeTile(q.queue, q.channel, q.display_name || q.queue));
      });
      boardEl.replaceChildren.apply(boardEl, keys.map(function (k) { return next[k].el; }));
      tiles = next;
      tileOrder = order;
      layout();
    }
    if (withTotals) fillTile(tiles["\u0000totals"], doc.totals);
    entries.forEach(function (q) { fillTile(tiles[q.queue + "\u001f" + q.channel], q); });
    entries.forEach(function (q) {
      var tile = tiles[q.queue + "\u001f" + q.channel];
      if (tile.agents) fillAgents(tile.agents, q.agents);
    });
    if (withFeedback) fillFeedback(tiles[FEEDBACK_KEY], entries);
    renderAgentsPanel(doc.agents_panel, lastUpdateMs ? (Date.now() - lastUpdateMs) / 1000 : 0);
    document.body.dataset.generatedAt = doc.generated_at || "";
    var at = doc.generated_at ? new Date(doc.generated_at) : null;
    $("updated").textContent = at ? at.toLocaleTimeString([], { hour12: false }) : NULL;
  }

  // ---------------------------------------------------------------------------------------- messages
  function onMessages(list) {
    var now = Date.now();
    messages = list.map(function (m) { return { id: m.id, text: m.text, queues: m.queues, hideAt: now + m.seconds_left * 1000 }; });
    showMessages();
  }

  function showMessages() {
    var now = Date.now();
    var live = messages.filter(function (m) { return m.hideAt > now; });
    var bar = $("messages");
    var key = live.map(function (m) { return m.id; }).join(",");
    if (bar.dataset.ids !== key) {
      bar.replaceChildren.apply(bar, live.map(function (m) {
        var item = el("span", "message", m.text);
        item.dataset.testid = "message";
        item.dataset.id = m.id;
        return item;
      }));
      bar.dataset.ids = key;
    }
    bar.hidden = live.length === 0;
    document.body.classList.toggle("with-messages", live.length > 0);
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
    showMessages();
  }

  function onBreach(b, id) {
    if (id) {
      if (!idNewer(id, lastId)) return;  // seen already (the server replays from our last id)
      lastId = id;
    }
    if (queueFilter.length && queueFilter.indexOf(b.queue) < 0) return;
    hooks.breaches.push(id || null);
    breachCount += 1;
    var tile = tiles[b.queue + "\u001f" + b.channel];
    var name = tile ? tile.title.textContent : b.queue;
    // queue, channel and threshold only: never a contact or customer id on screen
    $("breach-text").textContent = name + " (" + b.channel + ") waited over " + format.threshold(b.threshold_seconds);
    hooks.banners.push($("breach-text").textContent);  // each text shown: a newer breach may replace it at once
    $("breach-more").textContent = breachCount > 1 ? "+" + (breachCount - 1) + " more" : "";
    var banner = $("breach-banner");
    banner.hidden = false;
    banner.dataset.queue = b.queue;
    banner.dataset.count = String(breachCount);
    breachHideAt = Date.now() + BREACH_SHOW_MS;
    if (tile) {
      tile.el.classList.remove("flash");
      void tile.el.offsetWidth;  // restart the animation
      tile.el.classList.add("flash");
    }
    sound.chime("breach " + b.queue, false);
  }

  // ---------------------------------------------------------------------------------------- connection
  function setConn(text, cls) {
    var c = $("conn");
    c.textContent = text;
    c.className = "conn " + cls;
  }

  function remember(e) {
    if (e.lastEventId && idNewer(e.lastEventId, lastId)) lastId = e.lastEventId;
  }

  function connect() {
    var qs = new URLSearchParams({ window: windowName });
    if (boardName) qs.set("board", boardName);
    if (queueFilter.length) qs.set("queues", queueFilter.join(","));
    if (lastId) qs.set("last_id", lastId);  // a new EventSource does not send Last-Event-ID itself
    var es = new EventSource("/events?" + qs.toString());
    source = es;
    es.onopen = function () { if (source === es) setConn("live", "ok"); };
    es.addEventListener("hello", function (e) {
      if (source !== es) return;
      var hello = JSON.parse(e.data);
      if (hello.board) { board = hello.board; $("board-name").textContent = board.title || "All queues"; }
      if (!lastId) remember(e);  // where this page starts in the breaches stream
    });
    es.addEventListener("kpis", function (e) {
      if (source !== es) return;
      var msg = JSON.parse(e.data);
      lastUpdateMs = Date.now() - (msg.age_seconds || 0) * 1000;
      render(msg.document);
      tick();
      remember(e);
    });
    es.addEventListener("breach", function (e) {
      if (source !== es) return;
      var b = JSON.parse(e.data);
      onBreach(b, b.id || e.lastEventId);
    });
    es.addEventListener("messages", function (e) {
      if (source !== es) return;
      onMessages(JSON.parse(e.data));
      remember(e);
    });
    es.onerror = function () {
      if (source !== es) return;
      setConn("reconnecting", "down");
      if (es.readyState === EventSource.CLOSED) {  // the browser gave up (e.g. HTTP error): retry ourselves
        es.close();
        setTimeout(function () { if (source === es) connect(); }, 3000);
      }
    };
  }

  // ---------------------------------------------------------------------------------------- boards
  function switchBoard(name) {
    if (source) source.close();
    source = null;
    boardName = name;
    tiles = {};
    tileOrder = "";
    $("board").replaceChildren();
    document.body.dataset.board = name;
    hooks.boards.push(name);
    loadConfig().then(connect);
  }

  function rotate() {
    if (rotation.length < 2) return;
    var i = rotation.indexOf(boardName);
    switchBoard(rotation[(i + 1) % rotation.length]);
  }

  window.cxpulseWallboard = { format: format, fields: FIELDS, render: render, hooks: hooks, sound: sound };

  document.addEventListener("DOMContentLoaded", function () {
    $("window-name").textContent = windowName + (queueFilter.length ? " \u00b7 " + queueFilter.join(", ") : "");
    document.body.dataset.board = boardName;
    window.addEventListener("resize", layout);
    $("sound").addEventListener("click", function () { if (sound.on()) sound.mute(); else sound.enable(); });
    $("sound-enable").addEventListener("click", function () { sound.enable(); });
    $("sound-dismiss").addEventListener("click", function () { sound.mute(); $("sound-offer").hidden = true; });
    showSound();
    setInterval(tick, 250);
    tick();
    loadConfig().then(function () {
      if (rotateMs >= 1000) setInterval(rotate, rotateMs);
      connect();
    });
  });
})();

// heritage-audio live dashboard.
//
// Reads the live event stream from /ws/events (one JSON event per message,
// see stream/events.py) and renders one card per (source, channel) plus an
// event log. The page runs unattended for weeks on gallery wall screens, so
// every collection it keeps is bounded: the log, the timeline segments, and
// the pending level updates (at most one per card).

const WINDOW_S = 60; // stream seconds shown by the timelines
const RECENT_S = 600; // stream seconds shown by the recent-minutes timelines
const RECENT_SEGMENTS = 2000; // per recent lane; a safety cap on top of time pruning
const LOG_CAP = 200; // event log lines kept in the DOM
const MAX_SEGMENTS = 400; // per timeline; a safety cap on top of time pruning
const MERGE_GAP_S = 0.5; // same label within this gap joins the previous block
const CLIP_HOLD_S = 1; // clip indicator stays lit this long (stream time)
const METER_FLOOR_DB = -60;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;

const CATEGORIES = [
  ["folk_music", "Folk music", "#f4a261"],
  ["classical_music", "Classical music", "#5cc8ff"],
  ["opera", "Opera", "#c77dff"],
  ["spoken_word", "Spoken word", "#90d26d"],
  ["historical_speech", "Historical speech", "#f9d84a"],
  ["religious_chant", "Religious chant", "#ff6f91"],
  ["other", "Other sound", "#9aa5b1"],
];
const CATEGORY = new Map(CATEGORIES.map(([id, label, color]) => [id, { label, color }]));
const WARN_STATES = new Set(["lost", "error", "overrun"]);
const UNLOGGED = new Set(["level", "heartbeat"]); // too frequent to log; only counted

/** Elements marked data-ref="name" under root, by name. */
function refs(root) {
  const found = {};
  for (const node of root.querySelectorAll("[data-ref]")) found[node.dataset.ref] = node;
  return found;
}
// A template's content is a separate fragment, so card parts are not found here.
const ui = refs(document);

const cards = new Map(); // "source\0channel" -> card
const sources = new Map(); // source -> { now, lastSeq, live, status, cards: card[] }
const stats = { total: 0, lastSecond: 0, gaps: 0 };
const dirty = new Set(); // cards to repaint on the next animation frame
let frameRequested = false;

// ---- small helpers --------------------------------------------------------

const num = (value, fallback = 0) => (Number.isFinite(value) ? value : fallback);
const pct = (p) => `${Math.round(num(p) * 100)}%`;
const pad2 = (n) => String(n).padStart(2, "0");

/** Human-readable category; unknown ids (a newer schema) are prettified. */
function categoryLabel(id) {
  const known = CATEGORY.get(id);
  if (known) return known.label;
  const text = String(id).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}
const categoryColor = (id) => CATEGORY.get(id)?.color ?? "#9aa7b6";

/**
 * Stable colour per speaker name. Diarization names speakers Speaker_1,
 * Speaker_2, ... in order of appearance, so a trailing number is spread by the
 * golden angle to keep neighbours far apart; other names are hashed (FNV-1a).
 */
function speakerColor(name) {
  const n = /(\d+)$/.exec(name);
  let hue;
  if (n) {
    hue = (Number(n[1]) * 137.508 + 200) % 360;
  } else {
    let h = 2166136261;
    for (const ch of name) h = Math.imul(h ^ ch.codePointAt(0), 16777619);
    hue = (h >>> 0) % 360;
  }
  return `hsl(${hue.toFixed(0)} 70% 62%)`;
}

/** Local HH:MM:SS of an ISO 8601 wall time. */
function clock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "--:--:--";
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Stream seconds as H:MM:SS (hours unbounded: streams run for weeks). */
function duration(s) {
  const t = Math.floor(num(s));
  return `${Math.floor(t / 3600)}:${pad2(Math.floor(t / 60) % 60)}:${pad2(t % 60)}`;
}

// ---- sources and cards ----------------------------------------------------

const canvasCard = new WeakMap(); // timeline canvas -> its card
// Canvas backing stores follow their CSS size (and the screen's pixel ratio).
const resizer = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const canvas = entry.target;
    const box = entry.devicePixelContentBoxSize?.[0];
    canvas.width = box ? box.inlineSize : Math.round(entry.contentRect.width * devicePixelRatio);
    canvas.height = box ? box.blockSize : Math.round(entry.contentRect.height * devicePixelRatio);
    dirty.add(canvasCard.get(canvas));
  }
  requestFrame();
});

function sourceOf(name) {
  let src = sources.get(name);
  if (!src) {
    src = { now: 0, lastSeq: null, live: false, status: null, cards: [] };
    sources.set(name, src);
  }
  return src;
}

function cardFor(source, channel) {
  const key = `${source}\0${channel}`;
  return cards.get(key) ?? createCard(key, source, channel);
}

function createCard(key, source, channel) {
  const root = ui.template.content.firstElementChild.cloneNode(true);
  const el = refs(root);
  root.dataset.source = source;
  root.dataset.channel = String(channel);
  el.src.textContent = source || "(unnamed)";
  el.ch.textContent = `ch ${channel}`;

  el.scoreRows = new Map();
  for (const [id, label, color] of CATEGORIES) {
    const li = document.createElement("li");
    li.style.setProperty("--swatch", color);
    li.innerHTML = '<span class="name"></span><span class="pct">–</span><span class="track"><span class="bar"></span></span>';
    li.querySelector(".name").textContent = label;
    el.scores.append(li);
    el.scoreRows.set(id, { li, bar: li.querySelector(".bar"), pct: li.querySelector(".pct") });
  }

  const src = sourceOf(source);
  const card = {
    source,
    channel,
    root,
    el,
    now: src.now, // stream seconds of the newest event seen
    level: null, // newest level event not yet painted
    clipUntil: -Infinity,
    speakerSegs: [],
    categorySegs: [],
    recent: { speech: [], speaker: [], category: [] }, // the last RECENT_S, for the long view
    speechSince: null, // stream time speech started, while it lasts
    loggedCategory: null, // the category last written to the event log
    loggedSpeaker: null, // and the speaker
  };
  cards.set(key, card);
  src.cards.push(card);
  if (src.status) showStatus(card, src.status); // a later channel inherits the source's health

  // Keep cards ordered by source name, then channel.
  const next = [...ui.cards.querySelectorAll(":scope > .card")].find(
    (other) => (other.dataset.source.localeCompare(source) || other.dataset.channel - channel) > 0,
  );
  ui.cards.insertBefore(root, next ?? null);
  ui.empty.remove();
  addRecentRow(card, next);
  for (const canvas of [el.speakerTl, el.categoryTl]) {
    canvasCard.set(canvas, card);
    resizer.observe(canvas);
  }
  return card;
}

/** Cards a source-wide event (channel null) applies to; never empty. */
function sourceCards(source) {
  const src = sourceOf(source);
  return src.cards.length ? src.cards : [cardFor(source, 0)];
}

// ---- event handling -------------------------------------------------------

function addSegment(list, t0, t1, label, color) {
  const last = list.at(-1);
  if (last && last.label === label && t0 <= last.t1 + MERGE_GAP_S) {
    last.t1 = Math.max(last.t1, t1);
    return;
  }
  // Sliding analysis windows overlap: the newer decision owns the overlap.
  if (last && t0 < last.t1) last.t1 = Math.max(last.t0, t0);
  list.push({ t0, t1, label, color });
  if (list.length > MAX_SEGMENTS) list.shift();
}

function setSpeech(card, on) {
  card.el.speech.textContent = on ? "speech" : "silence";
  card.el.speech.classList.toggle("on", on);
}

function showStatus(card, status) {
  const { state, stateMsg } = card.el;
  const warn = WARN_STATES.has(status.state);
  state.textContent = status.state;
  state.className = `state ${warn ? "warn" : "ok"}`;
  card.root.classList.toggle("source-warn", warn);
  const detail = [status.message, status.overflows ? `${status.overflows} overflows` : ""]
    .filter(Boolean)
    .join(" · ");
  stateMsg.textContent = detail;
  stateMsg.hidden = !warn || !detail;
  state.title = detail;
}

// Per-type card updates; anything not listed here is counted and ignored.
const HANDLERS = {
  level(card, ev) {
    card.level = ev;
    if (num(ev.clipped) > 0) card.clipUntil = num(ev.t_end) + CLIP_HOLD_S;
  },
  "speech.started"(card, ev) {
    setSpeech(card, true);
    card.speechSince = num(ev.t_start);
  },
  "speech.ended"(card, ev) {
    setSpeech(card, false);
    addRecent(card.recent.speech, num(ev.t_start, card.speechSince ?? 0), num(ev.t_end), "speech", "#3ddc84");
    card.speechSince = null;
  },
  "speaker.turn"(card, ev) {
    const name = String(ev.speaker ?? "?");
    const color = speakerColor(name);
    card.el.speaker.textContent = name;
    card.el.speaker.title = name; // long names are ellipsized on narrow cards
    card.el.speaker.style.setProperty("--swatch", color);
    card.el.speakerConf.textContent = pct(ev.confidence);
    addSegment(card.speakerSegs, num(ev.t_start), num(ev.t_end), name, color);
    addRecent(card.recent.speaker, num(ev.t_start), num(ev.t_end), name, color);
  },
  "heritage.classified"(card, ev) {
    const label = categoryLabel(ev.category);
    const color = categoryColor(ev.category);
    card.el.category.textContent = label;
    card.el.category.style.setProperty("--swatch", color);
    card.el.categoryConf.textContent = pct(ev.confidence);
    for (const [id, row] of card.el.scoreRows) {
      const p = Math.min(1, Math.max(0, num(ev.scores?.[id])));
      row.bar.style.transform = `scaleX(${p})`;
      row.pct.textContent = pct(p);
      row.li.classList.toggle("top", id === ev.category);
    }
    addSegment(card.categorySegs, num(ev.t_start), num(ev.t_end), label, color);
    addRecent(card.recent.category, num(ev.t_start), num(ev.t_end), label, color);
  },
  "source.status": showStatus,
  heartbeat() {}, // only advances the stream clock
};

function handleMessage(data) {
  let ev;
  try {
    ev = JSON.parse(data);
  } catch {
    return;
  }
  if (!ev || typeof ev.type !== "string") return;
  stats.total += 1;
  stats.lastSecond += 1;
  const source = String(ev.source ?? "");
  const src = sourceOf(source);

  // seq is per source and strictly increasing across all types; a jump means
  // events were lost. A smaller seq means the producer restarted: follow it.
  // A (re)connection starts with the hub's snapshot of retained events, whose
  // seqs jump by design; heartbeats are never retained, so counting starts at
  // the first heartbeat of each source after connecting.
  if (ev.type === "heartbeat") src.live = true;
  if (Number.isInteger(ev.seq)) {
    if (src.live && src.lastSeq !== null && ev.seq > src.lastSeq + 1) {
      stats.gaps += 1;
      ui.gaps.textContent = stats.gaps;
    }
    src.lastSeq = ev.seq;
  }
  if (ev.installation_id && ui.installation.textContent !== ev.installation_id) {
    ui.installation.textContent = ev.installation_id;
  }

  const handler = HANDLERS[ev.type];
  if (handler) {
    const sourceWide = ev.channel === null || ev.channel === undefined;
    const tEnd = num(ev.t_end);
    if (sourceWide) {
      src.now = Math.max(src.now, tEnd);
      if (ev.type === "source.status") src.status = ev;
    }
    let logged = !UNLOGGED.has(ev.type);
    for (const card of sourceWide ? sourceCards(source) : [cardFor(source, ev.channel)]) {
      card.now = Math.max(card.now, tEnd);
      if (ev.type === "heritage.classified") {
        // Classified every hop: the log shows a change of category, once.
        logged = card.loggedCategory !== ev.category;
        ev.previous = card.loggedCategory;
        card.loggedCategory = ev.category;
      } else if (ev.type === "speaker.turn") {
        // Likewise a turn goes to the log when the speaker changes.
        logged = card.loggedSpeaker !== ev.speaker;
        card.loggedSpeaker = ev.speaker;
      }
      handler(card, ev);
      dirty.add(card);
    }
    if (logged) logEvent(ev);
  }
  requestFrame();
}

// ---- event log ------------------------------------------------------------

// Short log summaries per type; other types get none.
const SUMMARY = {
  "speech.started": (ev) => `speech from ${duration(ev.t_start)}`,
  "speech.ended": (ev) => `speech ended after ${num(ev.duration).toFixed(1)} s`,
  "speaker.turn": (ev) => `${ev.speaker} (${pct(ev.confidence)})`,
  "heritage.classified": (ev) =>
    `${ev.previous ? `${categoryLabel(ev.previous)} → ` : ""}${categoryLabel(ev.category)} (${pct(ev.confidence)})`,
  "source.status": (ev) => [ev.state, ev.message].filter(Boolean).join(": "),
};

const LOG_GROUP = { speech: "speech", speaker: "speaker", heritage: "heritage", source: "status" };
ui.logFilter.addEventListener("change", () => {
  ui.log.dataset.filter = ui.logFilter.value;
});

function logEvent(ev) {
  const li = document.createElement("li");
  const parts = [
    ["log-time", clock(ev.wall_time)],
    ["log-where", `${ev.source}/${ev.channel ?? "*"}`],
    ["log-type", ev.type],
    ["log-summary", SUMMARY[ev.type]?.(ev) ?? ""],
  ];
  for (const [cls, text] of parts) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    li.append(span);
  }
  if (ev.type === "source.status" && WARN_STATES.has(ev.state)) li.className = "warn";
  li.dataset.group = LOG_GROUP[ev.type.split(".")[0]] ?? "other";
  ui.log.prepend(li);
  while (ui.log.childElementCount > LOG_CAP) ui.log.lastElementChild.remove();
}

// ---- painting (batched per animation frame) -------------------------------

function requestFrame() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(paint);
}

function paint() {
  frameRequested = false;
  for (const card of dirty) paintCard(card);
  dirty.clear();
  ui.total.textContent = stats.total;
}

/** Position on the meter, 0..1, for a dBFS value. */
const meterPos = (db) => Math.min(1, Math.max(0, (num(db, -120) - METER_FLOOR_DB) / -METER_FLOOR_DB));

function paintCard(card) {
  const { el } = card;
  if (card.level) {
    const { rms_dbfs: rms, peak_dbfs: peak } = card.level;
    el.cover.style.transform = `scaleX(${1 - meterPos(rms)})`;
    el.peak.style.transform = `translateX(${(meterPos(peak) - 1) * 100}%)`;
    el.level.textContent = num(rms, -120).toFixed(1);
    card.level = null;
  }
  el.clip.classList.toggle("on", card.now <= card.clipUntil);
  el.time.textContent = duration(card.now);
  drawTimeline(el.speakerTl, card.speakerSegs, card.now);
  drawTimeline(el.categoryTl, card.categorySegs, card.now);
}

function drawTimeline(canvas, segs, now) {
  const { width: w, height: h } = canvas;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  if (!w || !h) return;
  const start = now - WINDOW_S;
  while (segs.length && segs[0].t1 < start) segs.shift();
  const px = w / WINDOW_S;

  // Grid every 10 s of stream time, so it scrolls along with the blocks.
  ctx.fillStyle = "rgb(255 255 255 / 0.08)";
  for (let t = Math.ceil(start / 10) * 10; t <= now; t += 10) {
    ctx.fillRect(Math.round((t - start) * px), 0, 1, h);
  }

  ctx.font = `600 ${Math.round(h * 0.5)}px system-ui, "DejaVu Sans", sans-serif`;
  ctx.textBaseline = "middle";
  const inset = Math.max(1, Math.round(h * 0.08));
  for (const seg of segs) {
    const x0 = Math.max(0, (seg.t0 - start) * px);
    const x1 = Math.min(w, (seg.t1 - start) * px);
    if (x1 - x0 < 1) continue;
    ctx.fillStyle = seg.color;
    ctx.fillRect(x0, inset, Math.max(1, x1 - x0 - 1), h - 2 * inset);
    const pad = h * 0.3;
    if (ctx.measureText(seg.label).width + 2 * pad <= x1 - x0) {
      ctx.fillStyle = "#0a0d12";
      ctx.fillText(seg.label, x0 + pad, h / 2);
    }
  }
}

// ---- the last minutes, per channel ----------------------------------------

function addRecent(list, t0, t1, label, color) {
  const last = list.at(-1);
  if (last && last.label === label && t0 <= last.t1 + MERGE_GAP_S) {
    last.t1 = Math.max(last.t1, t1);
    return;
  }
  if (last && t0 < last.t1) last.t1 = Math.max(last.t0, t0);
  list.push({ t0, t1, label, color });
  if (list.length > RECENT_SEGMENTS) list.shift();
}

function addRecentRow(card, nextCard) {
  const row = document.createElement("div");
  row.className = "recent-row";
  row.dataset.source = card.source;
  row.dataset.channel = String(card.channel);
  const label = document.createElement("span");
  label.textContent = `${card.source || "(unnamed)"} ch ${card.channel}`;
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `${label.textContent}: speech, speakers and category, last 10 minutes`);
  row.append(label, canvas);
  card.recentCanvas = canvas;
  const before = nextCard
    ? ui.recent.querySelector(`[data-source="${CSS.escape(nextCard.dataset.source)}"][data-channel="${nextCard.dataset.channel}"]`)
    : null;
  ui.recent.insertBefore(row, before);
  ui.recentPanel.hidden = false;
}

/** Three stripes (speech, speaker, category) over the last RECENT_S of stream time. */
function drawRecent(card) {
  const canvas = card.recentCanvas;
  const w = (canvas.width = Math.round(canvas.clientWidth * devicePixelRatio));
  const h = (canvas.height = Math.round(canvas.clientHeight * devicePixelRatio));
  if (!w || !h) return;
  const ctx = canvas.getContext("2d");
  const start = card.now - RECENT_S;
  const px = w / RECENT_S;
  ctx.fillStyle = "rgb(255 255 255 / 0.08)";
  for (let t = Math.ceil(start / 60) * 60; t <= card.now; t += 60) {
    ctx.fillRect(Math.round((t - start) * px), 0, 1, h); // a line a minute
  }
  const speech = card.speechSince === null ? card.recent.speech
    : [...card.recent.speech, { t0: card.speechSince, t1: card.now, color: "#3ddc84" }];
  const stripes = [speech, card.recent.speaker, card.recent.category];
  const stripe = h / stripes.length;
  stripes.forEach((segs, i) => {
    while (segs.length && segs[0].t1 < start) segs.shift();
    for (const seg of segs) {
      const x0 = Math.max(0, (seg.t0 - start) * px);
      const x1 = Math.min(w, (seg.t1 - start) * px);
      if (x1 - x0 < 0.5) continue;
      ctx.fillStyle = seg.color;
      ctx.fillRect(x0, i * stripe + 1, Math.max(1, x1 - x0), stripe - 2);
    }
  });
}

setInterval(() => {
  for (const card of cards.values()) drawRecent(card);
}, 1000);

// Events per second, from a once-a-second tick.
setInterval(() => {
  ui.rate.textContent = stats.lastSecond;
  stats.lastSecond = 0;
}, 1000);

// ---- connection -----------------------------------------------------------

let backoffMs = BACKOFF_MIN_MS;

function setConnection(state) {
  ui.conn.textContent = state;
  ui.conn.dataset.state = state;
}

// The archive application's sign-in (same origin, same tab) also opens the live stream
// where the server requires a token.
function signedInToken() {
  try {
    return JSON.parse(sessionStorage.getItem("heritage-audio-session"))?.token ?? null;
  } catch {
    return null;
  }
}

function connect() {
  setConnection("connecting");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const token = new URLSearchParams(location.search).get("token") || signedInToken();
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  let ws;
  try {
    ws = new WebSocket(`${scheme}//${location.host}/ws/events${query}`);
  } catch {
    scheduleReconnect();
    return;
  }
  ws.onopen = () => {
    backoffMs = BACKOFF_MIN_MS;
    for (const src of sources.values()) src.live = false; // a snapshot comes first
    setConnection("connected");
    document.body.classList.remove("offline");
  };
  ws.onmessage = (msg) => handleMessage(msg.data);
  ws.onclose = scheduleReconnect; // also fires after every error
}

function scheduleReconnect() {
  setConnection("disconnected");
  // The overlay stays up through the following "connecting" attempts, so a
  // dead server does not make the page flicker; only onopen lifts it.
  document.body.classList.add("offline");
  ui.retry.textContent = `Reconnecting in ${(backoffMs / 1000).toFixed(1)} s…`;
  setTimeout(connect, backoffMs);
  backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
}

connect();

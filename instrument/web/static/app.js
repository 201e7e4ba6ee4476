// The instrument's page: state over one WebSocket (instrument/web/server.py), drawn here.
// Live: the tune as sheet music (abcjs) with the sounding notes lit, a piano roll, the
// network's activity as a heatmap, every parameter as a control and an XY pad. A take
// (run.py view): the same page on a recording, with a time slider and playback.
"use strict";

const S = {                     // what the server told us, as its deltas built it
  hello: null, control: false, values: {}, sources: {}, tunes: new Map(), notes: [], columns: [],
  ablation: {layer: 0, units: [], mode: "output"}, head: {}, status: [],
};
const specs = new Map();        // parameter name -> spec from hello
const widgets = new Map();      // parameter name -> [{set(value), source element, busyUntil}] (a voice's column may show one again)
const VOICE_COLOURS = ["#7f8aa3", "#5fb3a1", "#c9a45c", "#9b86c9", "#c97f7f", "#7fa7c9", "#a5c97f", "#c97fb5"];
let ws = null, offset = null, lastMessage = 0;
let sheetDirty = true, shownTune = 0, rendered = null, heatDirty = true;
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------- the link
function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws` + (token ? `?token=${encodeURIComponent(token)}` : "");
  ws = new WebSocket(url);
  ws.onopen = () => { offset = null; link("connected"); ping(); };
  ws.onmessage = (event) => { lastMessage = performance.now(); receive(JSON.parse(event.data)); };
  ws.onclose = () => { link("offline"); setTimeout(connect, 1000); };
  ws.onerror = () => {};      // onclose follows and reconnects
}

function link(text) {
  const badge = $("link");
  badge.textContent = text;
  badge.className = "badge" + (text === "offline" ? " off" : (S.hello && !S.control && S.hello.mode === "live" ? " view" : ""));
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function ping() { send({op: "ping", t: performance.now()}); }

// The server's clock (seconds) -> this page's (performance.now() seconds): the smallest
// difference seen is the one with the least network delay in it.
function noteClock(t) {
  const d = performance.now() / 1000 - t;
  if (offset === null || d < offset) offset = d;
}
function serverNow() { return performance.now() / 1000 - (offset || 0); }

function receive(m) {
  if (m.type === "hello") return hello(m);
  if (m.type === "pong") return;
  if (typeof m.t === "number" && S.hello && S.hello.mode === "live") noteClock(m.t);
  if (m.type === "full") {
    S.values = {}; S.sources = {}; S.tunes = new Map(); S.notes = []; S.columns = [];
    heatReset();
  }
  if (m.values) Object.assign(S.values, m.values);
  if (m.sources) Object.assign(S.sources, m.sources);
  if (m.values || m.sources) showValues(m.values || {}, m.sources || {});
  for (const part of m.tunes || []) takeTune(part);
  if (m.notes) { S.notes.push(...m.notes); if (S.notes.length > 1500) S.notes.splice(0, S.notes.length - 1500); }
  if (m.ablation) S.ablation = m.ablation;
  if (m.activity) { for (const c of m.activity) addColumn(c); }
  if (m.head) { S.head = m.head; showHead(); }
  if (m.status) { S.status = m.status; $("status").textContent = m.status.join("\n"); }
  if (m.type === "full" && m.duration !== undefined) takeLoaded(m);
}

function takeTune(part) {
  let tune = S.tunes.get(part.number);
  if (!tune || part.start === 0) {
    tune = {number: part.number, header: part.header || "", meter: part.meter, mode: part.mode, pieces: [], ended: false};
    S.tunes.set(part.number, tune);
    while (S.tunes.size > 4 && !(S.hello && S.hello.mode === "take")) S.tunes.delete(Math.min(...S.tunes.keys()));
  }
  if (part.start !== tune.pieces.length) { tune.pieces.length = part.start; }  // never happens: a delta per state
  tune.pieces.push(...part.pieces);
  tune.ended = part.ended;
  for (const v of part.voices || []) {   // an ensemble's other voices: a follower's pieces as they come, an accompanist's score anew
    if (!tune.voices) tune.voices = new Map();
    let mine = tune.voices.get(v.voice);
    if (!mine || v.start === 0) {
      mine = {header: v.header || (mine && mine.header) || `V:${v.voice}\n`, pieces: [], places: {}};
      tune.voices.set(v.voice, mine);
    }
    mine.pieces.length = v.start;
    mine.pieces.push(...v.pieces);
    if (v.places) mine.places = v.places;
  }
  if (part.number === shownTune || part.start === 0) sheetDirty = true;
}

// ---------------------------------------------------------------------------------- hello: build the page
function hello(m) {
  S.hello = m;
  S.control = !!m.control;
  document.body.classList.toggle("take", m.mode === "take");
  $("model").textContent = m.model || "";
  $("take-panel").hidden = m.mode !== "take";
  $("view-only").hidden = !(m.mode === "live" && !m.control);
  $("pad").classList.toggle("disabled", !m.control);
  link(m.mode === "take" ? "recording" : (m.control ? "connected" : "view only"));
  if (m.mode === "live") buildControls(m.params);
  if (m.mode === "live") buildVoices(m.voices || [], m.params);
}

const GROUPS = [
  ["the network", ["temperature", "guard"]],
  ["stimulation", ["stimulation."]],
  ["ablation", ["ablation."]],
  ["logit bias", ["bias."]],
  ["playing", ["tempo", "swing", "transpose", "velocity", "accent", "dynamics", "articulation", "hold"]],
  ["next tune", ["meter.next", "mode.next", "tune.new"]],
  ["MIDI", ["channel", "program", "panic"]],
];

function groupOf(name) {
  if (name.startsWith("voice.")) return "voices";   // in their voice's column
  for (const [title, members] of GROUPS) {
    if (members.some((p) => (p.endsWith(".") ? name.startsWith(p) : name === p))) return title;
  }
  return "other";
}

// One column per voice of the ensemble, headed by its role and instrument: its own parameters
// (voice.N.*), and for the lead the same ones under their own names (its column shows them again).
const LEAD_COLUMN = ["temperature", "stimulation.weight", "ablation.depth", "ablation.set", "bias.scale", "timbre", "velocity", "voice.1.pan", "voice.1.mute"];
function buildVoices(voices, params) {
  const panel = $("voices-panel"), box = $("voices");
  box.textContent = "";
  panel.hidden = voices.length < 2;
  if (voices.length < 2) return;
  const byName = new Map(params.map((p) => [p.name, p]));
  for (const v of voices) {
    const column = document.createElement("div");
    column.className = "voice";
    column.dataset.voice = v.voice;
    const head = document.createElement("div");
    head.className = "group";
    head.style.color = VOICE_COLOURS[(v.voice - 1) % VOICE_COLOURS.length];
    const timbre = S.values[v.timbre];
    head.textContent = `${v.voice} ${v.name}` + (timbre ? ` (${timbre})` : "") + ` ch ${v.channel}`;
    head.dataset.timbre = v.timbre;
    column.appendChild(head);
    const names = v.voice === 1 ? LEAD_COLUMN : params.map((p) => p.name).filter((n) => n.startsWith(`voice.${v.voice}.`));
    for (const name of names) if (byName.has(name)) column.appendChild(control(byName.get(name), v.voice === 1 ? name : name.slice(`voice.${v.voice}.`.length)));
    box.appendChild(column);
  }
  showValues(S.values, S.sources);
}

function buildControls(params) {
  const box = $("controls");
  box.textContent = "";
  widgets.clear();
  specs.clear();
  const byGroup = new Map();
  for (const spec of params) {
    specs.set(spec.name, spec);
    const g = groupOf(spec.name);
    if (!byGroup.has(g)) byGroup.set(g, []);
    byGroup.get(g).push(spec);
  }
  for (const [title] of [...GROUPS, ["other"]]) {   // the voices' own parameters are in their columns
    const list = byGroup.get(title);
    if (!list) continue;
    const h = document.createElement("div");
    h.className = "group";
    h.textContent = title;
    box.appendChild(h);
    for (const spec of list) box.appendChild(control(spec));
  }
  showValues(S.values, S.sources);
}

function control(spec, shown) {
  const row = document.createElement("div");
  row.className = "control";
  row.dataset.name = spec.name;
  row.title = spec.doc || "";
  const label = document.createElement("label");
  label.textContent = shown || spec.name;
  const value = document.createElement("span");
  value.className = "value";
  const source = document.createElement("span");
  source.className = "source";
  let input;
  const w = {row, value, source, busyUntil: 0, set: () => {}};
  const disabled = !S.control;
  if (spec.kind === "float" || spec.kind === "int") {
    input = document.createElement("input");
    input.type = "range";
    input.min = spec.min; input.max = spec.max; input.step = spec.step;
    input.setAttribute("aria-label", spec.name);
    const sender = throttled((v) => send({op: "set", name: spec.name, value: v}));
    input.addEventListener("input", () => {
      w.busyUntil = performance.now() + 400;
      const v = spec.kind === "int" ? parseInt(input.value, 10) : parseFloat(input.value);
      value.textContent = show(v, spec);
      sender(v);
    });
    w.set = (v) => { input.value = v; value.textContent = show(v, spec); };
  } else if (spec.kind === "bool") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.addEventListener("change", () => { w.busyUntil = performance.now() + 400; send({op: "set", name: spec.name, value: input.checked}); });
    w.set = (v) => { input.checked = !!v; value.textContent = v ? "on" : "off"; };
  } else if (spec.kind === "choice") {
    input = document.createElement("select");
    for (const c of spec.choices) { const o = document.createElement("option"); o.value = o.textContent = c; input.appendChild(o); }
    input.addEventListener("change", () => { w.busyUntil = performance.now() + 400; send({op: "set", name: spec.name, value: input.value}); });
    w.set = (v) => { input.value = v; value.textContent = ""; };
  } else if (spec.kind === "trigger") {
    input = document.createElement("button");
    input.type = "button";
    input.textContent = spec.name === "panic" ? "panic: all notes off" : spec.name;
    if (spec.name === "panic") input.className = "danger";
    input.addEventListener("click", () => send({op: "fire", name: spec.name}));
    w.set = (v) => { value.textContent = "x" + v; };
  } else {  // text and list: typed, sent on Enter or when the field is left
    input = document.createElement("input");
    input.type = "text";
    input.placeholder = spec.kind === "list" ? "e.g. 3, 17, 40" : "";
    const commit = () => {
      const text = input.value.trim();
      const v = spec.kind === "list" ? (text ? text.split(/[\s,]+/).map(Number) : []) : text;
      send({op: "set", name: spec.name, value: v});
    };
    input.addEventListener("focus", () => { w.busyUntil = Infinity; });
    input.addEventListener("blur", () => { w.busyUntil = 0; });
    input.addEventListener("change", commit);
    w.set = (v) => { input.value = Array.isArray(v) ? v.join(", ") : v; value.textContent = ""; };
  }
  input.disabled = disabled;
  input.name = spec.name;
  row.append(label, input, value, source);
  if (!widgets.has(spec.name)) widgets.set(spec.name, []);
  widgets.get(spec.name).push(w);
  return row;
}

function show(v, spec) {
  if (typeof v !== "number") return String(v);
  const text = spec && spec.kind === "int" ? String(v) : (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  return text + (spec && spec.unit && spec.unit !== "logit" ? " " + spec.unit : "");
}

// At most one message per control every 16 ms; the last value always goes out.
function throttled(fn) {
  let last = 0, timer = null, pending;
  return (v) => {
    pending = v;
    const wait = 16 - (performance.now() - last);
    if (wait <= 0 && !timer) { last = performance.now(); fn(v); return; }
    if (!timer) timer = setTimeout(() => { timer = null; last = performance.now(); fn(pending); }, Math.max(wait, 0));
  };
}

function showValues(values, sources) {
  const now = performance.now();
  for (const [name, v] of Object.entries(values)) {
    for (const w of widgets.get(name) || []) {
      if (now >= w.busyUntil) w.set(v);    // a control being moved here keeps its own value meanwhile
      w.row.classList.add("flash");
      setTimeout(() => w.row.classList.remove("flash"), 300);
    }
  }
  for (const [name, source] of Object.entries(sources)) {
    for (const w of widgets.get(name) || []) w.source.textContent = source ? "by " + source : "";
  }
  for (const head of document.querySelectorAll("#voices .group")) {   // a voice's instrument, as it changes
    const timbre = values[head.dataset.timbre];
    if (timbre !== undefined) head.textContent = head.textContent.replace(/( \([^)]*\))? ch /, ` (${timbre}) ch `);
  }
}

// a control released: show the server's value again once the page stops sending
setInterval(() => {
  const now = performance.now();
  for (const [name, list] of widgets) for (const w of list) if (w.busyUntil && now >= w.busyUntil && w.busyUntil !== Infinity) {
    w.busyUntil = 0;
    if (name in S.values) w.set(S.values[name]);
  }
}, 250);

function showHead() {
  const h = S.head;
  if (S.hello && S.hello.mode === "take") return;
  const parts = [`tune ${h.tune} M:${h.meter} K:C${h.mode}`, `bar ${h.bars}`, `${h.notes} notes`, (h.clock ? `${h.tempo} qpm (MIDI clock)` : `${Math.round(h.tempo)} BPM`),
    `onset p99 ${h.onset_p99_ms === null || h.onset_p99_ms === undefined ? "n/a" : h.onset_p99_ms.toFixed(2) + " ms"}`];
  if (h.lookahead_ms) parts.push(`chords look ahead ${(h.lookahead_ms / 1000).toFixed(2)} s`);
  if (h.late) parts.push(`late notes ${h.late}`);
  if (h.resyncs) parts.push(`resyncs ${h.resyncs}`);
  if (h.hold) parts.push("HOLD");
  if (h.link) parts.push(h.link);
  if (h.listen) parts.push(h.listen);
  if (!h.running) parts.push(`stopped: ${h.stop}`);
  $("info").textContent = parts.join("   ");
  const pads = h.pads || {};
  $("pad-x").textContent = "x: " + (pads.x || "not mapped") + (pads.x2 ? "  (2nd finger: " + pads.x2 + ")" : "");
  $("pad-y").textContent = "y: " + (pads.y || "not mapped") + (pads.y2 ? "  (2nd finger: " + pads.y2 + ")" : "");
  $("pad-map").textContent = pads.touch ? "touch: " + pads.touch : "";
}

// ---------------------------------------------------------------------------------- time
let take = null;  // a recording: {duration, playing, t0, at}
function now() {
  if (take) return take.playing ? take.at + (performance.now() / 1000 - take.t0) : take.at;
  return serverNow();
}

// ---------------------------------------------------------------------------------- sheet music
function currentTune(t) {
  // the tune of the latest note that has started, else the newest tune
  for (let i = S.notes.length - 1; i >= 0; i--) if (S.notes[i].on <= t) return S.notes[i].tune;
  let newest = 0;
  for (const n of S.tunes.keys()) newest = Math.max(newest, n);
  return newest;
}

let lastRender = 0;
function drawSheet(t) {
  const number = currentTune(t);
  if (number !== shownTune) { shownTune = number; sheetDirty = true; }
  const tune = S.tunes.get(shownTune);
  if (!tune || !sheetDirty || performance.now() - lastRender < 250) return;
  sheetDirty = false;
  lastRender = performance.now();
  // the lead's part, then each other voice's (a score: one V: each); each piece's first character, per voice
  const starts = new Map(), places = new Map();
  let abc = tune.header;
  const part = (voice, header, pieces) => {
    abc += header;
    const at = [];
    for (const piece of pieces) { at.push(abc.length); abc += piece; }
    abc += "\n";
    starts.set(voice, at);
  };
  const voices = tune.voices ? [...tune.voices.entries()].sort((a, b) => a[0] - b[0]) : [];
  part(1, voices.length ? 'V:1 name="lead"\n' : "", tune.pieces);
  for (const [voice, v] of voices) { part(voice, v.header, v.pieces); places.set(voice, v.places || {}); }
  const width = Math.max(300, $("sheet").clientWidth - 30);
  const visual = ABCJS.renderAbc("sheet", abc, {
    staffwidth: width, wrap: {minSpacing: 1.6, maxSpacing: 2.6, preferredMeasuresPerLine: 4}, add_classes: true,
    paddingleft: 4, paddingright: 4, paddingtop: 4, paddingbottom: 4,
  })[0];
  const elements = [];
  for (const line of visual.lines || []) for (const staff of line.staff || []) for (const voice of staff.voices || [])
    for (const el of voice) if (el.el_type === "note" && el.abselem) elements.push(el);
  elements.sort((a, b) => a.startChar - b.startChar);
  rendered = {number: shownTune, starts, places, elements, lit: new Set()};
  $("tune-label").textContent = `tune ${tune.number}  M:${tune.meter}  K:C${tune.mode}` + (tune.ended ? "  (ended)" : "");
}

function elementAt(char) {
  const els = rendered.elements;
  let lo = 0, hi = els.length - 1, found = null;
  while (lo <= hi) {           // the last element starting at or before char
    const mid = (lo + hi) >> 1;
    if (els[mid].startChar <= char) { found = els[mid]; lo = mid + 1; } else hi = mid - 1;
  }
  return found && char < found.endChar ? found : null;
}

function lightNotes(t) {
  if (!rendered) return;
  const lit = new Set();
  for (let i = S.notes.length - 1; i >= 0 && i >= S.notes.length - 160; i--) {
    const n = S.notes[i];
    if (n.tune !== rendered.number || n.on > t || n.off <= t) continue;
    const voice = n.vo || 1, at = rendered.starts.get(voice);
    if (!at) continue;
    const piece = n.at !== undefined ? (rendered.places.get(voice) || {})[n.at] : n.tok;   // an accompanist's by its written place
    if (piece === undefined || piece < 0) continue;
    const el = elementAt(at[piece]);
    if (el) lit.add(el);
  }
  for (const el of rendered.lit) if (!lit.has(el)) for (const svg of el.abselem.elemset || []) svg.classList.remove("sounding");
  for (const el of lit) if (!rendered.lit.has(el)) for (const svg of el.abselem.elemset || []) svg.classList.add("sounding");
  rendered.lit = lit;
}

// ---------------------------------------------------------------------------------- piano roll
function fit(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.round(canvas.clientWidth * ratio), h = Math.round(canvas.clientHeight * ratio);
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  return ratio;
}

function drawRoll(t) {
  const canvas = $("roll");
  const ratio = fit(canvas);
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  const barS = (S.head && S.head.bar_s) || 2;
  const span = take ? 8 : Math.max(4, Math.min(16, 4 * barS));   // the last four bars
  const headX = W * (take ? 0.5 : 0.9);
  const x = (time) => headX + (time - t) / span * (W * (take ? 0.5 : 0.9));
  const from = t - span * (take ? 1 : 1), to = t + span * (take ? 1 : 0.12);
  const visible = S.notes.filter((n) => n.off >= from && n.on <= to);
  let lo = 60, hi = 84;
  for (const n of visible) { lo = Math.min(lo, n.p - 2); hi = Math.max(hi, n.p + 2); }
  const row = H / (hi - lo + 1);
  const y = (p) => H - (p - lo + 1) * row;
  ctx.fillStyle = "#141925";                      // the black keys' rows
  for (let p = lo; p <= hi; p++) if ([1, 3, 6, 8, 10].includes(((p % 12) + 12) % 12)) ctx.fillRect(0, y(p), W, row);
  let tune = null;
  for (const n of visible) {
    if (n.down) { ctx.fillStyle = "#2a3142"; ctx.fillRect(x(n.on), 0, 1 * ratio, H); }   // a downbeat
    if (n.tune !== tune) {                        // a tune begins
      if (tune !== null || S.notes.indexOf(n) === 0 || (S.notes[S.notes.indexOf(n) - 1] || {}).tune !== n.tune) {
        ctx.fillStyle = "#f0b429"; ctx.fillRect(x(n.on) - ratio, 0, 2 * ratio, H);
        ctx.font = `${11 * ratio}px system-ui`; ctx.fillText(`tune ${n.tune}`, x(n.on) + 3 * ratio, 12 * ratio);
      }
      tune = n.tune;
    }
  }
  for (const n of visible) {
    const sounding = n.on <= t && t < n.off;
    ctx.fillStyle = sounding ? "#ff5a4e" : n.loop ? "#b07cf7" : VOICE_COLOURS[((n.vo || 1) - 1) % VOICE_COLOURS.length];
    const x0 = x(n.on), x1 = Math.max(x(n.off), x0 + 2 * ratio);
    ctx.fillRect(x0, y(n.p) + 1, x1 - x0 - ratio, Math.max(row - 2, 2));
    if (n.ch) { ctx.strokeStyle = "#36c5f0"; ctx.lineWidth = 2 * ratio; ctx.strokeRect(x0, y(n.p), x1 - x0 - ratio, Math.max(row, 3)); }
  }
  ctx.fillStyle = "#fff";
  ctx.fillRect(headX, 0, ratio, H);               // the play head: now
  const changed = visible.filter((n) => n.ch && n.on <= t).pop();
  $("changed").textContent = changed ? `last changed note: ${changed.ch.join(", ")}` : "";
}

// ---------------------------------------------------------------------------------- the network
let heat = null;   // {cols, rows, image (offscreen canvas), count}
const LUT = (() => {             // |h| 0..255 -> a dark-to-bright colour map (inferno-like)
  const stops = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]];
  const out = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const f = i / 255 * (stops.length - 1), k = Math.min(Math.floor(f), stops.length - 2), u = f - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = stops[k][c] * (1 - u) + stops[k + 1][c] * u;
  }
  return out;
})();

function heatReset() { heat = null; heatDirty = true; }

function addColumn(c) {
  S.columns.push(c);
  if (S.columns.length > 400) S.columns.splice(0, S.columns.length - 400);
  if (!c.u || !S.hello) return;
  const layers = S.hello.layers, hidden = S.hello.hidden, rows = layers * hidden;
  if (!heat || heat.rows !== rows) {
    const image = document.createElement("canvas");
    image.width = 360; image.height = rows;
    heat = {cols: 360, rows, image, ctx: image.getContext("2d")};
    heat.ctx.fillStyle = "#000"; heat.ctx.fillRect(0, 0, 360, rows);
  }
  const bytes = Uint8Array.from(atob(c.u), (ch) => ch.charCodeAt(0));
  const cut = new Set(S.ablation.units || []);
  const cutLayer = (S.ablation.layer || 0) - 1;
  const px = heat.ctx.createImageData(1, rows);
  for (let i = 0; i < rows; i++) {
    const layer = Math.floor(i / hidden), unit = i % hidden;
    const o = i * 4;
    if (layer === cutLayer && cut.has(unit)) { px.data[o] = 8; px.data[o + 1] = 8; px.data[o + 2] = 10; }   // cut: dark
    else { const v = bytes[i] * 3; px.data[o] = LUT[v]; px.data[o + 1] = LUT[v + 1]; px.data[o + 2] = LUT[v + 2]; }
    px.data[o + 3] = 255;
  }
  heat.ctx.drawImage(heat.image, -1, 0);   // scroll left by one column
  heat.ctx.putImageData(px, heat.cols - 1, 0);
  heatDirty = true;
}

function drawHeat() {
  if (!heatDirty) return;
  heatDirty = false;
  const canvas = $("heat"), ratio = fit(canvas), ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (heat) {
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(heat.image, 0, 0, canvas.width, canvas.height);
    const layers = S.hello.layers;
    ctx.fillStyle = "#fff"; ctx.font = `${11 * ratio}px system-ui`;
    for (let l = 0; l < layers; l++) {
      const top = l * canvas.height / layers;
      if (l) { ctx.fillStyle = "#12151c"; ctx.fillRect(0, top - ratio, canvas.width, 2 * ratio); ctx.fillStyle = "#fff"; }
      const last = S.columns[S.columns.length - 1];
      const bar = last && last.bar ? ` bar-period ${last.bar[l].toFixed(2)}` : "";
      ctx.fillText(`layer ${l + 1}${S.ablation.layer === l + 1 && S.ablation.units.length ? `: ${S.ablation.units.length} units cut (${S.ablation.mode})` : ""}${bar}`, 4 * ratio, top + 12 * ratio);
    }
  }
  const e = $("entropy"), er = fit(e), ectx = e.getContext("2d");
  ectx.fillStyle = "#0b0d12"; ectx.fillRect(0, 0, e.width, e.height);
  const cols = S.columns.slice(-360), maxE = Math.log(137);
  ectx.strokeStyle = "#36c5f0"; ectx.lineWidth = 1.5 * er; ectx.beginPath();
  cols.forEach((c, i) => {
    const px = e.width - (cols.length - i) * e.width / 360, py = e.height - c.e / maxE * (e.height - 4) - 2;
    if (i) ectx.lineTo(px, py); else ectx.moveTo(px, py);
  });
  ectx.stroke();
  const last = cols[cols.length - 1];
  ectx.fillStyle = "#dfe4ee"; ectx.font = `${11 * er}px system-ui`;
  ectx.fillText(`output entropy${last ? ` ${last.e.toFixed(2)} nats, token ${last.tok}` : ""}`, 4 * er, 12 * er);
}

// ---------------------------------------------------------------------------------- the XY pad
const fingers = new Map();   // pointerId -> {x, y, order}
let padSent = 0, padTimer = null, fingerOrder = 0;
function padSetup() {
  const pad = $("pad");
  const where = (e) => {
    const r = pad.getBoundingClientRect();
    return {x: Math.min(Math.max((e.clientX - r.left) / r.width, 0), 1), y: Math.min(Math.max(1 - (e.clientY - r.top) / r.height, 0), 1)};
  };
  pad.addEventListener("pointerdown", (e) => {
    if (!S.control) return;
    pad.setPointerCapture(e.pointerId);
    fingers.set(e.pointerId, {...where(e), order: fingerOrder++});
    padSend(); e.preventDefault();
  });
  pad.addEventListener("pointermove", (e) => {
    if (!fingers.has(e.pointerId)) return;
    Object.assign(fingers.get(e.pointerId), where(e));
    padSend(); e.preventDefault();
  });
  const up = (e) => { if (fingers.delete(e.pointerId)) padSend(true); };
  pad.addEventListener("pointerup", up);
  pad.addEventListener("pointercancel", up);
}

function padSend(now) {   // the fingers in the order they landed, at most one message per frame
  drawFingers();
  const go = () => {
    padTimer = null; padSent = performance.now();
    const touches = [...fingers.values()].sort((a, b) => a.order - b.order).slice(0, 2).map((f) => [+f.x.toFixed(4), +f.y.toFixed(4)]);
    send({op: "pad", touches});
  };
  if (now || performance.now() - padSent >= 16) { if (padTimer) clearTimeout(padTimer); go(); }
  else if (!padTimer) padTimer = setTimeout(go, 16);
}

function drawFingers() {
  const pad = $("pad");
  pad.querySelectorAll(".finger").forEach((f) => f.remove());
  [...fingers.values()].sort((a, b) => a.order - b.order).slice(0, 2).forEach((f, i) => {
    const dot = document.createElement("div");
    dot.className = "finger" + (i ? " second" : "");
    dot.style.left = (f.x * 100) + "%"; dot.style.top = ((1 - f.y) * 100) + "%";
    pad.appendChild(dot);
  });
}

// ---------------------------------------------------------------------------------- a take
function takeLoaded(m) {
  take = {duration: m.duration, playing: false, t0: 0, at: 0, audio: null, next: 0};
  const slider = $("time");
  slider.max = m.duration;
  slider.addEventListener("input", () => { take.at = parseFloat(slider.value); take.t0 = performance.now() / 1000; take.next = 0; sheetDirty = true; });
  $("play").addEventListener("click", () => {
    take.playing = !take.playing;
    take.t0 = performance.now() / 1000;
    take.next = 0;
    $("play").textContent = take.playing ? "pause" : "play";
    if (take.playing && !take.audio && window.AudioContext) take.audio = new AudioContext();
    if (!take.playing) take.at = now() - 0;
  });
  $("info").textContent = `${m.file}: ${S.tunes.size} tunes, ${S.notes.length} notes, ${fmt(m.duration)}`;
}

function fmt(s) { return `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`; }

function takeTick() {
  if (!take) return;
  let t = now();
  if (take.playing && t >= take.duration) { take.playing = false; take.at = take.duration; $("play").textContent = "play"; t = take.duration; }
  if (take.playing) take.at = t, take.t0 = performance.now() / 1000;
  $("time").value = t;
  $("time-label").textContent = `${fmt(t)} / ${fmt(take.duration)}`;
  if (take.playing && take.audio) {     // listen back: a plain plucked tone, scheduled a little ahead
    const ctx = take.audio, ahead = 0.15;
    for (const n of S.notes) {
      if (n.on < t || n.on >= t + ahead || n.on < take.next) continue;
      const when = ctx.currentTime + (n.on - t), osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.type = "triangle"; osc.frequency.value = 440 * Math.pow(2, (n.p - 69) / 12);
      gain.gain.setValueAtTime(0.0001, when);
      gain.gain.exponentialRampToValueAtTime(0.25 * (n.v || 90) / 127, when + 0.005);
      gain.gain.exponentialRampToValueAtTime(0.0001, when + Math.max(0.08, n.off - n.on) + 0.1);
      osc.connect(gain).connect(ctx.destination); osc.start(when); osc.stop(when + (n.off - n.on) + 0.2);
    }
    take.next = t + ahead;
  }
}

// ---------------------------------------------------------------------------------- the frame
let lastFrame = 0;
function frame() {
  // at most 30 drawings a second, as the state comes: a laptop beside the instrument keeps its cores for the music
  if (performance.now() - lastFrame < 32) { requestAnimationFrame(frame); return; }
  lastFrame = performance.now();
  takeTick();
  const t = now();
  try {
    drawSheet(t);
    lightNotes(t);
    drawRoll(t);
    drawHeat();
  } finally {
    requestAnimationFrame(frame);
  }
}

window.addEventListener("resize", () => { sheetDirty = true; heatDirty = true; });
padSetup();
connect();
setInterval(ping, 5000);
requestAnimationFrame(frame);

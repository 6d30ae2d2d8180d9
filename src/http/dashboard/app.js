// The callgate dashboard. No framework, no build step: served as is from
// the binary. It signs in with the API token, keeps it in this tab's
// session storage (gone when the tab closes) and sends it only in the
// Authorization header. Live updates come as Server-Sent Events read
// with fetch() (EventSource cannot set a header, and a token in a URL
// would end up in logs); it reconnects by itself.
"use strict";

const KEY = "callgate-token";
const $ = id => document.getElementById(id);
// Earlier versions kept the token in localStorage and took it from the
// URL: forget the one, and drop any token from the address bar and the
// history without using it.
localStorage.removeItem(KEY);
if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);

let token = sessionStorage.getItem(KEY) || "";
let board = null;          // the last `board` event
let series = {};           // queue → [[t_ms, depth, oldest_age_s], …]
let intervalS = 10;
let stream = null;         // AbortController of the open stream
let retry = 0;             // reconnection attempts in a row
const confirming = new Map(); // callback id → time its Stop was first clicked

const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const dur = s => {
  if (s == null || s < 0) return "";
  s = Math.floor(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
  return Math.floor(s / 3600) + " h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + " min";
};
const since = ms => ms == null ? "" : dur((Date.now() - ms) / 1000);
const time = ms => new Date(ms).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});
// A time today reads as a time; another day's (a callback scheduled for
// tomorrow morning, or waiting for its queue's callback hours) with its date.
const when = ms => new Date(ms).toDateString() === new Date().toDateString()
  ? time(ms) : `${new Date(ms).toLocaleDateString([], {weekday: "short", day: "numeric", month: "short"})} ${time(ms)}`;

function show() {
  $("login").hidden = !!token;
  $("board").hidden = !token;
  $("logout").hidden = !token;
}

function setConn(text, cls) {
  const c = $("conn");
  c.textContent = text;
  c.className = "conn " + (cls || "");
}

function signOut(message) {
  if (stream) stream.abort();
  stream = null;
  sessionStorage.removeItem(KEY);
  token = "";
  board = null;
  setConn("offline");
  $("err").textContent = message || "";
  show();
}

$("login").addEventListener("submit", e => {
  e.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
  if (!token) return;
  sessionStorage.setItem(KEY, token);
  $("err").textContent = "";
  show();
  connect();
});
$("logout").addEventListener("click", () => signOut(""));

// --- the event stream -------------------------------------------------

async function connect() {
  if (!token) return;
  if (stream) stream.abort();
  const ctl = new AbortController();
  stream = ctl;
  setConn(retry ? "reconnecting…" : "connecting…", "retry");
  let watchdog;
  const arm = () => {
    clearTimeout(watchdog);
    // The server sends at least a comment every 15 s.
    watchdog = setTimeout(() => ctl.abort(), 40000);
  };
  try {
    arm();
    const r = await fetch("/api/events", {
      headers: {Authorization: "Bearer " + token, Accept: "text/event-stream"},
      cache: "no-store",
      signal: ctl.signal,
    });
    if (r.status === 401) { clearTimeout(watchdog); signOut("token refused"); return; }
    if (!r.ok) throw new Error("events: HTTP " + r.status);
    setConn("live", "live");
    $("err").textContent = "";
    retry = 0;
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      arm();
      buf += decoder.decode(value, {stream: true});
      let at;
      while ((at = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, at);
        buf = buf.slice(at).replace(/^\r?\n\r?\n/, "");
        dispatch(block);
      }
    }
    throw new Error("stream ended");
  } catch (e) {
    clearTimeout(watchdog);
    if (stream !== ctl || !token) return; // replaced, or signed out
    retry++;
    const wait = Math.min(10, 2 ** Math.min(retry - 1, 4));
    setConn("reconnecting in " + wait + " s", "retry");
    setTimeout(() => { if (stream === ctl) connect(); }, wait * 1000);
  }
}

function dispatch(block) {
  let name = "message", data = "";
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data += (data ? "\n" : "") + value;
  }
  if (!data) return;
  const msg = JSON.parse(data);
  if (name === "board") { board = msg; render(); }
  else if (name === "series") { series = msg.queues || {}; intervalS = msg.interval_s || 10; drawCharts(); }
  else if (name === "sample") {
    for (const [q, [depth, age]] of Object.entries(msg.queues || {})) {
      const ring = series[q] || (series[q] = []);
      ring.push([msg.t, depth, age]);
      while (ring.length && ring[0][0] < msg.t - 3600 * 1000) ring.shift();
    }
    drawCharts();
  }
}

// --- rendering --------------------------------------------------------

function fig(value, label, alert) {
  return `<div class="fig${alert ? " alert" : ""}"><b>${esc(value)}</b><span>${esc(label)}</span></div>`;
}

function renderQueues() {
  const el = $("queues");
  const html = board.queues.map(q => {
    const by = q.agents.by_state || {};
    const states = Object.entries(by).filter(([, n]) => n > 0)
      .map(([s, n]) => `<span class="${esc(s)}">${esc(s.replaceAll("_", " "))} <b>${n}</b></span>`).join("");
    const oldest = q.oldest_contact_start_ms == null ? "–" : since(q.oldest_contact_start_ms);
    return `<article class="card" data-queue="${esc(q.name)}">
      <h3>${esc(q.name)} <small>limit ${q.max_contacts}</small></h3>
      <div class="figures">
        ${fig(q.contacts_in_queue, "in queue", q.contacts_in_queue >= q.max_contacts)}
        ${fig(q.calls_waiting, "calls waiting")}
        ${fig(q.callbacks_waiting, "callbacks waiting")}
        ${fig(q.callbacks_scheduled, "callbacks scheduled")}
        ${fig(q.offered, "ringing an agent")}
        <div class="fig"><b class="oldest" data-start="${q.oldest_contact_start_ms ?? ""}">${esc(oldest)}</b><span>oldest</span></div>
        ${fig(q.estimated_wait_s ? dur(q.estimated_wait_s) : "–", "estimated wait")}
        ${fig(q.agents.available + " / " + q.agents.online, "agents available / online")}
      </div>
      <div class="row">${states || "<span>no agents</span>"}</div>
      <div class="row"><span>today: handled <b>${q.today.handled}</b></span><span>abandoned <b>${q.today.abandoned}</b></span><span>callbacks connected <b>${q.today.callbacks_connected}</b></span></div>
      <div class="chart"><svg viewBox="0 0 360 60" preserveAspectRatio="none" role="img" aria-label="queue depth and oldest age, last hour"></svg>
        <div class="legend"><span class="d">— in queue</span><span class="max"></span><span class="a">- - oldest age</span></div></div>
    </article>`;
  }).join("");
  if (el.dataset.html !== html) { el.innerHTML = html; el.dataset.html = html; drawCharts(); }
}

function renderAgents() {
  document.querySelector("#agents tbody").innerHTML = board.agents.map(a => `<tr data-agent="${esc(a.user)}">
    <td>${esc(a.name || a.user)}</td>
    <td class="state ${esc(a.state)}">${esc(a.state.replaceAll("_", " "))}</td>
    <td class="since" data-start="${a.since_ms}">${since(a.since_ms)}</td>
    <td>${a.registered ? "registered" : "–"}</td>
    <td title="${esc(a.contact || "")}">${esc((a.contact || "").slice(0, 8))}</td></tr>`).join("");
}

function renderCallbacks() {
  const now = Date.now();
  for (const [id, at] of confirming) if (now - at > 5000) confirming.delete(id);
  const rows = [...board.callbacks].sort((a, b) => a.initial_start_ms - b.initial_start_ms || (a.id < b.id ? -1 : 1));
  document.querySelector("#callbacks tbody").innerHTML = rows.map(c => {
    const next = c.next_attempt_ms == null ? "" : c.next_attempt_ms <= now ? "now" : when(c.next_attempt_ms);
    const stoppable = ["scheduled", "queued", "offered"].includes(c.state);
    const conf = confirming.has(c.id);
    return `<tr data-id="${esc(c.id)}">
      <td class="number">${esc(c.number)}</td>
      <td>${esc(c.queue)}</td>
      <td class="state ${esc(c.state)}">${esc(c.state)}</td>
      <td>${c.attempts} / ${c.max_retries + 1}</td>
      <td class="next" data-at="${c.next_attempt_ms ?? ""}">${esc(next)}</td>
      <td class="since" data-start="${c.initial_start_ms}">${since(c.initial_start_ms)}</td>
      <td>${stoppable ? `<button type="button" class="stop${conf ? " confirm" : ""}" data-id="${esc(c.id)}">${conf ? "Confirm stop" : "Stop"}</button>` : ""}</td></tr>`;
  }).join("");
  $("cb-empty").hidden = rows.length > 0;
  $("cb-count").textContent = board.callbacks_pending > rows.length
    ? `(newest ${rows.length} of ${board.callbacks_pending})` : rows.length ? `(${rows.length})` : "";
}

function render() {
  if (!board) return;
  renderQueues();
  renderAgents();
  renderCallbacks();
}

// Stop: a first click arms the button, a second within 5 s stops.
document.querySelector("#callbacks").addEventListener("click", async e => {
  const b = e.target.closest("button.stop");
  if (!b) return;
  const id = b.dataset.id;
  if (!confirming.has(id)) { confirming.set(id, Date.now()); renderCallbacks(); return; }
  confirming.delete(id);
  b.disabled = true;
  b.textContent = "Stopping…";
  try {
    const r = await fetch("/api/contacts/" + encodeURIComponent(id) + "/stop", {
      method: "POST", headers: {Authorization: "Bearer " + token}, cache: "no-store",
    });
    if (r.status === 401) { signOut("token refused"); return; }
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Error(body.error || "HTTP " + r.status);
    }
  } catch (err) {
    $("err").textContent = "Stop failed: " + err.message;
    b.disabled = false;
    b.textContent = "Stop";
  }
});

// --- charts -----------------------------------------------------------

function drawCharts() {
  const now = Date.now();
  for (const card of document.querySelectorAll("#queues .card")) {
    // The samples, then the board's figures now, so the line ends at the
    // present rather than at the last 10 s sample.
    const points = (series[card.dataset.queue] || []).slice();
    const q = board && board.queues.find(v => v.name === card.dataset.queue);
    if (q) {
      const age = q.oldest_contact_start_ms == null ? 0 : Math.max(0, Math.floor((now - q.oldest_contact_start_ms) / 1000));
      points.push([now, q.contacts_in_queue, age]);
    }
    const svg = card.querySelector("svg");
    // The peaks are shown as they are; the scales never go below 1 so
    // that an empty queue draws a flat line, not a division by zero.
    const peakDepth = Math.max(0, ...points.map(p => p[1]));
    const peakAge = Math.max(0, ...points.map(p => p[2]));
    const maxDepth = Math.max(1, peakDepth);
    const maxAge = Math.max(1, peakAge);
    const x = t => Math.max(0, 360 - (now - t) / 10000);
    const line = (i, max) => points.map(p => `${x(p[0]).toFixed(1)},${(58 - 56 * p[i] / max).toFixed(1)}`).join(" ");
    const last = points[points.length - 1];
    svg.innerHTML = `<line class="axis" x1="0" y1="59" x2="360" y2="59"/>` +
      (points.length ? `<polyline class="depth" points="${line(1, maxDepth)}"/><polyline class="age" points="${line(2, maxAge)}"/>` +
        `<rect class="now" x="${(x(last[0]) - 3).toFixed(1)}" y="${(56 - 56 * last[1] / maxDepth).toFixed(1)}" width="3" height="3"/>` : "");
    card.querySelector(".legend .max").textContent = points.length
      ? `last hour · peak ${peakDepth}, ${dur(peakAge)}` : "collecting…";
  }
}

// Ages count up between events.
setInterval(() => {
  $("clock").textContent = new Date().toLocaleTimeString();
  if (!board) return;
  for (const el of document.querySelectorAll("[data-start]")) {
    if (el.dataset.start) el.textContent = since(Number(el.dataset.start));
  }
  const now = Date.now();
  for (const el of document.querySelectorAll("#callbacks .next[data-at]")) {
    const at = Number(el.dataset.at);
    if (el.dataset.at && at <= now) el.textContent = "now";
  }
}, 1000);
setInterval(drawCharts, intervalS * 1000);

show();
connect();

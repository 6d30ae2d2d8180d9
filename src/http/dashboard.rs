//! A single page showing queues and agents in real time. It holds no data
//! itself: the operator signs in with the API token, which the page keeps
//! in the tab's session storage (gone when the tab closes) and sends only
//! in the `Authorization` header, never in a URL. (The input has no
//! `name` and the form posts: even without the script, submitting it
//! cannot put the token in a URL.)

use axum::response::Html;

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>callgate</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.3rem;margin:0 0 1rem} h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;background:#fff;min-width:40rem}
th,td{padding:.35rem .7rem;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}
.available{color:#070}.on_contact,.reserved{color:#a60}.offline{color:#999}.missed{color:#b00}
#err{color:#b00} small{color:#777} #logout{float:right}
</style></head><body>
<h1>callgate <small id="updated"></small></h1>
<form id="login" method="post" hidden>
<label>API token <input id="token" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
<div id="err"></div>
<div id="board" hidden>
<button id="logout" type="button">Sign out</button>
<h2>Queues</h2>
<table id="queues"><thead><tr><th>Queue</th><th>In queue</th><th>Calls waiting</th><th>Callbacks waiting</th><th>Callbacks scheduled</th><th>Ringing</th><th>Oldest</th><th>Agents available / online</th><th>Limit</th></tr></thead><tbody></tbody></table>
<h2>Agents</h2>
<table id="agents"><thead><tr><th>Agent</th><th>State</th><th>Since</th><th>Registered</th><th>Contact</th></tr></thead><tbody></tbody></table>
</div>
<script>
const KEY = "callgate-token";
// Earlier versions kept the token in localStorage and took it from the
// URL: forget the one, and drop any token from the address bar and the
// history without using it.
localStorage.removeItem(KEY);
if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);
let token = sessionStorage.getItem(KEY) || "";
const $ = id => document.getElementById(id);
function show() { $("login").hidden = !!token; $("board").hidden = !token; }
$("login").addEventListener("submit", e => {
  e.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
  sessionStorage.setItem(KEY, token);
  show(); refresh();
});
$("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); token = ""; show(); });
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
const age = s => s == null ? "" : s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
async function get(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  if (r.status === 401) { sessionStorage.removeItem(KEY); token = ""; show(); throw new Error("token refused"); }
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}
async function refresh() {
  if (!token) return;
  try {
    const [queues, agents] = await Promise.all([get("/api/queues"), get("/api/agents")]);
    document.querySelector("#queues tbody").innerHTML = queues.map(q =>
      `<tr><td>${esc(q.name)}</td><td>${q.contacts_in_queue}</td><td>${q.calls_waiting}</td><td>${q.callbacks_waiting}</td><td>${q.callbacks_scheduled}</td><td>${q.offered}</td><td>${age(q.oldest_contact_age_s)}</td><td>${q.agents.available} / ${q.agents.online}</td><td>${q.max_contacts}</td></tr>`).join("");
    const now = Date.now();
    document.querySelector("#agents tbody").innerHTML = agents.map(a =>
      `<tr><td>${esc(a.name || a.user)}</td><td class="${esc(a.state)}">${esc(a.state.replaceAll("_", " "))}</td><td>${age(Math.max(0, Math.floor((now - a.since_ms) / 1000)))}</td><td>${a.registered ? "yes" : "no"}</td><td>${esc(a.contact || "")}</td></tr>`).join("");
    document.getElementById("err").textContent = "";
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  } catch (e) { document.getElementById("err").textContent = e.message; }
}
show(); refresh(); setInterval(refresh, 2000);
</script></body></html>
"##;

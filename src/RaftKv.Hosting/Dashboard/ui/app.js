// The RaftKv dashboard: polls /ui/api/cluster on the node that served this page once a second and draws what it says.
// No framework and no build step: plain DOM and hand-drawn SVG.
"use strict";

const pollMs = 1000;
const windowSeconds = 300;
const series = new Map(); // node id -> Map(t -> {writes, reads, p99})
let token = sessionStorage.getItem("raftkv-token") || "";
let first = true;

const el = id => document.getElementById(id);

function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) {
    const span = document.createElement("span");
    span.className = "badge " + cls;
    span.textContent = text;
    td.appendChild(span);
  } else {
    td.textContent = text;
  }
  return td;
}

function agreedLeader(members) {
  const up = members.filter(m => m.up && m.status);
  const leaders = new Set(up.map(m => m.status.leader || ""));
  if (up.length === 0 || leaders.size !== 1) return null;
  const leader = [...leaders][0];
  return leader === "" ? null : leader;
}

function renderMembers(cluster) {
  const leader = agreedLeader(cluster.members);
  const leaderStatus = cluster.members.find(m => m.id === leader && m.status)?.status;
  const progress = new Map((leaderStatus?.peers || []).map(p => [p.id, p]));
  const body = el("members").querySelector("tbody");
  body.replaceChildren();
  for (const m of cluster.members) {
    const tr = document.createElement("tr");
    tr.dataset.node = m.id;
    tr.dataset.state = m.up ? "up" : "down";
    tr.dataset.leader = String(m.id === leader);
    tr.className = m.up ? "up" : "down";
    const s = m.status;
    const p = progress.get(m.id);
    tr.appendChild(cell(m.id + (m.id === cluster.self ? " (this page)" : "")));
    tr.appendChild(m.up ? cell("up", "up") : cell("down", "down"));
    tr.lastChild.title = m.error || "";
    tr.appendChild(m.id === leader ? cell("leader", "leader") : cell(s ? s.role.toLowerCase() + " · " + m.role : m.role));
    tr.appendChild(cell(s ? String(s.term) : "–"));
    tr.appendChild(cell(s ? String(s.commit) : "–"));
    tr.appendChild(cell(s ? String(s.applied) : "–"));
    tr.appendChild(cell(m.id === leader ? "0" : p?.lag != null ? String(p.lag) : "–"));
    tr.appendChild(cell(m.id === leader ? "–" : p?.lastContactMs != null ? p.lastContactMs + " ms" : "–"));
    tr.appendChild(s ? (s.storage.failed ? cell("failed: " + s.storage.reason, "failed") : cell("ok · WAL " + Math.round(s.storage.walBytes / 1024) + " KiB")) : cell("–"));
    tr.appendChild(cell(m.clientUrl || "–"));
    body.appendChild(tr);
  }
  const upCount = cluster.members.filter(m => m.up).length;
  const summary = el("summary");
  summary.dataset.leader = leader || "";
  const term = Math.max(0, ...cluster.members.filter(m => m.status).map(m => m.status.term));
  summary.textContent = (leader ? "leader " + leader + (leaderStatus ? "" : " (down)") + " · term " + term : "no agreed leader") +
    " · " + upCount + " of " + cluster.members.length + " members up";
}

function merge(cluster) {
  for (const m of cluster.members) {
    if (!m.history) continue;
    let s = series.get(m.id);
    if (!s) series.set(m.id, s = new Map());
    for (const h of m.history) s.set(h.t, h);
  }
  const oldest = Math.floor(Date.now() / 1000) - windowSeconds;
  for (const s of series.values()) for (const t of s.keys()) if (t < oldest) s.delete(t);
}

function totals() {
  const byT = new Map();
  for (const s of series.values()) {
    for (const [t, h] of s) {
      const v = byT.get(t) || { writes: 0, reads: 0, p99: null };
      v.writes += h.writes;
      v.reads += h.reads;
      if (h.p99Ms != null) v.p99 = Math.max(v.p99 ?? 0, h.p99Ms);
      byT.set(t, v);
    }
  }
  return [...byT.entries()].sort((a, b) => a[0] - b[0]);
}

function draw(id, points) {
  const svg = el(id);
  svg.replaceChildren();
  const max = Math.max(1, ...points.map(p => p[1] ?? 0));
  const now = Math.floor(Date.now() / 1000);
  const x = t => ((t - (now - windowSeconds)) / windowSeconds) * 600;
  const y = v => 115 - (v / max) * 105;
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.filter(p => p[1] != null).map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" "));
  svg.appendChild(line);
  const last = points.length ? points[points.length - 1][1] : null;
  el(id + "-label").textContent = "· last 5 min, max " + (Math.round(max * 100) / 100) + (last != null ? " · now " + Math.round(last * 100) / 100 : "");
}

function renderCharts() {
  const t = totals();
  draw("chart-writes", t.map(([s, v]) => [s, v.writes]));
  draw("chart-reads", t.map(([s, v]) => [s, v.reads]));
  draw("chart-p99", t.map(([s, v]) => [s, v.p99]));
}

function renderLeaderChanges(changes) {
  const list = el("leader-changes");
  list.replaceChildren();
  for (const c of changes.slice(-10).reverse()) {
    const li = document.createElement("li");
    li.textContent = new Date(c.atMs).toLocaleTimeString() + " — term " + c.term + ": " + (c.leader || "no leader");
    list.appendChild(li);
  }
}

async function poll() {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  try {
    const response = await fetch("/ui/api/cluster?seconds=" + (first ? windowSeconds - 1 : 5), { headers });
    if (response.status === 401 || response.status === 403) {
      el("auth").hidden = false;
      el("summary").textContent = "a token with the read role is needed";
      return;
    }
    if (!response.ok) throw new Error("HTTP " + response.status);
    const cluster = await response.json();
    first = false;
    el("auth").hidden = true;
    el("cluster-id").textContent = "cluster " + cluster.clusterId;
    el("self").textContent = cluster.self;
    el("updated").textContent = new Date(cluster.takenAtMs).toLocaleTimeString();
    renderMembers(cluster);
    merge(cluster);
    renderCharts();
    renderLeaderChanges(cluster.leaderChanges || []);
  } catch (error) {
    el("summary").textContent = "the node serving this page does not answer (" + error.message + ")";
    el("summary").dataset.leader = "";
  } finally {
    setTimeout(poll, pollMs);
  }
}

el("token-form").addEventListener("submit", event => {
  event.preventDefault();
  token = el("token").value.trim();
  sessionStorage.setItem("raftkv-token", token);
  first = true;
});

poll();

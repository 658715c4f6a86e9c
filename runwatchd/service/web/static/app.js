// runwatchd status page. Uses only the JSON API of the daemon that served it.
// Every text that comes from a file name or the store goes into the page with textContent,
// never as HTML: a file named <script> shows as that text.
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "runwatchd.token";
const LABELS = {
  waiting: "Waiting to settle", uploading: "Uploading", uploaded: "Uploaded",
  generating: "Generating", succeeded: "Succeeded", failed: "Failed",
  attention: "Needs attention",
};
const ORDER = ["waiting", "uploading", "generating", "uploaded", "succeeded", "failed",
               "attention"];

const state = { display: "", query: "", days: "7", summary: null, rows: new Map(),
                timer: null, busy: false, manyNodes: false };
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function apiUrl(url) {
  // Links and images only ever point back at this daemon's API.
  return typeof url === "string" && url.startsWith("/api/files/") ? url : null;
}

function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
}

function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) { /* storage refused (private mode): the token lasts until the next reload */ }
  renderTokenBox();
}

function say(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = "message " + (kind || "");
  box.hidden = !text;
}

function ago(seconds) {
  if (seconds < 5) return "just now";
  if (seconds < 90) return Math.round(seconds) + " s ago";
  if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
  if (seconds < 129600) return Math.round(seconds / 3600) + " h ago";
  return Math.round(seconds / 86400) + " days ago";
}

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

async function getJson(url) {
  const reply = await fetch(url, { cache: "no-store", credentials: "omit" });
  if (!reply.ok) throw new Error(url + ": HTTP " + reply.status);
  return reply.json();
}

// -- summary: health and totals ----------------------------------------------------------------

function renderSummary(s) {
  const health = $("health");
  health.replaceChildren();
  const h = s.health;
  const watching = h.observers.filter((o) => o.alive && o.state === "watching").length;
  const chip = (text, ok) => health.appendChild(el("span", "chip " + (ok ? "ok" : "bad"), text));
  chip(h.healthy ? "daemon healthy" : "daemon unhealthy", h.healthy);
  chip(watching + "/" + h.observers.length + " folders watched", watching === h.observers.length);
  if (h.api_reachable !== null) chip(h.api_reachable ? "Runway reachable" : "Runway unreachable",
                                     h.api_reachable);
  if (h.credits !== null) chip(h.credits + " credits", h.credits > 0 && !h.credits_out);
  else if (h.credits_out) chip("out of credits", false);
  health.appendChild(el("span", "chip node", "node " + s.node));

  const paused = $("paused");
  paused.hidden = !h.paused;
  paused.textContent = h.paused ? "Paused: " + h.paused + ". Nothing is uploaded until the " +
    "admin fixes the key and reloads runwatchd." : "";

  const totals = $("totals");
  totals.replaceChildren();
  const all = el("button", "total" + (state.display === "" ? " active" : ""));
  all.type = "button";
  all.append(el("span", "n", Object.values(s.totals).reduce((a, b) => a + b, 0)),
             el("span", "label", "All"));
  all.addEventListener("click", () => filterBy(""));
  totals.appendChild(all);
  for (const key of ORDER) {
    const button = el("button", "total s-" + key + (state.display === key ? " active" : ""));
    button.type = "button";
    button.dataset.display = key;
    button.append(el("span", "n", s.totals[key] || 0), el("span", "label", LABELS[key]));
    button.addEventListener("click", () => filterBy(state.display === key ? "" : key));
    totals.appendChild(button);
  }
  renderTokenBox();
}

function renderTokenBox() {
  const enabled = state.summary && state.summary.retry_enabled;
  $("token-box").hidden = !enabled;
  const have = Boolean(token());
  $("token").hidden = have;
  $("token-save").hidden = have;
  $("token-forget").hidden = !have;
}

function filterBy(display) {
  state.display = display;
  if (state.summary) renderSummary(state.summary);
  refresh();
}

// -- files ---------------------------------------------------------------------------------------

function fileDetail(f, now) {
  const box = el("div", "detail");
  if (f.display === "uploading" && f.progress && f.progress.total > 0) {
    const bar = el("progress");
    bar.max = f.progress.total;
    bar.value = f.progress.sent;
    box.append(bar, el("span", "pct",
      Math.floor(100 * f.progress.sent / f.progress.total) + "% of " + bytes(f.progress.total)));
  } else if (f.display === "generating" && f.task) {
    const what = f.task.status ? "task " + f.task.status : (f.state === "retry"
      ? "retry requested" : "submitting");
    box.appendChild(el("span", "task", what + (f.task.endpoint ? " · " + f.task.endpoint : "")));
  } else if (f.display === "waiting") {
    box.appendChild(el("span", "muted", "still being written, or just written"));
  } else if (f.display === "uploaded" && f.runway_uri) {
    box.appendChild(el("code", "uri", f.runway_uri));
  }
  if (f.outputs.length) {
    const list = el("span", "outputs");
    for (const out of f.outputs) {
      const href = apiUrl(out.url);
      if (!href) continue;
      const link = el("a", "output");
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      const thumb = apiUrl(out.thumb);
      if (thumb) link.appendChild(image(thumb, "poster"));
      link.appendChild(el("span", null, out.name));
      list.appendChild(link);
    }
    box.appendChild(list);
  }
  if (f.reason) box.appendChild(el("div", "reason", f.reason));
  if (f.advice) box.appendChild(el("div", "advice", f.advice));
  return box;
}

function image(src, className) {
  const img = el("img", className);
  img.loading = "lazy";
  img.alt = "";
  img.decoding = "async";
  img.addEventListener("error", () => img.remove());
  img.src = src;
  return img;
}

function metaText(f, now) {
  const meta = [ago(now - f.updated_at)];
  if (f.size) meta.push(bytes(f.size));
  if (state.manyNodes) meta.push(f.node);
  return meta.join(" · ");
}

function fileRow(f, now) {
  const row = el("article", "file s-" + f.display);
  row.dataset.id = f.id;
  row.dataset.display = f.display;
  const thumbBox = el("div", "thumb");
  const thumb = apiUrl(f.thumb);
  const dot = f.name.lastIndexOf(".");
  thumbBox.appendChild(el("span", "ext", dot > 0 ? f.name.slice(dot + 1, dot + 5) : "?"));
  if (thumb) thumbBox.appendChild(image(thumb, null));
  row.appendChild(thumbBox);

  const main = el("div", "main");
  const name = el("div", "name", f.name);
  name.title = f.path;
  main.appendChild(name);
  const where = f.folder && f.path.startsWith(f.folder + "/")
    ? f.path.slice(f.folder.length + 1) : f.path;
  if (where !== f.name) main.appendChild(el("div", "where", where));
  main.appendChild(fileDetail(f, now));
  row.appendChild(main);

  const side = el("div", "side");
  side.appendChild(el("span", "badge s-" + f.display, LABELS[f.display] || f.display));
  side.appendChild(el("span", "when", metaText(f, now)));
  if (f.retryable && state.summary && state.summary.retry_enabled) {
    const button = el("button", "retry", "Retry");
    button.type = "button";
    button.addEventListener("click", () => retry(f, button));
    side.appendChild(button);
  }
  row.appendChild(side);
  return row;
}

function renderFiles(data) {
  const container = $("folders");
  const now = data.generated_at;
  const folders = new Map();
  for (const name of (state.summary ? state.summary.folders : [])) folders.set(name, []);
  for (const f of data.files) {
    const key = f.folder || "";
    if (!folders.has(key)) folders.set(key, []);
    folders.get(key).push(f);
  }
  // A cluster's page names each file's node; one host's page need not.
  const manyNodes = new Set(data.files.map((f) => f.node)).size > 1;
  if (manyNodes !== state.manyNodes) state.rows = new Map();
  state.manyNodes = manyNodes;
  const seen = new Map();
  const sections = [];
  for (const [folder, files] of folders) {
    const section = el("section", "folder");
    const head = el("h2", null, folder || "Other files");
    head.appendChild(el("span", "folder-count",
                        files.length ? files.length + " shown" : "nothing here yet"));
    section.appendChild(head);
    for (const f of files) {
      // Rows that did not change keep their element (and their loaded thumbnail).
      const key = JSON.stringify(f) + (state.summary && state.summary.retry_enabled);
      const old = state.rows.get(f.id);
      let row;
      if (old && old.key === key) {
        row = old.row;
        const when = row.querySelector(".when");
        if (when) when.textContent = metaText(f, now);
      } else {
        row = fileRow(f, now);
      }
      seen.set(f.id, { key, row });
      section.appendChild(row);
    }
    sections.push(section);
  }
  state.rows = seen;
  container.replaceChildren(...sections);
  $("count").textContent = data.truncated
    ? "showing " + data.files.length + " of " + data.total + " files"
    : data.total + (data.total === 1 ? " file" : " files");
  $("updated").textContent = "Updated " + new Date(now * 1000).toLocaleTimeString();
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const params = new URLSearchParams({ days: state.days });
    if (state.query) params.set("q", state.query);
    if (state.display) params.set("display", state.display);
    const [summary, files] = await Promise.all([getJson("/api/summary"),
                                                getJson("/api/files?" + params)]);
    state.summary = summary;
    renderSummary(summary);
    renderFiles(files);
    $("offline").hidden = true;
  } catch (e) {
    $("offline").hidden = false;
  } finally {
    state.busy = false;
  }
}

async function retry(f, button) {
  button.disabled = true;
  const headers = { "Content-Type": "application/json" };
  const secret = token();
  if (secret) headers.Authorization = "Bearer " + secret;
  try {
    const reply = await fetch("/api/retry", { method: "POST", headers, credentials: "omit",
                                              body: JSON.stringify({ path: f.path }) });
    const data = await reply.json().catch(() => ({}));
    if (reply.status === 202) {
      say("Retrying " + f.name + ".", "ok");
    } else if (reply.status === 401) {
      if (secret) setToken("");
      say("Retry refused (401): enter the admin's token first.", "bad");
    } else {
      say("Retry of " + f.name + " refused (" + reply.status + "): " +
          (data.error || data.outcome || "unknown reason"), "bad");
    }
  } catch (e) {
    say("The daemon does not answer; try again.", "bad");
  } finally {
    button.disabled = false;
    refresh();
  }
}

function schedule() {
  clearInterval(state.timer);
  state.timer = setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  let debounce = null;
  $("search").addEventListener("input", (event) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { state.query = event.target.value.trim(); refresh(); }, 200);
  });
  $("days").addEventListener("change", (event) => { state.days = event.target.value; refresh(); });
  $("token-save").addEventListener("click", () => {
    const value = $("token").value.trim();
    $("token").value = "";
    if (value) { setToken(value); say("Token kept for this tab only.", "ok"); }
  });
  $("token").addEventListener("keydown", (event) => {
    if (event.key === "Enter") $("token-save").click();
  });
  $("token-forget").addEventListener("click", () => { setToken(""); say("Token forgotten.", ""); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  refresh();
  schedule();
});

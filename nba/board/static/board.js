// The steering board: one page, a section per tab (#performance, #learning, #rules, #explorer, #outbound),
// reading nba's JSON APIs with the session cookie of /board/session. Hand-written DOM and SVG: no
// framework, no build step, nothing loaded from elsewhere (the Content-Security-Policy allows this
// origin's script only, and no inline script or style: every handler is attached here).
"use strict";

const state = {
  session: null, // GET /board/session's document; null when signed out
  rules: null, // GET /v1/rules, for channel lists and action names
  profile: null, // whether decide takes a made-up `profile` (read from /openapi.json once)
  page: null,
  timer: null, // the learning page's refresh
  visit: 0, // counts the showings of pages: a late answer for an earlier one is dropped
  versions: null,
};

const PAGES = ["performance", "learning", "rules", "explorer", "outbound"];
// the permission a page needs (access/roles.py); the explorer is a preview: explain, or decide for admins
const NEEDS = {
  performance: ["stats"],
  learning: ["stats"],
  rules: ["rules.read"],
  explorer: ["explain", "decide"],
  outbound: ["outbound.read"],
};
const LEARNING_REFRESH_MS = 5000;

// ------------------------------------------------------------------------------------------ the DOM

const SVG_NS = "http://www.w3.org/2000/svg";

function $(id) {
  return document.getElementById(id);
}

// An element with attributes (`text` sets its text, `class` its class) and children (nodes or strings).
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  return fill(node, attrs, children);
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  return fill(node, attrs, children);
}

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child);
  }
  return node;
}

function clear(node) {
  node.replaceChildren();
  return node;
}

// ------------------------------------------------------------------------------------- formatting

const INTEGER = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const PERCENT = new Intl.NumberFormat(undefined, {
  style: "percent",
  minimumFractionDigits: 1,
  maximumFractionDigits: 1,
});
const SIGNED_PERCENT = new Intl.NumberFormat(undefined, {
  style: "percent",
  maximumFractionDigits: 0,
  signDisplay: "exceptZero",
});
const DASH = "–";

function fmtInt(n) {
  return n === null || n === undefined ? DASH : INTEGER.format(n);
}

function fmtNum(x, digits = 2) {
  if (x === null || x === undefined) return DASH;
  return new Intl.NumberFormat(undefined, { maximumFractionDigits: digits }).format(x);
}

function fmtPct(x) {
  return x === null || x === undefined ? DASH : PERCENT.format(x);
}

function fmtLift(x) {
  return x === null || x === undefined ? DASH : SIGNED_PERCENT.format(x);
}

function fmtTime(iso) {
  if (!iso) return DASH;
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// A time element: people read it in their time zone; the UTC original is in its title and datetime.
function timeNode(iso) {
  return iso ? el("time", { datetime: iso, title: iso, text: fmtTime(iso) }) : DASH;
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return DASH;
  if (seconds < 10) return `${fmtNum(seconds, 1)} s`;
  if (seconds < 120) return `${INTEGER.format(seconds)} s`;
  if (seconds < 7200) return `${INTEGER.format(seconds / 60)} min`;
  if (seconds < 172800) return `${fmtNum(seconds / 3600, 1)} h`;
  return `${fmtNum(seconds / 86400, 1)} days`;
}

function isoSeconds(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function actionName(id) {
  const found = state.rules && state.rules.actions.find((a) => a.id === id);
  return found ? found.name : id;
}

// -------------------------------------------------------------------------------------- the API

class Problem extends Error {
  constructor(status, body) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// A JSON call on the session cookie; a change (not GET) carries the session's CSRF token. Answers
// other than 2xx throw a Problem holding the problem document.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && state.session && state.session.csrf) headers["X-CSRF-Token"] = state.session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Problem(0, { title: "No answer", detail: `the server did not answer (${e.message})`, errors: [] });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json")
    ? await response.json()
    : { title: response.statusText, detail: (await response.text()).slice(0, 300), errors: [] };
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

function may(...permissions) {
  const held = (state.session && state.session.permissions) || [];
  return permissions.some((p) => held.includes(p));
}

// ------------------------------------------------------------------------------------- messages

function clearMessages() {
  clear($("messages"));
}

function say(text, kind = "info") {
  const box = el("div", { class: `message ${kind}` });
  const close = el("button", { type: "button", class: "close", "aria-label": "Dismiss", text: "×" });
  close.addEventListener("click", () => box.remove());
  box.append(close, el("span", { text }));
  $("messages").append(box);
  return box;
}

// A problem as the API wrote it: what failed, the detail, and each field's message.
function showProblem(err, what) {
  if (!(err instanceof Problem)) {
    console.error(err); // a bug of this page: visible in the console too, so tests catch it
    say(`${what}: ${err.message || err}`, "error");
    return;
  }
  if (err.status === 401 && state.session) {
    state.session = null; // the session ended (expired, signed out elsewhere, key revoked)
    showSignedIn();
    go("signin");
  }
  const box = say(`${what}: ${err.body.detail || err.body.title || err.message}`, "error");
  box.dataset.code = err.body.code || "";
  box.dataset.status = String(err.status);
  const errors = err.body.errors || [];
  if (errors.length) {
    box.append(el("ul", {}, ...errors.map((e) => el("li", { text: e.field ? `${e.field}: ${e.message}` : e.message }))));
  }
}

// Runs `fn`, showing what it throws as a message.
async function guarded(what, fn) {
  try {
    return await fn();
  } catch (err) {
    showProblem(err, what);
    return undefined;
  }
}

// ------------------------------------------------------------------------------ session and tabs

async function loadSession() {
  try {
    state.session = await api("GET", "/board/session");
  } catch (err) {
    if (!(err instanceof Problem) || err.status !== 401) throw err;
    state.session = null;
  }
}

function showSignedIn() {
  const s = state.session;
  $("tabs").hidden = !s;
  $("who").hidden = !s;
  if (!s) return;
  $("who-name").textContent = s.open ? "open server (no API keys)" : s.name;
  $("who-role").textContent = s.role;
  $("sign-out").hidden = Boolean(s.open);
  for (const link of document.querySelectorAll("#tabs a")) {
    link.hidden = !may(...NEEDS[link.dataset.page]);
  }
}

function firstPage() {
  return PAGES.find((p) => may(...NEEDS[p])) || "signin";
}

function go(page) {
  if (location.hash !== `#${page}`) location.hash = `#${page}`;
  else route();
}

// Shows the page the address names (or the first the role may see), and loads its data.
function route() {
  let page = location.hash.replace(/^#/, "") || "performance";
  if (!state.session) page = "signin";
  else if (page === "signin" || !PAGES.includes(page) || !may(...NEEDS[page])) page = firstPage();
  if (page !== location.hash.replace(/^#/, "")) {
    history.replaceState(null, "", `#${page}`);
  }
  if (state.timer !== null) {
    clearTimeout(state.timer);
    state.timer = null;
  }
  const changed = state.page !== page;
  state.page = page;
  state.visit += 1;
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== `page-${page}`;
  }
  for (const link of document.querySelectorAll("#tabs a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${$(`page-${page}`).dataset.title} · nba steering board`;
  if (changed) clearMessages();
  const show = { performance: showPerformance, learning: showLearning, rules: showRules, explorer: showExplorer,
    outbound: showOutbound }[page];
  if (show) load(page, "Loading the page", show);
  if (page === "signin") $("api-key").focus();
}

// Runs a page's loader, showing what it throws; the section's data-state says how it went ("loading",
// "loaded", "failed"), for people (a test, the screenshot script) waiting for it.
async function load(page, what, fn) {
  const section = $(`page-${page}`);
  section.dataset.state = "loading";
  section.setAttribute("aria-busy", "true");
  let ok = false;
  try {
    await fn();
    ok = true;
  } catch (err) {
    showProblem(err, what);
  }
  section.dataset.state = ok ? "loaded" : "failed";
  section.removeAttribute("aria-busy");
}

async function signIn(event) {
  event.preventDefault();
  clearMessages();
  const input = $("api-key");
  const key = input.value.trim();
  await guarded("Sign-in refused", async () => {
    state.session = await api("POST", "/board/session", { api_key: key });
    input.value = "";
    state.rules = null;
    showSignedIn();
    go(firstPage());
  });
}

async function signOut() {
  await guarded("Signing out", async () => {
    await api("DELETE", "/board/session");
    state.session = null;
    showSignedIn();
    go("signin");
    say("Signed out.");
  });
}

async function rulesDocument(fresh = false) {
  if (!state.rules || fresh) state.rules = await api("GET", "/v1/rules");
  return state.rules;
}

function fillChannels(select, withAll) {
  const previous = select.value;
  const options = (state.rules ? state.rules.channels : []).map((c) => el("option", { value: c.name, text: c.name }));
  clear(select);
  if (withAll) select.append(el("option", { value: "", text: "All channels" }));
  select.append(...options);
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}

// ---------------------------------------------------------------------------------- performance

const HOURS_KEPT = 8 * 24; // the server keeps hourly counters 8 days (keys.PERF_HOUR_DAYS), days longer

function performanceQuery() {
  const hours = Number($("perf-period").value);
  if ($("perf-bucket").value === "hour" && hours > HOURS_KEPT) $("perf-bucket").value = "day";
  const bucket = $("perf-bucket").value;
  const step = (bucket === "hour" ? 3600 : 86400) * 1000;
  const now = Date.now();
  const until = Math.ceil(now / step) * step; // bucket edges are UTC hours and UTC days
  // hours: exactly the period's buckets, the current one last; days: every day the period touches
  const from = bucket === "hour" ? until - hours * 3600 * 1000 : Math.floor((now - hours * 3600 * 1000) / step) * step;
  const query = new URLSearchParams({ from: isoSeconds(from), until: isoSeconds(until), bucket });
  const channel = $("perf-channel").value;
  if (channel) query.set("channel", channel);
  return query;
}

async function showPerformance() {
  if (!state.rules && may("rules.read")) {
    await guarded("Reading the channels", () => rulesDocument());
  }
  fillChannels($("perf-channel"), true);
  await loadPerformance();
}

async function loadPerformance() {
  const query = performanceQuery();
  const data = await api("GET", `/v1/board/performance?${query}`);
  if (state.page !== "performance") return;
  $("perf-bucket-name").textContent = data.bucket;
  $("perf-range").textContent = `${fmtTime(data.from)} to ${fmtTime(data.until)} (your time zone)`;
  $("perf-table").dataset.from = data.from;
  $("perf-table").dataset.until = data.until;
  $("perf-table").dataset.bucket = data.bucket;
  drawChart($("perf-chart"), data);
  const body = clear($("perf-table").tBodies[0]);
  if (!data.rows.length) {
    body.append(emptyRow(11, "Nothing was shown in this period."));
  }
  for (const row of data.rows) {
    const tr = el("tr", { "data-action": row.action_id, "data-channel": row.channel });
    tr.append(
      el("th", { scope: "row" }, row.name || row.action_id, el("br"), el("span", { class: "ci mono", text: row.action_id })),
      el("td", { text: row.channel }),
    );
    tr.append(...performanceCells(row, data.bucket));
    body.append(tr);
  }
  const t = data.totals;
  const foot = clear($("perf-table").tFoot);
  const total = el("tr", { "data-action": "", "data-channel": $("perf-channel").value });
  total.append(el("th", { scope: "row", text: "All actions" }), el("td", { text: $("perf-channel").value || "all" }));
  total.append(...performanceCells(t, data.bucket));
  foot.append(total);
}

// Counts, rate with interval, value, sparkline, model and control, lift: each cell carries its raw number
// in data-value (data-low and data-high for an interval), so what is shown can be checked against the API.
function performanceCells(r, bucket) {
  const num = (field, value, text) => el("td", { class: "num", "data-field": field, "data-value": json(value), text });
  const rate = (field, x) =>
    el(
      "td",
      { class: "num", "data-field": field, "data-value": json(x.rate), "data-low": json(x.rate_low),
        "data-high": json(x.rate_high) },
      fmtPct(x.rate),
      x.rate === null || x.rate === undefined ? null : el("br"),
      x.rate === null || x.rate === undefined ? null : el("span", { class: "ci", text: interval(x.rate_low, x.rate_high, fmtPct) }),
    );
  const arm = (field, a) => {
    const cell = rate(field, a || { rate: null, rate_low: null, rate_high: null });
    cell.title = a ? `${fmtInt(a.accepted)} accepted of ${fmtInt(a.shown)} shown` : "";
    cell.dataset.shown = json(a ? a.shown : null);
    cell.dataset.accepted = json(a ? a.accepted : null);
    return cell;
  };
  const lift = el(
    "td",
    { class: "num", "data-field": "lift", "data-value": json(r.lift), "data-low": json(r.lift_low),
      "data-high": json(r.lift_high) },
    fmtLift(r.lift),
    r.lift === null || r.lift === undefined ? null : el("br"),
    r.lift === null || r.lift === undefined ? null : el("span", { class: "ci", text: interval(r.lift_low, r.lift_high, fmtLift) }),
  );
  const trend = el("td", { "data-field": "trend" }, sparkline(r.series ? r.series.rate : [], `acceptance rate per ${bucket}`));
  return [
    num("shown", r.shown, fmtInt(r.shown)),
    num("accepted", r.accepted, fmtInt(r.accepted)),
    num("rejected", r.rejected, fmtInt(r.rejected)),
    rate("rate", r),
    num("value", r.value, fmtNum(r.value)),
    trend,
    arm("model", r.model),
    arm("control", r.control),
    lift,
  ];
}

function emptyRow(colspan, text) {
  return el("tr", {}, el("td", { colspan, class: "empty", text }));
}

function json(value) {
  return JSON.stringify(value === undefined ? null : value);
}

function interval(low, high, format) {
  if (low === null || low === undefined || high === null || high === undefined) return "";
  return `${format(low)} to ${format(high)}`;
}

// A small line of `values` (null: a gap), for a table cell.
function sparkline(values, label) {
  const width = 90;
  const height = 22;
  const known = values.filter((v) => v !== null && v !== undefined);
  const box = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label });
  box.append(svg("title", { text: known.length ? `${label}: ${values.map((v) => (v === null ? DASH : fmtPct(v))).join(", ")}` : `${label}: nothing shown` }));
  if (!known.length) return box;
  const top = Math.max(...known) || 1;
  const x = (i) => (values.length === 1 ? width / 2 : 2 + (i * (width - 4)) / (values.length - 1));
  const y = (v) => height - 2 - (v / top) * (height - 4);
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) {
      pen = false;
      return;
    }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)} ${y(v).toFixed(1)} `;
    pen = true;
  });
  box.append(svg("path", { class: "spark", d: d.trim() }));
  const last = values.length - 1 - [...values].reverse().findIndex((v) => v !== null && v !== undefined);
  box.append(svg("circle", { class: "spark-dot", cx: x(last).toFixed(1), cy: y(values[last]).toFixed(1), r: 2 }));
  return box;
}

// Shown and accepted over time for the totals, with a dashed line at each rule change.
function drawChart(target, data) {
  const W = 1000;
  const H = 260;
  const left = 56;
  const right = 12;
  const top = 24;
  const bottom = 30;
  const from = Date.parse(data.from);
  const until = Date.parse(data.until);
  const step = data.bucket === "hour" ? 3600e3 : 86400e3;
  const series = (data.totals && data.totals.series) || {};
  const shown = series.shown || [];
  const accepted = series.accepted || [];
  const x = (t) => left + ((t - from) / Math.max(until - from, 1)) * (W - left - right);
  const peak = Math.max(1, ...shown, ...accepted);
  const yTop = niceCeiling(peak);
  const y = (v) => top + (1 - v / yTop) * (H - top - bottom);
  const total = (data.totals && data.totals.shown) || 0;
  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `Shown and accepted per ${data.bucket}: ${fmtInt(total)} shown, ${fmtInt(
      (data.totals && data.totals.accepted) || 0,
    )} accepted; ${data.rules_changes.length} rule change(s)`,
  });
  for (let i = 0; i <= 4; i += 1) {
    const v = (yTop * i) / 4;
    chart.append(
      svg("line", { class: i ? "grid" : "axis", x1: left, x2: W - right, y1: y(v), y2: y(v) }),
      svg("text", { class: "tick", x: left - 6, y: y(v) + 4, "text-anchor": "end", text: fmtInt(v) }),
    );
  }
  for (const t of timeTicks(from, until, data.bucket)) {
    chart.append(
      svg("line", { class: "axis", x1: x(t.at), x2: x(t.at), y1: H - bottom, y2: H - bottom + 4 }),
      svg("text", { class: "tick", x: x(t.at), y: H - bottom + 16, "text-anchor": "middle", text: t.label }),
    );
  }
  const points = (values) =>
    values.map((v, i) => `${x(Date.parse(data.buckets[i]) + step / 2).toFixed(1)},${y(v || 0).toFixed(1)}`).join(" ");
  if (shown.length) {
    chart.append(svg("polyline", { class: "shown", points: points(shown) }, svg("title", { text: "shown" })));
    chart.append(svg("polyline", { class: "accepted", points: points(accepted) }, svg("title", { text: "accepted" })));
  }
  if (!total) {
    chart.append(svg("text", { class: "empty-text", x: W / 2, y: H / 2, "text-anchor": "middle", text: "Nothing shown in this period" }));
  }
  for (const change of data.rules_changes) {
    const at = Date.parse(change.at);
    if (at < from || at > until) continue;
    const label = `${change.kind === "rollback" ? "rollback to" : "rules"} ${change.version}`;
    chart.append(
      svg(
        "g",
        { class: "rules-change", "data-at": change.at, "data-version": change.version, "data-kind": change.kind },
        svg("title", { text: `${label} at ${fmtTime(change.at)}${change.previous ? ` (was ${change.previous})` : ""}` }),
        svg("line", { class: "change", x1: x(at), x2: x(at), y1: top - 6, y2: H - bottom }),
        svg("text", { class: "change-label", x: x(at) + 3, y: top - 10, text: label.slice(0, 28) }),
      ),
    );
  }
  clear(target).append(chart);
}

function niceCeiling(v) {
  const magnitude = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * magnitude >= v) return m * magnitude;
  }
  return 10 * magnitude;
}

// About six labels along the time axis: hours (with the date at midnight), or days.
function timeTicks(from, until, bucket) {
  const hour = 3600e3;
  const day = 24 * hour;
  const span = until - from;
  const choices = bucket === "hour" ? [hour, 2 * hour, 3 * hour, 6 * hour, 12 * hour, day, 2 * day] : [day, 2 * day, 7 * day, 14 * day, 28 * day];
  const step = choices.find((s) => span / s <= 8) || choices[choices.length - 1];
  const ticks = [];
  for (let t = Math.ceil(from / step) * step; t <= until; t += step) {
    const d = new Date(t);
    const label =
      step >= day || (d.getUTCHours() === 0 && bucket === "hour")
        ? d.toLocaleDateString(undefined, { day: "numeric", month: "short" })
        : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    ticks.push({ at: t, label });
  }
  return ticks;
}

// ------------------------------------------------------------------------------- learning health

async function showLearning() {
  const visit = state.visit;
  renderLearning(await api("GET", "/v1/board/learning"));
  state.timer = setTimeout(() => refreshLearning(visit), LEARNING_REFRESH_MS);
}

// Every few seconds while the page is open (route() stops it: a visit counts each showing of a page).
async function refreshLearning(visit) {
  if (state.visit !== visit) return;
  try {
    const data = await api("GET", "/v1/board/learning");
    if (state.visit !== visit) return;
    clearMessages();
    renderLearning(data);
  } catch (err) {
    if (state.visit !== visit) return;
    clearMessages();
    showProblem(err, "Reading the learning health");
  }
  if (state.visit === visit && state.session) {
    state.timer = setTimeout(() => refreshLearning(visit), LEARNING_REFRESH_MS);
  }
}

function armOrder(name) {
  return { model: 0, control: 1 }[name] ?? 2;
}

function renderLearning(d) {
  const section = $("page-learning");
  section.dataset.refreshed = String(Number(section.dataset.refreshed || "0") + 1);
  const card = (name, value, title, warn) =>
    el("div", { class: warn ? "card warn" : "card", "data-field": name, title }, el("dl", {}, el("dt", { text: title }), el("dd", { text: value })));
  clear($("learning-cards")).append(
    card("model_version", d.model_version ?? DASH, "Model version"),
    card("model_age", fmtDuration(d.model_age_seconds), "Model age"),
    card("learner_lag", fmtDuration(d.learner_lag_seconds), "Learner lag", d.learner_lag_seconds > 30),
    card("inbox_pending", fmtInt(d.inbox_pending), "Events waiting to be learned", d.inbox_pending > 10000),
    card("decisions", fmtInt(d.decisions), "Decisions (this process)"),
    card("degraded_share", `${fmtPct(d.degraded_share)} (${fmtInt(d.degraded)})`, "Degraded answers", d.degraded_share > 0.01),
  );
  const process = d.process ? ` from process ${d.process.pid}, running since ${fmtTime(d.process.started_at)}` : "";
  const updated = d.model_updated_at ? `; model updated ${fmtTime(d.model_updated_at)}` : "; the model has not learned yet";
  $("learning-updated").textContent = `Last read ${new Date().toLocaleTimeString()}${process}${updated}.`;
  const arms = clear($("learning-arms").tBodies[0]);
  const names = Object.keys(d.arms || {}).sort((x, y) => armOrder(x) - armOrder(y) || x.localeCompare(y));
  for (const name of names.length ? names : ["model", "control"]) {
    const a = (d.arms && d.arms[name]) || {};
    arms.append(
      el(
        "tr",
        { "data-arm": name },
        el("th", { scope: "row", text: name }),
        el("td", { class: "num", text: fmtInt(a.shown) }),
        el("td", { class: "num", text: fmtInt(a.rewards) }),
        el("td", { class: "num", text: fmtPct(a.rate) }),
      ),
    );
  }
  const errors = clear($("learning-errors").tBodies[0]);
  const entries = Object.entries(d.errors || {});
  if (!entries.length) errors.append(emptyRow(2, "none"));
  for (const [name, count] of entries) {
    errors.append(el("tr", {}, el("th", { scope: "row", text: name.replaceAll("_", " ") }), el("td", { class: "num", text: fmtInt(count) })));
  }
}

// ------------------------------------------------------------------------------------------ rules

async function showRules() {
  const [rules, versions] = await Promise.all([rulesDocument(true), api("GET", "/v1/rules/versions")]);
  if (state.page !== "rules") return;
  state.versions = versions;
  $("rules-current").textContent = versions.current || rules.version;
  $("rollback-box").hidden = !may("rules.change");
  $("rollback").disabled = versions.versions.length < 2;
  const list = clear($("rules-versions").tBodies[0]);
  for (const v of versions.versions) {
    list.append(
      el(
        "tr",
        { "data-version": v.version, class: v.current ? "selected" : undefined },
        el("td", { class: "mono", text: v.version }),
        el("td", {}, timeNode(v.published_at)),
        el("td", { text: v.current ? "current" : "" }),
      ),
    );
  }
  const changes = clear($("rules-changes").tBodies[0]);
  if (!versions.changes.length) changes.append(emptyRow(4, "none yet"));
  for (const c of versions.changes) {
    changes.append(
      el(
        "tr",
        {},
        el("td", {}, timeNode(c.at)),
        el("td", { text: c.kind === "rollback" ? "rolled back" : "published" }),
        el("td", { class: "mono", text: c.version }),
        el("td", { class: "mono", text: c.previous || DASH }),
      ),
    );
  }
  for (const [id, index] of [["diff-from", 1], ["diff-to", 0]]) {
    const select = clear($(id));
    for (const v of versions.versions) {
      select.append(el("option", { value: v.version, text: `${v.version}${v.published_at ? ` (${fmtTime(v.published_at)})` : ""}` }));
    }
    select.selectedIndex = Math.min(index, versions.versions.length - 1);
  }
  const actions = clear($("rules-actions").tBodies[0]);
  for (const a of rules.actions) {
    actions.append(
      el(
        "tr",
        {},
        el("th", { scope: "row", class: "mono", text: a.id }),
        el("td", { text: a.name }),
        el("td", { text: a.group }),
        el("td", { text: a.channels.join(", ") }),
        el("td", { class: "num", text: fmtNum(a.value) }),
        el("td", { class: "num", text: fmtNum(a.weight) }),
        el("td", { class: "mono", text: a.file }),
      ),
    );
  }
}

async function showDiff(event) {
  event.preventDefault();
  const from = $("diff-from").value;
  const to = $("diff-to").value;
  await guarded("Comparing the versions", async () => {
    const data = await api("GET", `/v1/rules/diff?${new URLSearchParams({ from, to })}`);
    const target = clear($("diff"));
    if (!data.files.length) {
      target.append(el("p", { class: "note", text: `${from} and ${to} hold the same rules.` }));
      return;
    }
    target.append(el("p", { class: "note", text: `${data.files.length} file(s) differ from ${data.from} to ${data.to}.` }));
    for (const file of data.files) {
      const pre = el("pre", { "aria-label": `changes to ${file.path}` });
      for (const line of file.diff.split("\n")) {
        pre.append(el("span", { class: diffClass(line), text: line || " " }));
      }
      target.append(
        el("div", { class: "diff-file", "data-path": file.path }, el("h4", {}, `${file.path} `, el("span", { class: `status ${file.status}`, text: file.status })), pre),
      );
    }
  });
}

function diffClass(line) {
  if (line.startsWith("+++") || line.startsWith("---")) return "meta";
  if (line.startsWith("@@")) return "hunk";
  if (line.startsWith("+")) return "add";
  if (line.startsWith("-")) return "del";
  return "same";
}

function askRollback() {
  const versions = (state.versions && state.versions.versions) || [];
  const current = state.versions ? state.versions.current : "";
  const previous = versions.find((v) => !v.current);
  $("rollback-text").textContent =
    `Every server makes the version published before ${current}` +
    `${previous ? ` (${previous.version}, of ${fmtTime(previous.published_at)})` : ""} current again, within about a second. ` +
    "A later edit of the rules directory publishes again.";
  $("rollback-dialog").returnValue = "";
  $("rollback-dialog").showModal();
  $("rollback-cancel").focus();
}

async function rollbackClosed() {
  if ($("rollback-dialog").returnValue !== "confirm") return;
  await guarded("Rollback refused", async () => {
    const done = await api("POST", "/v1/rules/rollback");
    say(`Rolled back: the rules in use are now ${done.version} (were ${done.previous}).`);
    await showRules();
  });
}

// --------------------------------------------------------------------------------------- explorer

async function showExplorer() {
  await rulesDocument();
  fillChannels($("ex-channel"), false);
  limitForChannel();
  if (state.profile === null) {
    // the made-up profile arrives with a later server: offer it only when decide's schema has it
    try {
      const doc = await api("GET", "/openapi.json");
      const props = doc.components.schemas.DecideRequest.properties || {};
      state.profile = "profile" in props;
    } catch (err) {
      if (!(err instanceof Problem)) throw err;
      state.profile = false;
    }
  }
  $("ex-profile-box").hidden = !state.profile;
}

function limitForChannel() {
  const channel = state.rules && state.rules.channels.find((c) => c.name === $("ex-channel").value);
  if (!channel) return;
  $("ex-limit").max = channel.max_limit;
  $("ex-limit").placeholder = `${channel.default_limit} (the channel's default; at most ${channel.max_limit})`;
}

function parseJsonField(id, field, errors) {
  const text = $(id).value.trim();
  if (!text) return undefined;
  try {
    const value = JSON.parse(text);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      errors.push({ field, message: "must be a JSON object, such as {\"reason\": \"billing\"}" });
      return undefined;
    }
    return value;
  } catch (e) {
    errors.push({ field, message: `is not valid JSON (${e.message})` });
    return undefined;
  }
}

function explorerRequest() {
  const errors = [];
  const body = { customer_id: $("ex-customer").value.trim(), channel: $("ex-channel").value };
  const context = parseJsonField("ex-context", "context", errors);
  if (context !== undefined) body.context = context;
  if (state.profile) {
    const profile = parseJsonField("ex-profile", "profile", errors);
    if (profile !== undefined) body.profile = profile;
  }
  const limit = $("ex-limit").value.trim();
  if (limit) body.limit = Number(limit);
  body.explain = true;
  body.dry_run = true; // always a preview: nothing recorded, no cap used up
  if (errors.length) throw new Problem(400, { detail: "the form has mistakes", errors });
  return body;
}

async function explore(event) {
  event.preventDefault();
  clearMessages();
  await guarded("Preview refused", async () => {
    const decision = await api("POST", "/v1/decide", explorerRequest());
    renderDecision(decision);
  });
}

const STAGES = {
  ranked: "proposed",
  arbitration: "outranked",
  threshold: "do-nothing bar",
  contact_policy: "contact policy",
  contact_limit: "contact limit",
  quiet_hours: "quiet hours",
};

function renderDecision(d) {
  $("ex-result").hidden = false;
  $("ex-result").dataset.decisionId = d.decision_id;
  $("ex-summary").textContent =
    `Customer ${d.customer_id} on ${d.channel}: ${d.actions.length} action(s). Rules ${d.rules_version}, model ` +
    `${d.model_version}${d.dry_run ? ", a dry run (nothing recorded)" : ""}${d.degraded ? ", DEGRADED (storage slow: a fallback answer)" : ""}. ` +
    `Segments: ${d.segments.length ? d.segments.join(", ") : "none"}.`;
  const ranked = clear($("ex-ranked").tBodies[0]);
  if (!d.actions.length) ranked.append(emptyRow(8, "No action: nothing beat the do-nothing bar, or nothing was eligible (see below)."));
  for (const a of d.actions) {
    ranked.append(
      el(
        "tr",
        { "data-action": a.action_id },
        el("td", { class: "num", text: a.rank }),
        el("th", { scope: "row" }, actionName(a.action_id), el("br"), el("span", { class: "ci mono", text: a.action_id })),
        el("td", { text: a.group }),
        el("td", { class: "num", text: fmtNum(a.score, 3) }),
        el("td", { class: "num", text: fmtPct(a.propensity) }),
        el("td", { class: "num", text: fmtPct(a.probability) }),
        el("td", { class: "num", text: fmtNum(a.value) }),
        el("td", { text: a.reason || "" }),
      ),
    );
  }
  const explain = clear($("ex-explain").tBodies[0]);
  for (const item of d.explain || []) {
    const proposed = item.stage === "ranked";
    explain.append(
      el(
        "tr",
        { "data-action": item.action_id, "data-stage": item.stage, "data-proposed": String(proposed) },
        el("th", { scope: "row" }, actionName(item.action_id), el("br"), el("span", { class: "ci mono", text: item.action_id })),
        el("td", { class: proposed ? "yes" : "no", text: proposed ? `yes, rank ${item.rank}` : "no" }),
        el("td", { text: STAGES[item.stage] || item.stage.replaceAll("_", " ") }),
        el("td", { class: "why", text: item.why || item.reason || "" }),
      ),
    );
  }
}

// --------------------------------------------------------------------------------------- outbound

const SUMMARIES = 20; // the newest runs whose report is read for the list (one request each)

async function showOutbound() {
  const { runs } = await api("GET", "/v1/outbound/runs");
  if (state.page !== "outbound") return;
  const body = clear($("outbound-runs").tBodies[0]);
  if (!runs.length) body.append(emptyRow(9, "No run in the last 30 days."));
  const cells = {};
  for (const run of runs) {
    const open = el("button", { type: "button", class: "link mono", text: run.run_id });
    open.addEventListener("click", () => guarded("Reading the run", () => showRun(run.run_id)));
    const request = run.request || {};
    const selected = el("td", { class: "num", text: "…" });
    const value = el("td", { class: "num", text: "…" });
    cells[run.run_id] = [selected, value];
    body.append(
      el(
        "tr",
        { "data-run": run.run_id },
        el("th", { scope: "row" }, open),
        el("td", { class: `state-${run.state}`, text: run.state }),
        el("td", { text: request.channel || DASH }),
        el("td", { text: population(request) }),
        el("td", { text: request.dry_run ? "yes" : "no" }),
        el("td", {}, timeNode(run.started_at)),
        el("td", { text: run.started_by || DASH }),
        selected,
        value,
      ),
    );
  }
  // the list leaves reports out; the newest runs' summaries are read alongside
  await Promise.all(
    runs.map(async (run, i) => {
      const [selected, value] = cells[run.run_id];
      if (i >= SUMMARIES) {
        selected.textContent = value.textContent = "";
        return;
      }
      try {
        const doc = await api("GET", `/v1/outbound/runs/${encodeURIComponent(run.run_id)}`);
        const totals = (doc.report && doc.report.totals) || null;
        selected.textContent = totals ? fmtInt(totals.selected) : DASH;
        value.textContent = totals ? fmtNum(totals.expected_value) : DASH;
      } catch (err) {
        selected.textContent = value.textContent = "?";
        showProblem(err, `Reading run ${run.run_id}`);
      }
    }),
  );
}

function population(request) {
  if (request.segment) return `segment ${request.segment}`;
  if (request.customers !== null && request.customers !== undefined) return `${fmtInt(request.customers)} listed`;
  return "everyone";
}

async function showRun(runId) {
  const doc = await api("GET", `/v1/outbound/runs/${encodeURIComponent(runId)}`);
  for (const row of $("outbound-runs").tBodies[0].rows) row.classList.toggle("selected", row.dataset.run === runId);
  const target = clear($("outbound-report"));
  target.hidden = false;
  target.dataset.run = runId;
  const r = doc.report || {};
  const pairs = (entries) => el("dl", {}, ...entries.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
  target.append(el("h3", { text: `Run ${runId}` }));
  const progress = doc.progress || {};
  const c = r.customers || {};
  const t = r.totals || {};
  const p = r.population || {};
  target.append(
    el(
      "div",
      { class: "columns report" },
      pairs([
        ["State", doc.state + (doc.state === "running" ? ` (${progress.phase}, ${fmtInt(progress.customers_read)} read)` : "")],
        ["Channel", (doc.request || {}).channel || DASH],
        ["Dry run", (doc.request || {}).dry_run ? "yes: nothing recorded" : "no"],
        ["Send at", timeNode(r.send_at)],
        ["Started", timeNode(doc.started_at)],
        ["By", doc.started_by || DASH],
        ["Rules / model", `${r.rules_version || DASH} / ${r.model_version || DASH}`],
        ...(doc.error ? [["Error", String(doc.error.detail || doc.error.message || JSON.stringify(doc.error))]] : []),
      ]),
      pairs([
        ["Population", p.kind ? `${p.kind}${p.segment ? ` ${p.segment}` : ""}: ${fmtInt(p.customers)} customers` : DASH],
        ["Without a profile", fmtInt(p.without_profile)],
        ["Channel closed", Object.entries(p.channel_closed || {}).map(([why, n]) => `${fmtInt(n)} ${why}`).join("; ") || DASH],
        ["With candidates", fmtInt(c.with_candidates)],
        ["Nothing eligible", fmtInt(c.nothing_eligible)],
        ["Cut by capacity", fmtInt(c.cut_by_capacity)],
      ]),
      pairs([
        ["Selected", fmtInt(t.selected)],
        ["Expected accepts", fmtNum(t.expected_accepts, 1)],
        ["Expected value", fmtNum(t.expected_value)],
        ["Share of the best possible", r.comparison ? fmtPct(r.comparison.share_of_upper_bound) : DASH],
      ]),
    ),
  );
  const rows = (r.actions || []).map((a) =>
    el(
      "tr",
      { "data-action": a.action_id },
      el("th", { scope: "row" }, actionName(a.action_id), el("br"), el("span", { class: "ci mono", text: a.action_id })),
      el("td", { class: "num", text: fmtInt(a.selected) }),
      el("td", { class: "num", text: fmtInt(a.without_capacity) }),
      el("td", { class: "num", text: fmtNum(a.expected_accepts, 1) }),
      el("td", { class: "num", text: fmtNum(a.expected_value) }),
    ),
  );
  if (rows.length) {
    target.append(
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          { class: "numbers" },
          el("caption", { text: "Per action" }),
          el(
            "thead",
            {},
            el("tr", {}, ...["Action", "Selected", "Without capacity limits", "Expected accepts", "Expected value"].map((h) => el("th", { scope: "col", text: h }))),
          ),
          el("tbody", {}, ...rows),
        ),
      ),
    );
  }
  target.focus();
}

// ------------------------------------------------------------------------------------------ start

async function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("perf-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearMessages();
    load("performance", "Reading the performance", loadPerformance);
  });
  for (const id of ["perf-period", "perf-bucket", "perf-channel"]) {
    $(id).addEventListener("change", () => load("performance", "Reading the performance", loadPerformance));
  }
  $("diff-form").addEventListener("submit", showDiff);
  $("rollback").addEventListener("click", askRollback);
  $("rollback-dialog").addEventListener("close", rollbackClosed);
  $("explorer-form").addEventListener("submit", explore);
  $("ex-channel").addEventListener("change", limitForChannel);
  $("outbound-refresh").addEventListener("click", () => load("outbound", "Reading the runs", showOutbound));
  $("outbound-report").tabIndex = -1;
  window.addEventListener("hashchange", route);
  await guarded("Reading the session", loadSession);
  showSignedIn();
  route();
  document.body.dataset.ready = "true"; // for tests and the screenshot script: the first page is on its way
}

start();

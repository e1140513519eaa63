// The streamrec dashboard: fetches /dashboard/api/* every few seconds and draws each panel
// with plain DOM and SVG (no library, no build step). Data goes into the page through
// textContent only, never as HTML, since titles and reasons come from producers.
"use strict";

const REFRESH_MS = 5000;
const BUCKETS = 60;
const SHOWN = 10;
const COLORS = ["#2f6fde", "#e8833a", "#1f9d55", "#b04fc6", "#d64545", "#17a2b8", "#8a6d3b",
  "#5c6bc0", "#9e9d24", "#6d4c41"];
const SVG = "http://www.w3.org/2000/svg";
const KEY_STORE = "streamrec.apiKey";

// --- small helpers -------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.setAttribute("class", value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const fixed = (n, digits) => (typeof n === "number" ? n.toFixed(digits) : "–");

function when(seconds) {
  if (!seconds) return "–";
  const date = new Date(seconds * 1000);
  return date.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function cell(text, cls) {
  return el("td", cls ? { class: cls, text } : { text });
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

async function call(path, body) {
  const headers = { Accept: "application/json" };
  if (apiKey()) headers["x-api-key"] = apiKey();
  const options = { headers };
  if (body !== undefined) {
    options.method = "POST";
    options.body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, options);
  let document_ = null;
  try {
    document_ = await response.json();
  } catch (_) {
    document_ = { message: `${response.status} ${response.statusText}` };
  }
  if (!response.ok) {
    const error = new Error(document_.message || `${response.status}`);
    error.status = response.status;
    throw error;
  }
  return document_;
}

const problems = new Map();

function report(panel, error) {
  if (error) problems.set(panel, `${panel}: ${error.message}`);
  else problems.delete(panel);
  const box = $("problem");
  const unauthorized = [...problems.values()].some((m) => m.includes("API key"));
  box.hidden = problems.size === 0;
  box.textContent = unauthorized
    ? "This API requires a key: enter it above. " + [...problems.values()].join(" · ")
    : [...problems.values()].join(" · ");
}

// --- event rate by type ----------------------------------------------------------------

function drawEvents(data) {
  const width = data.bucketSeconds;
  const buckets = data.buckets;
  const types = Object.keys(data.types);
  const minutes = Math.round((buckets.length * width) / 60);
  $("events-window").textContent = buckets.length
    ? `events/s, ${width} s buckets of event time, last ${minutes} min up to ${when(
        buckets[buckets.length - 1].start + width,
      )}`
    : "no events counted yet";
  const W = Math.max(320, $("events-chart").clientWidth || 900);
  const H = 240, left = 48, bottom = 22, top = 8, right = 8;
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "event rate by type" });
  const rates = types.map((t) => buckets.map((b) => (b.byType[t] || 0) / width));
  const peak = Math.max(1e-9, ...rates.flat());
  const x = (i) => left + ((W - left - right) * i) / Math.max(1, buckets.length - 1);
  const y = (v) => H - bottom - ((H - bottom - top) * v) / peak;
  for (const fraction of [0, 0.5, 1]) {
    const value = peak * fraction;
    svg.append(el("svg:line", { x1: left, x2: W - right, y1: y(value), y2: y(value),
      class: "axis" }));
    svg.append(el("svg:text", { x: left - 4, y: y(value) + 4, "text-anchor": "end",
      text: value >= 10 ? value.toFixed(0) : value.toFixed(2) }));
  }
  const ticks = Math.min(5, buckets.length);
  for (let n = 0; n < ticks; n++) {
    const i = Math.round(((buckets.length - 1) * n) / Math.max(1, ticks - 1));
    const label = new Date(buckets[i].start * 1000).toISOString().slice(11, 16);
    const anchor = n === 0 ? "start" : n === ticks - 1 ? "end" : "middle";
    svg.append(el("svg:text", { x: x(i), y: H - 6, "text-anchor": anchor, text: label }));
  }
  rates.forEach((series, k) => {
    const points = series.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg.append(el("svg:polyline", { points, fill: "none", stroke: COLORS[k % COLORS.length],
      "stroke-width": 2, "data-type": types[k] }));
  });
  $("events-chart").replaceChildren(svg);
  $("events-legend").replaceChildren(
    ...types.map((t, k) => {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = COLORS[k % COLORS.length];
      return el("span", { "data-type": t }, swatch, `${t}: `,
        el("strong", { text: fmt(data.types[t]) }), " events");
    }),
  );
}

// --- attribution by source -------------------------------------------------------------

function drawAttribution(data) {
  const sources = Object.entries(data.sources);
  const total = sources.reduce((sum, [, n]) => sum + n, 0);
  if (!sources.length) {
    $("attribution").replaceChildren(el("p", { class: "muted", text: "no events counted yet" }));
    return;
  }
  $("attribution").replaceChildren(
    ...sources.map(([name, count], k) => {
      const bar = el("svg:svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none" },
        el("svg:rect", { x: 0, y: 0, height: 10, width: (100 * count) / total,
          fill: COLORS[k % COLORS.length] }));
      return el("div", { class: "bar", "data-source": name },
        el("span", { class: "name", title: name, text: name }), bar,
        el("span", { class: "count", text: `${fmt(count)} (${((100 * count) / total).toFixed(0)}%)` }));
    }),
  );
}

// --- Kafka: consumer lag and dead letters ------------------------------------------------

function drawKafka(data) {
  $("lag-total").textContent = fmt(data.lag);
  $("lag-group").textContent = `consumer group ${data.consumerGroup}`;
  fill($("topics").tBodies[0], data.topics.map((t) =>
    el("tr", { "data-topic": t.name }, cell(t.name),
      cell(t.exists ? fmt(t.records) : "missing", "num"),
      cell(t.lag === null ? "" : fmt(t.lag), "num"))));
  $("dead-count").textContent = fmt(data.deadLetters.count);
  fill($("dead-latest").tBodies[0], data.deadLetters.latest.map((d) =>
    el("tr", {}, cell(when(d.timestamp / 1000)), cell(d.reason, "reason"), cell(d.origin || ""))));
  const sources = data.sources || [];
  $("sources-none").hidden = sources.length > 0;
  fill($("sources").tBodies[0], sources.map((s) =>
    el("tr", { "data-source": s.name }, cell(s.name), cell(s.topic), cell(s.format),
      cell(s.target), cell(`v${s.version}`, "num"), cell(fmt(s.records), "num"),
      cell(s.lag === null ? "" : fmt(s.lag), "num"), cell(fmt(s.deadLetters), "num"))));
}

// --- model versions ------------------------------------------------------------------------

function drawModels(data) {
  if (data.datasetGroup) $("group").textContent = `dataset group ${data.datasetGroup}`;
  fill($("models").tBodies[0], data.versions.map((v) => {
    const m = v.metrics || {};
    const name = el("td", {}, v.version);
    if (v.current) name.append(el("span", { class: "tag", text: "current" }));
    if (v.version === data.serving) name.append(el("span", { class: "tag", text: "served" }));
    return el("tr", { class: v.current ? "current" : "", "data-version": v.version }, name,
      cell(when(v.created)), cell(v.mode || (v.complete ? "" : "publishing")),
      cell(v.trainingSeconds === null || v.trainingSeconds === undefined
        ? "–" : `${v.trainingSeconds.toFixed(1)} s`, "num"),
      cell(fmt(v.interactions), "num"), cell(fmt(v.items), "num"),
      cell(fixed(m["ndcg@10"], 4), "num"), cell(fixed(m["hr@10"], 4), "num"),
      cell(fixed(m["mrr@25"], 4), "num"), cell(fixed(m.coverage, 4), "num"));
  }));
}

// --- user explorer -----------------------------------------------------------------------

function itemLabel(id, metadata, extra) {
  const fields = metadata[id] || {};
  const title = fields.TITLE || fields.NAME || id;
  const details = Object.entries(fields)
    .filter(([k]) => !["TITLE", "NAME", "CREATION_TIMESTAMP"].includes(k))
    .map(([k, v]) => `${k.toLowerCase()}: ${v}`).join(" · ");
  return el("li", { "data-item": id }, el("span", { class: "title", text: title }),
    title === id ? null : el("span", { class: "meta", text: ` (${id})` }), ...(extra || []),
    details ? el("div", { class: "meta", text: details }) : null);
}

function columnsOf(metadata) {
  const names = new Set();
  for (const fields of Object.values(metadata)) Object.keys(fields).forEach((k) => names.add(k));
  return [...names].slice(0, 50);
}

async function explore(kind, id) {
  $("subject-summary").textContent = "loading…";
  let subject;
  try {
    subject = await call(`dashboard/api/subject?${kind}=${encodeURIComponent(id)}`);
  } catch (error) {
    $("subject").hidden = true;
    $("subject-summary").textContent = error.message;
    return;
  }
  const who = subject.subject;
  const stitched = subject.stitchedFrom ? ` (session ${subject.stitchedFrom} is stitched to it)` : "";
  $("subject-summary").textContent =
    `${who.kind} ${who.id}${stitched}: ${fmt(subject.historyLength)} events in Redis`;
  const meta = subject.metadata;
  fill($("subject-events").tBodies[0], subject.events.map((e) =>
    el("tr", {}, cell(when(e.timestamp)), cell(e.eventType || ""),
      cell(e.eventValue === null || e.eventValue === undefined ? "" : String(e.eventValue)),
      el("td", {}, el("ul", { class: "items plain" }, itemLabel(e.itemId, meta))))));
  drawChange(subject.lastEventChange, meta);
  const stored = subject.stored;
  $("subject-stored").textContent = stored
    ? `precomputed list in Redis: ${fmt(stored.length)} items by model ${stored.version}, ` +
      `refreshed ${when(stored.updated / 1000)}`
    : "no precomputed list in Redis yet";
  $("subject").hidden = false;
  const body = { numResults: SHOWN, [kind]: id };
  const columns = columnsOf(meta);
  if (columns.length) body.metadataColumns = { ITEMS: columns };
  try {
    const recs = await call("recommendations", body);
    const known = { ...meta };
    recs.itemList.forEach((entry) => { known[entry.itemId] = entry.metadata || {}; });
    $("subject-recs").replaceChildren(...recs.itemList.map((entry) => itemLabel(entry.itemId,
      known, [el("span", { class: "meta", text: ` ${entry.score.toFixed(4)}` }),
        ...(entry.reason || []).map((r) => el("span", { class: "tag", text: r }))])));
  } catch (error) {
    $("subject-recs").replaceChildren(el("li", { class: "muted", text: error.message }));
  }
}

function drawChange(change, meta) {
  if (!change || !change.after) {
    $("change-event").textContent = "";
    $("subject-change").replaceChildren(el("li", { class: "muted",
      text: "no model is served yet, or no events" }));
    $("subject-left").textContent = "";
    return;
  }
  const last = change.lastEvent;
  const title = (meta[last.itemId] || {}).TITLE || last.itemId;
  $("change-event").textContent = `${last.eventType || "event"} on ${title}`;
  $("subject-change").replaceChildren(...change.after.map((entry) => {
    let tag;
    if (entry.previousRank === null) tag = el("span", { class: "tag new", text: "new" });
    else if (entry.previousRank > entry.rank) {
      tag = el("span", { class: "tag", text: `▲ ${entry.previousRank - entry.rank}` });
    } else if (entry.previousRank < entry.rank) {
      tag = el("span", { class: "tag down", text: `▼ ${entry.rank - entry.previousRank}` });
    }
    return itemLabel(entry.itemId, meta, [tag]);
  }));
  const left = change.left.map((id) => (meta[id] || {}).TITLE || id);
  $("subject-left").textContent = left.length
    ? `left the top ${SHOWN}: ${left.join(", ")}`
    : `the same ${SHOWN} items as before, reordered`;
}

// --- wiring --------------------------------------------------------------------------------

const PANELS = [
  ["events", `dashboard/api/events?buckets=${BUCKETS}`, (d) => { drawEvents(d); drawAttribution(d); }],
  ["kafka", "dashboard/api/kafka", drawKafka],
  ["models", "dashboard/api/models", drawModels],
];

async function refresh() {
  await Promise.all(PANELS.map(async ([name, path, draw]) => {
    try {
      draw(await call(path));
      report(name, null);
    } catch (error) {
      report(name, error);
    }
  }));
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.loaded = "true";
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
    refresh();
  });
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("search-id").value.trim();
    if (id) explore($("search-kind").value, id);
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});

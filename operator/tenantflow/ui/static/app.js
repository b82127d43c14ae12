// tenantflow's web UI: a few views drawn from the server's JSON (ui/views.py decides what
// they show). Every string from the cluster is put in the page as text, never as HTML.
"use strict";

const $main = () => document.getElementById("main");
let live = null; // the AbortController of the view's live stream

// ------------------------------------------------------------------ access
(function keepToken() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token) {
    sessionStorage.setItem("tf-token", token);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.hash);
  }
})();

function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra || {});
  const token = sessionStorage.getItem("tf-token");
  if (token) h["X-Tenantflow-Token"] = token;
  const bearer = sessionStorage.getItem("tf-bearer");
  if (bearer) h["Authorization"] = "Bearer " + bearer;
  return h;
}

async function api(path, options) {
  const res = await fetch(path, Object.assign({}, options, { headers: headers(options && options.headers) }));
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (res.status === 401 && /Bearer/.test(body.error || "")) { login(); throw new Error(body.error); }
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function login() {
  render(h("h1", {}, "Sign in"),
    h("p", {}, "Paste your Kubernetes token (kubectl create token …, or your OIDC id token). It stays in this tab."),
    h("form", { onsubmit: (e) => { e.preventDefault(); sessionStorage.setItem("tf-bearer", e.target.token.value.trim()); route(); } },
      h("input", { name: "token", type: "password", size: 60 }), " ", h("button", {}, "Sign in")));
}

// a server-sent event stream read with fetch (EventSource cannot send our headers)
async function stream(path, onData) {
  if (live) live.abort();
  const ctl = live = new AbortController();
  while (!ctl.signal.aborted) {
    try {
      const res = await fetch(path, { headers: headers(), signal: ctl.signal });
      const reader = res.body.getReader(), decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const chunk = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          const data = chunk.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (chunk.startsWith("event: failed")) { // not allowed to watch: no live updates
            const note = document.getElementById("live");
            if (note) note.textContent = "Live updates off: " + JSON.parse(data).error;
            return;
          }
          if (data) onData(JSON.parse(data));
        }
      }
    } catch (e) { if (ctl.signal.aborted) return; }
    await new Promise((r) => setTimeout(r, 1000)); // the watch ended: open the next one
  }
}

// ------------------------------------------------------------------ DOM helpers
function h(tag, attrs, ...children) {
  const el = document.createElementNS(tag === "svg" || attrs.svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "svg" || v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const s = (tag, attrs, ...children) => h(tag, Object.assign({ svg: true }, attrs), ...children);
const badge = (text, cls) => h("span", { class: "badge " + (cls || text) }, text);
const json = (v) => h("pre", {}, v === undefined || v === null ? "—" : JSON.stringify(v, null, 2));
const link = (href, text) => h("a", { href }, text);
// the tenant code's own frames (status: a step's error, or the instance's), as text
const traceback = (error) => error && error.traceback ? h("pre", { class: "traceback" }, error.traceback) : "";
const when = (t) => (t ? new Date(t).toLocaleString() : "—");
function render(...nodes) { $main().replaceChildren(...nodes); }
function table(head, rows, attrs) { // rows: <tr>s, or a <tbody> the caller keeps filling
  const body = rows instanceof Node && rows.tagName === "TBODY" ? rows : h("tbody", {}, rows);
  return h("table", attrs || {}, h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))), body);
}
function failed(e) { render(h("p", { class: "error", id: "error" }, String(e.message || e))); }

// ------------------------------------------------------------------ views
async function tenantsView() {
  const data = await api("/api/tenants");
  if (!data.listed) {
    render(h("h1", {}, "Tenants"), h("p", { class: "muted" }, "You may not list Tenants; your namespaces: "),
      h("ul", {}, data.namespaces.map((n) => h("li", {}, link(`#/instances?namespace=${encodeURIComponent(n)}`, n)))));
    return;
  }
  // a <meter>, not a styled bar: the Content-Security-Policy allows no inline styles
  const meter = (used, max) => h("span", {}, h("meter", { min: 0, max: max || 1, value: Math.min(used, max || 1) }), ` ${used} / ${max ?? "—"}`);
  render(h("h1", {}, "Tenants"), table(
    ["Tenant", "Phase", "Running / max", "Queued", "Starts last min", "Storage", "Sandbox"],
    data.tenants.map((t) => h("tr", { "data-tenant": t.name },
      h("td", {}, link(`#/instances?namespace=${encodeURIComponent(t.namespace)}`, t.name)),
      h("td", {}, badge(t.phase)),
      h("td", {}, meter(t.running, t.maxConcurrent)),
      h("td", {}, t.queued),
      h("td", {}, `${t.startsLastMinute} (≤ ${t.maxStartsPerSecond ?? "—"}/s)`),
      h("td", {}, `${(t.storageBytes / 1048576).toFixed(1)} MiB / ${t.storage ?? "—"}`),
      h("td", {}, badge(t.sandboxReady ? "ready" : "not ready", t.sandboxReady ? "ok" : "bad"), " ", h("span", { class: "muted" }, t.sandboxMessage)))),
    { id: "tenants" }));
}

const PHASES = ["Queued", "Running", "Waiting", "Paused", "Complete", "Errored", "Terminated"];
const AGES = { "": "any age", "3600": "last hour", "86400": "last day", "604800": "last week" };

async function instancesView(params) {
  const q = new URLSearchParams(params);
  const rows = new Map();
  const body = h("tbody", {});
  const counts = h("div", { class: "counts", id: "counts" });
  const more = h("button", { class: "secondary", id: "more" }, "More");
  const tenants = await api("/api/tenants").catch(() => ({ namespaces: [] }));
  const field = (name, el) => h("label", {}, name, el);
  const sel = (name, options) => h("select", { name }, Object.entries(options).map(([v, t]) => h("option", { value: v, selected: q.get(name) === v || (!q.get(name) && v === "") }, t)));
  const form = h("form", { class: "filters", onsubmit: (e) => {
      e.preventDefault();
      const f = new FormData(e.target), next = new URLSearchParams();
      for (const [k, v] of f.entries()) if (v) next.set(k, v);
      location.hash = "#/instances?" + next.toString();
    } },
    field("Tenant", sel("namespace", Object.assign({ "": "all" }, Object.fromEntries(tenants.namespaces.map((n) => [n, n]))))),
    field("Definition", h("input", { name: "definition", value: q.get("definition") || "", size: 14 })),
    field("Revision", h("input", { name: "revision", value: q.get("revision") || "", size: 4 })),
    field("Phase", sel("phase", Object.assign({ "": "any" }, Object.fromEntries(PHASES.map((p) => [p, p]))))),
    field("Age", sel("age", AGES)),
    h("button", {}, "Filter"));
  const young = (r) => !q.get("age") || Date.now() - new Date(r.created) <= 1000 * Number(q.get("age"));
  const matches = (r) => (!q.get("namespace") || r.namespace === q.get("namespace")) && young(r);
  let total = null;
  const recount = () => {
    const by = {};
    for (const r of rows.values()) by[r.phase] = (by[r.phase] || 0) + 1;
    counts.replaceChildren(h("span", {}, total !== null ? `${total} instances` : `${rows.size} shown`),
      ...PHASES.filter((p) => by[p]).map((p) => h("span", { "data-phase": p }, badge(p), " ", by[p])));
  };
  const rowOf = (r) => h("tr", { "data-instance": r.name, "data-key": r.namespace + "/" + r.name },
    h("td", {}, link(`#/instance/${r.namespace}/${r.name}`, r.name)),
    h("td", {}, r.namespace.replace(/^tenant-/, "")),
    h("td", {}, link(`#/definition/${r.namespace}/${r.definition}`, r.definition)),
    h("td", {}, r.revision ?? "—"),
    h("td", { class: "phase" }, badge(r.phase), r.archived ? h("span", { class: "muted" }, " archived") : ""),
    h("td", {}, r.steps ?? "—"),
    h("td", {}, when(r.created)),
    h("td", { class: "muted" }, r.error || (r.waitingFor ? `${r.waitingFor.kind} ${r.waitingFor.step || ""}` : "")));
  const put = (r, top) => {
    const old = rows.get(r.namespace + "/" + r.name);
    const tr = rowOf(r);
    rows.set(r.namespace + "/" + r.name, r);
    if (old) body.querySelector(`tr[data-key="${CSS.escape(r.namespace + "/" + r.name)}"]`)?.replaceWith(tr);
    else if (top) body.prepend(tr); else body.append(tr);
  };
  let cont = "";
  const load = async () => {
    const page = await api("/api/instances?" + new URLSearchParams(Object.assign(Object.fromEntries(q), cont ? { continue: cont } : {})));
    page.items.filter(matches).forEach((r) => put(r, false));
    cont = page.continue; total = page.total;
    more.hidden = !cont; recount();
    if (page.archivedUnread) counts.append(h("span", { class: "muted" }, page.archivedUnread));
  };
  more.onclick = load;
  render(h("h1", {}, "Instances"), form, counts, h("p", { class: "muted", id: "live" }),
    table(["Instance", "Tenant", "Definition", "Rev", "Phase", "Steps", "Created", "Waiting / error"], body, { id: "instances" }), more);
  await load();
  stream("/api/watch/instances?" + q.toString(), (ev) => {
    const r = ev.data, key = r.namespace + "/" + r.name;
    if (ev.type === "DELETED") { rows.delete(key); body.querySelector(`tr[data-key="${CSS.escape(key)}"]`)?.remove(); }
    else if (rows.has(key) || (ev.type === "ADDED" && matches(r))) put(r, true);
    recount();
  });
}

function timelineSvg(t) {
  const W = 980, left = 190, right = 150, rowH = 26, span = (new Date(t.to) - new Date(t.from)) || 1;
  const x = (time) => left + (W - left - right) * ((new Date(time) - new Date(t.from)) / span);
  const bottom = 8 + rowH * t.bars.length, clock = (time) => new Date(time).toLocaleTimeString();
  const svg = s("svg", { width: W, height: bottom + 24, id: "timeline" },
    s("line", { x1: left, x2: W - right, y1: bottom, y2: bottom, class: "wait" }),
    s("text", { x: left, y: bottom + 16 }, clock(t.from)),
    s("text", { x: W - right, y: bottom + 16, "text-anchor": "end" }, clock(t.to)));
  t.bars.forEach((b, i) => {
    const y = 8 + i * rowH, x0 = x(b.start), x1 = Math.max(x(b.end), x0 + 3);
    const cls = `bar-${b.state === "Errored" || b.state === "Retrying" ? b.state : b.kind}`;
    const what = [`${b.name} (${b.kind}) ${b.state}`, b.attempts ? `${b.attempts} attempt(s)` : "",
      b.error ? `last error ${b.error.name}: ${b.error.message}` : "", b.waitUntil ? `until ${when(b.waitUntil)}` : ""].filter(Boolean).join("\n");
    const g = s("g", { "data-step": b.name }, s("title", {}, what),
      s("text", { x: 4, y: y + 14 }, b.name.length > 26 ? b.name.slice(0, 25) + "…" : b.name),
      s("rect", { x: x0, y, width: x1 - x0, height: 18, rx: 3, class: cls }));
    if (b.waitUntil) g.append(s("rect", { x: x1, y, width: Math.max(x(b.waitUntil) - x1, 2), height: 18, rx: 3, class: "wait" }));
    const note = b.kind === "do" ? `×${b.attempts} attempt${b.attempts === 1 ? "" : "s"}`
      : b.kind === "sleep" ? (b.open ? `sleeps until ${when(b.waitUntil)}` : "slept")
      : b.kind === "event" ? (b.open ? `waits for ${b.eventType}` : `got ${b.eventType || "event"}`)
      : b.kind === "child" ? `child ${b.child || ""}`
      : b.kind === "compensate" ? `compensation: ${b.error ? b.error.name : ""} ${b.state}`
      : b.kind === "rollback" ? `×${b.attempts} rollback attempt${b.attempts === 1 ? "" : "s"} ${b.state}` : "";
    g.append(s("text", { x: W - right + 6, y: y + 14, class: "note" }, note));
    svg.append(g);
  });
  const now = Math.min(x(t.now), W - right);
  svg.append(s("line", { x1: now, x2: now, y1: 0, y2: bottom, class: "now" }, s("title", {}, "now")));
  return svg;
}

async function instanceView(ns, name) {
  const draw = (d) => {
    const act = async (action, body) => {
      const out = h("span", { class: "toast muted" });
      try { out.textContent = (await api(`/api/instances/${ns}/${name}/${action}`, { method: "POST", body: JSON.stringify(body || {}), headers: { "Content-Type": "application/json" } })).done; }
      catch (e) { out.textContent = e.message; out.className = "toast error"; }
      document.getElementById("result").replaceChildren(out);
    };
    const eventForm = h("form", { id: "send-event", onsubmit: (e) => {
        e.preventDefault();
        let payload = null;
        try { payload = e.target.payload.value ? JSON.parse(e.target.payload.value) : null; } catch (err) { document.getElementById("result").replaceChildren(h("span", { class: "toast error" }, "payload: " + err.message)); return; }
        act("event", { type: e.target.type.value, payload });
      } },
      h("input", { name: "type", placeholder: "event type", value: d.timeline.bars.find((b) => b.open && b.eventType)?.eventType || "" }),
      h("input", { name: "payload", placeholder: '{"payload": "JSON"}', size: 30 }),
      h("button", {}, "Send event"));
    const errors = d.timeline.bars.filter((b) => b.error || b.failures.length).map((b) => h("li", {}, h("b", {}, b.name),
      ` — ${b.attempts} attempt(s)` + (b.error ? `, last: ${b.error.name}: ${b.error.message}` : ", then it succeeded"),
      traceback(b.error),
      h("ul", {}, b.failures.map((f) => h("li", { class: "muted" }, `attempt ${f.attempt} at ${when(f.at)}: ${f.name}: ${f.message}`)))));
    const ask = async (e) => {
      e.preventDefault();
      const args = e.target.args.value ? `?args=${encodeURIComponent(e.target.args.value)}` : "";
      try {
        const r = await api(`/api/instances/${ns}/${name}/queries/${encodeURIComponent(e.target.query.value)}${args}`);
        lastQuery = h("pre", { class: "json" }, JSON.stringify(r.value, null, 2) + `\n(as of ${r.asOf?.steps ?? "?"} journal entries, ${r.asOf?.phase ?? ""})`);
      } catch (err) { lastQuery = h("p", { class: "error" }, err.message); }
      document.getElementById("query-result").replaceChildren(lastQuery);
    };
    const queriesBox = (d.queries || []).length
      ? [h("h2", {}, "Queries"),
        h("form", { id: "queries", onsubmit: ask },
          h("select", { name: "query" }, d.queries.map((q) => h("option", { value: q }, q))),
          h("input", { name: "args", placeholder: "args: JSON list (optional)", size: 24 }),
          h("button", {}, "Query")),
        h("div", { id: "query-result" }, lastQuery || "")]
      : "";
    render(
      h("h1", {}, name, " ", badge(d.phase)),
      h("p", { class: "muted" }, "Tenant ", ns.replace(/^tenant-/, ""), " · definition ", link(`#/definition/${ns}/${d.definition}`, d.definition), ` · revision ${d.revision ?? "—"} · started ${when(d.startedAt)}`,
        d.nextWakeAt ? ` · next wake-up ${when(d.nextWakeAt)}` : ""),
      h("div", { class: "actions" },
        h("button", { class: "secondary", onclick: () => act("pause") }, "Pause"),
        h("button", { class: "secondary", onclick: () => act("resume") }, "Resume"),
        h("button", { class: "secondary", onclick: () => confirm("Terminate " + name + "?") && act("terminate") }, "Terminate"),
        h("button", { class: "secondary", id: "terminate-rollback", onclick: () => confirm("Terminate " + name + " and roll back its completed steps?") && act("terminate-rollback") }, "Terminate with rollback"),
        h("button", { class: "secondary", onclick: () => confirm("Run " + name + " again from the start?") && act("restart") }, "Restart"),
        eventForm, h("span", { id: "result" })),
      d.compensation ? h("p", { class: "error", id: "compensation" }, `Compensation ${d.compensation.state}: triggered by ${d.compensation.trigger.name}: ${d.compensation.trigger.message}; ${d.compensation.done} of ${d.compensation.owed} rollback(s) done`) : "",
      d.errorInfo ? h("p", { class: "error" }, `${d.errorInfo.name}${d.errorInfo.step ? " in step " + d.errorInfo.step : ""}: ${d.errorInfo.message}`) : "",
      traceback(d.errorInfo),
      h("h2", {}, "Timeline"), d.timeline.bars.length ? timelineSvg(d.timeline) : h("p", { class: "muted" }, "No steps yet."),
      errors.length ? h("ul", { id: "step-errors" }, errors) : "",
      h("div", { class: "grid" },
        h("div", {}, h("h2", {}, "Params"), json(d.params)),
        h("div", {}, h("h2", {}, "Output"), d.outputRef ? h("p", {}, "Stored in the tenant's store: ", d.outputRef) : json(d.output))),
      queriesBox,
      h("h2", {}, "Event inbox"),
      table(["#", "Type", "Arrived", "Consumed by", "Payload"], d.inbox.map((e) => h("tr", {}, h("td", {}, e.index), h("td", {}, e.type), h("td", {}, when(e.arrived)), h("td", {}, e.consumedBy || "—"), h("td", {}, JSON.stringify(e.payload)))), { id: "inbox" }),
      d.resets.length ? [h("h2", {}, "Resets"), table(["When", "By", "To step", "Revisions", "Reason"], d.resets.map((r) => h("tr", {}, h("td", {}, when(r.at)), h("td", {}, r.by), h("td", {}, r.toStep || "(retry)"), h("td", {}, `${r.fromRevision} → ${r.toRevision}`), h("td", {}, r.refused ? "refused: " + r.refused : r.reason))))] : "",
      h("h2", {}, "Logs ", logStepPick(d.timeline.bars)),
      logsPane(),
      h("h2", {}, "Kubernetes Events"),
      table(["Time", "Type", "Reason", "Message"], (d.events.length ? d.events : lastEvents).map((e) => h("tr", {}, h("td", {}, when(e.time)), h("td", {}, e.type), h("td", {}, e.reason), h("td", {}, e.message)))));
  };
  // the Logs pane: every line read so far (oldest first), shown for one step or all, and
  // followed while the instance runs (new lines are appended in place, no redraw)
  let logs = [];
  let logStep = "";
  let logsUnread = null;
  const logRow = (g) => h("tr", {}, h("td", {}, when(g.at)), h("td", {}, g.step ? `${g.step} #${g.attempt}` : "run"), h("td", {}, g.level), h("td", {}, g.message, Object.keys(g.fields || {}).length ? h("span", { class: "muted" }, " " + JSON.stringify(g.fields)) : ""));
  const shownLogs = () => logs.filter((g) => !logStep || g.step === logStep);
  const logsPane = () => shownLogs().length
    ? table(["Time", "Step", "Level", "Message"], shownLogs().map(logRow), { id: "logs" })
    : h("p", { class: "muted", id: "logs" }, logsUnread || "No log lines.");
  const logStepPick = (bars) => h("select", { id: "log-step", onchange: (e) => { logStep = e.target.value; document.getElementById("logs").replaceWith(logsPane()); } },
    h("option", { value: "" }, "all steps"),
    [...new Set(bars.map((b) => b.name))].map((n) => h("option", { value: n, selected: n === logStep }, n)));
  const moreLogs = (lines) => {
    logs = logs.concat(lines);
    const fresh = lines.filter((g) => !logStep || g.step === logStep);
    const pane = document.getElementById("logs");
    if (!fresh.length || !pane) return;
    if (pane.tagName === "TABLE") pane.tBodies[0].append(...fresh.map(logRow));
    else pane.replaceWith(logsPane());
  };
  let lastEvents = [];
  let lastQuery = null;
  const d = await api(`/api/instances/${ns}/${name}`);
  lastEvents = d.events;
  logs = d.logs || [];
  logsUnread = d.logsUnread;
  draw(d);
  stream(`/api/watch/instances?namespace=${encodeURIComponent(ns)}&name=${encodeURIComponent(name)}`, (ev) => {
    if (ev.type !== "DELETED" && document.activeElement?.tagName !== "INPUT" && document.activeElement?.tagName !== "SELECT") draw(ev.data);
  });
  followLogs(ns, name, live.signal, () => (logs.length ? logs[logs.length - 1].seq : 0), moreLogs);
}

// an instance's new log lines, every 2 s (at once while a read comes back full), until it
// has ended and its last lines are read, or the page moves on
async function followLogs(ns, name, signal, after, onLines) {
  let full = false;
  while (!signal.aborted) {
    if (!full) await new Promise((r) => setTimeout(r, 2000));
    if (signal.aborted) return;
    try {
      const r = await api(`/api/instances/${ns}/${name}/logs?after=${after()}`);
      if (signal.aborted) return;
      if (r.lines.length) onLines(r.lines);
      full = r.lines.length >= r.limit;
      if (r.ended && !full) return;
    } catch (e) { full = false; } // its sandbox may be waking or restarting: read again
  }
}

async function definitionView(ns, name, params) {
  const d = await api(`/api/definitions/${ns}/${name}`);
  const q = new URLSearchParams(params);
  const revs = d.revisions.map((r) => r.revision);
  const a = q.get("a") || revs[Math.max(0, revs.length - 2)], b = q.get("b") || revs[revs.length - 1];
  const pick = (key, value) => h("select", { name: key }, revs.map((r) => h("option", { value: r, selected: String(r) === String(value) }, r)));
  const diff = h("div", { id: "diff" });
  const ro = d.rollout;
  render(
    h("h1", {}, name),
    h("p", { class: "muted" }, `Tenant ${ns.replace(/^tenant-/, "")} · active ${d.active ?? "—"} · stable ${d.stable ?? "—"}` + (d.pinned ? ` · pinned ${d.pinned}` : "") + (d.rolledBackTo ? ` · rolled back to ${d.rolledBackTo}` : "")),
    ro ? h("p", { id: "rollout" }, "Rollout of revision ", ro.revision, " ", badge(ro.phase), ` ${ro.weight ?? 0}% of new instances · ${ro.complete ?? 0} complete, ${ro.errored ?? 0} errored · ${ro.message || ""}`) : "",
    h("h2", {}, "Revisions"),
    table(["Revision", "", "SHA-256", "Created", "Files", "Instances"], d.revisions.map((r) => h("tr", { "data-revision": r.revision },
      h("td", {}, link(`#/instances?namespace=${ns}&definition=${name}&revision=${r.revision}`, r.revision)),
      h("td", {}, r.revision === d.active ? badge("active", "ok") : "", " ", r.revision === d.pinned ? badge("pinned") : "", " ", r.revision === d.stable ? badge("stable") : ""),
      h("td", { class: "muted" }, r.sha256.slice(0, 12)), h("td", {}, when(r.createdAt)), h("td", {}, r.files.join(", ")),
      h("td", {}, Object.entries(r.instances).map(([p, n]) => h("span", {}, badge(p), ` ${n} `))))), { id: "revisions" }),
    d.countedAll ? "" : h("p", { class: "muted" }, "Instance counts cover the first 5,000 instances."),
    h("h2", {}, "Compare revisions"),
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); location.hash = `#/definition/${ns}/${name}?a=${e.target.a.value}&b=${e.target.b.value}`; } },
      h("label", {}, "Left", pick("a", a)), h("label", {}, "Right", pick("b", b)), h("button", {}, "Compare")),
    diff);
  if (revs.length < 1) return;
  const out = await api(`/api/definitions/${ns}/${name}/diff?a=${a}&b=${b}`);
  diff.replaceChildren(...out.files.map((f) => h("div", {}, h("h2", {}, f.file, " ", badge(f.status)),
    h("table", { class: "diff" }, f.rows.map((r) => h("tr", { class: r.op },
      h("td", { class: "no" }, r.leftNo ?? ""), h("td", { class: "l" }, r.left ?? ""),
      h("td", { class: "no" }, r.rightNo ?? ""), h("td", { class: "r" }, r.right ?? "")))))));
}

// ------------------------------------------------------------------ routing
async function route() {
  if (live) { live.abort(); live = null; }
  const [path, query] = (location.hash.slice(1) || "/tenants").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "instances") await instancesView(query || "");
    else if (parts[0] === "instance") await instanceView(parts[1], parts[2]);
    else if (parts[0] === "definition") await definitionView(parts[1], parts[2], query || "");
    else await tenantsView();
  } catch (e) { failed(e); }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  api("/api/whoami").then((w) => { document.getElementById("whoami").textContent = w.user; }).catch(() => {});
  route();
});

// gridtwin dashboard: every value comes from the JSON API with the token kept in sessionStorage by the login page.
// Plots are Bokeh json_item documents (/api/v1/dashboard/*) embedded with the BokehJS served by this server.
// Live update: /api/v1/dashboard/version is polled; when it changes, plots and tables are reloaded.
"use strict";

const TOKEN_KEY = "gridtwin.token";
const POLL_MS = 3000;
const OPERATE_ROLES = new Set(["operator", "admin"]);
const TRAFO_SOURCE = "gridtwin-trafos";

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  role: null,
  version: null,
  trafo: null,
  plan: null,
  views: {},
  busy: false,
};

if (!state.token) {
  window.location.replace("/");
}

const $ = (id) => document.getElementById(id);

function showMessage(text, isError = true) {
  const el = $("message");
  el.textContent = text || "";
  el.hidden = !text;
  el.classList.toggle("error", isError);
}

async function api(path, options = {}) {
  const headers = { Authorization: "Bearer " + state.token, ...(options.headers || {}) };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { ...options, headers, body: options.body && JSON.stringify(options.body) });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    window.location.replace("/?expired=1");
    throw new Error(body.detail || "token refused");
  }
  if (!response.ok) {
    throw new Error(body.detail || path + ": HTTP " + response.status);
  }
  return body;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  return td;
}

function shortTime(iso) {
  return iso ? String(iso).replace("T", " ").replace(/(:\d\d)(\.\d+)?(\+00:00|Z)?$/, "$1") : "";
}

function fillTable(table, rows, makeRow, emptyText) {
  const body = table.querySelector("tbody");
  body.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(emptyText);
    td.colSpan = table.querySelectorAll("thead th").length;
    td.className = "empty";
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const row of rows) {
    body.append(makeRow(row));
  }
}

// ---- plots -------------------------------------------------------------------------------------------------------

async function embed(targetId, item) {
  const target = $(targetId);
  if (state.views[targetId]) {
    state.views[targetId].clear();
  }
  target.replaceChildren();
  const views = await Bokeh.embed.embed_item(item, targetId);
  state.views[targetId] = views;
  target.dataset.rendered = "true";
  return views;
}

function trafoSource(views) {
  const root = views && views.roots[0];
  return root ? root.model.document.get_model_by_name(TRAFO_SOURCE) : null;
}

function highlightTrafo() {
  const views = state.views["network-plot"];
  const renderer = trafoSource(views);
  if (!renderer) {
    return;
  }
  const ids = renderer.data_source.data.trafo_id;
  const i = Array.from(ids).indexOf(state.trafo);
  const wanted = i >= 0 ? [i] : [];
  if (JSON.stringify(renderer.data_source.selected.indices) !== JSON.stringify(wanted)) {
    renderer.data_source.selected.indices = wanted;
  }
}

async function loadNetwork() {
  const source = $("loading-source").value;
  const item = await api("/api/v1/dashboard/network?source=" + encodeURIComponent(source));
  await embed("network-plot", item);
  highlightTrafo();
}

async function loadTransformer() {
  if (!state.trafo) {
    if (state.views["trafo-plot"]) {
      state.views["trafo-plot"].clear();
      delete state.views["trafo-plot"];
    }
    $("trafo-plot").textContent = "no transformer selected: click one on the network plot or choose it above";
    $("trafo-plot").dataset.rendered = "false";
    return;
  }
  const item = await api("/api/v1/dashboard/transformer/" + encodeURIComponent(state.trafo));
  await embed("trafo-plot", item);
}

// Called by the network plot's selection callback (a click on a transformer) and by the selector ("" or null: none).
window.gridtwinSelectTrafo = function (trafoId) {
  trafoId = trafoId || null;
  if (trafoId === state.trafo) {
    return;
  }
  state.trafo = trafoId;
  $("trafo-select").value = trafoId || "";
  $("request-plan").textContent = trafoId ? "Request plan for " + trafoId : "Request plan";
  $("request-plan").disabled = !trafoId || !OPERATE_ROLES.has(state.role);
  highlightTrafo();
  loadTransformer().catch((err) => showMessage(err.message));
};

// Viewport coordinates of a transformer marker on the network plot (used by the browser test to click it).
window.gridtwinTrafoPoint = function (trafoId) {
  const views = state.views["network-plot"];
  const renderer = trafoSource(views);
  if (!renderer) {
    return null;
  }
  const plotView = views.roots[0];
  const i = Array.from(renderer.data_source.data.trafo_id).indexOf(trafoId);
  if (i < 0) {
    return null;
  }
  const sx = plotView.frame.x_scale.compute(renderer.data_source.data.x[i]);
  const sy = plotView.frame.y_scale.compute(renderer.data_source.data.y[i]);
  const rect = plotView.canvas_view.el.getBoundingClientRect();
  return { x: rect.left + sx, y: rect.top + sy };
};

// ---- tables ------------------------------------------------------------------------------------------------------

async function loadAlarms() {
  const active = !$("alarms-all").checked;
  const doc = await api("/api/v1/alarms?active=" + active);
  const canOperate = OPERATE_ROLES.has(state.role);
  fillTable($("alarms-table"), doc.alarms, (a) => {
    const tr = document.createElement("tr");
    tr.className = "state-" + a.state;
    tr.dataset.alarmId = a.alarm_id;
    tr.title = a.alarm_id;
    tr.append(cell(a.rule), cell(a.device), cell(shortTime(a.since)), cell(a.state),
      cell(a.acknowledged_by));
    const td = document.createElement("td");
    if (canOperate && !a.acknowledged) {
      const button = document.createElement("button");
      button.textContent = "Ack";
      button.className = "small";
      button.addEventListener("click", () => act(() =>
        api("/api/v1/alarms/" + encodeURIComponent(a.alarm_id) + "/ack", { method: "POST", body: {} })));
      td.append(button);
    }
    tr.append(td);
    return tr;
  }, "no " + (active ? "active " : "") + "alarms");
}

async function loadPlans() {
  const doc = await api("/api/v1/plans");
  fillTable($("plans-table"), doc.plans, (p) => {
    const tr = document.createElement("tr");
    tr.dataset.planId = p.plan_id;
    tr.classList.toggle("selected", p.plan_id === state.plan);
    const status = cell(p.status);
    status.className = "status-cell";
    tr.append(cell(p.plan_id), status, cell(shortTime(p.updated)), cell(p.by));
    tr.addEventListener("click", () => {
      state.plan = p.plan_id;
      loadPlans().catch((err) => showMessage(err.message));
    });
    return tr;
  }, "no plans yet: select a transformer and press Request plan");
  if (!state.plan && doc.plans.length) {
    state.plan = doc.plans[0].plan_id;
    $("plans-table").querySelector("tbody tr").classList.add("selected");
  }
  await loadPlan();
}

async function loadPlan() {
  const detail = $("plan-detail");
  if (!state.plan) {
    detail.hidden = true;
    return;
  }
  const id = encodeURIComponent(state.plan);
  const [plan, execution] = await Promise.all([api("/api/v1/plans/" + id), api("/api/v1/plans/" + id + "/execution")]);
  detail.hidden = false;
  $("plan-title").textContent = plan.plan_id;
  $("plan-status").textContent = plan.status;
  $("plan-status").className = "badge status-" + plan.status.replace(/\s+/g, "-");
  const canOperate = OPERATE_ROLES.has(state.role);
  $("approve-plan").disabled = !canOperate || plan.status !== "proposed";
  $("reject-plan").disabled = !canOperate || plan.status !== "proposed";
  $("dispatch-plan").disabled = !canOperate || plan.status !== "approved";
  const assets = plan.request && plan.request.assets ? plan.request.assets.join(", ") : "every branch";
  const totals = plan.totals.map((t) => t.asset + ": shed " + fmt(t.shed_kwh) + " kWh, curtailed " +
    fmt(t.curtailed_kwh) + " kWh, storage " + fmt(t.storage_kwh) + " kWh").join("; ");
  $("plan-summary").textContent = "protects " + assets + " · " + (plan.feasible ? "feasible" : "NOT feasible: " +
    (plan.reason || plan.solver_status)) + " · " + plan.commands.length + " commands" + (totals ? " · " + totals : "") +
    (execution.counts ? " · execution: " + JSON.stringify(execution.counts) : "");
  const statusOf = new Map(execution.commands.map((c) => [c.element + "|" + c.start, c.status]));
  fillTable($("commands-table"), plan.commands, (c) => {
    const tr = document.createElement("tr");
    tr.append(cell(c.element), cell(c.kind), cell(c.gateway), cell(shortTime(c.start)), cell(shortTime(c.end)),
      cell(fmt(c.kW)), cell(statusOf.get(c.element + "|" + c.start) || ""));
    return tr;
  }, "no commands: nothing needs to be shed in this horizon");
  const history = $("plan-history");
  history.replaceChildren();
  for (const h of plan.history) {
    const li = document.createElement("li");
    li.textContent = shortTime(h.time) + " " + h.status + (h.by ? " by " + h.by + " (" + h.role + ")" : "") +
      (h.comment ? ": " + h.comment : "");
    history.append(li);
  }
}

function fmt(value) {
  return value === null || value === undefined ? "" : Number(value).toFixed(1);
}

// ---- actions, refresh and polling --------------------------------------------------------------------------------

async function act(action) {
  showMessage("");
  try {
    await action();
    await poll(true);
  } catch (err) {
    showMessage(err.message);
  }
}

async function requestPlan() {
  if (!state.trafo) {
    throw new Error("select a transformer first");
  }
  const button = $("request-plan");
  button.disabled = true;
  const label = button.textContent;
  button.textContent = "computing…";
  try {
    const plan = await api("/api/v1/plans", {
      method: "POST",
      body: { assets: [state.trafo], horizon: $("plan-horizon").value },
    });
    state.plan = plan.plan_id;
  } finally {
    button.disabled = !state.trafo || !OPERATE_ROLES.has(state.role);
    button.textContent = label;
  }
}

function planAction(verb) {
  return () => api("/api/v1/plans/" + encodeURIComponent(state.plan) + "/" + verb, { method: "POST" });
}

async function refreshAll() {
  const results = await Promise.allSettled([loadNetwork(), loadTransformer(), loadAlarms(), loadPlans()]);
  const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
  if (failed.length) {
    showMessage(failed.join("; "));
  }
  const now = new Date();
  $("updated").textContent = "updated " + now.toTimeString().slice(0, 8);
  $("updated").dataset.version = String(state.version);
}

async function poll(force = false) {
  if (state.busy) {
    return;
  }
  state.busy = true;
  try {
    const doc = await api("/api/v1/dashboard/version");
    if (force || doc.version !== state.version) {
      state.version = doc.version;
      await refreshAll();
    }
  } catch (err) {
    showMessage("live update failed: " + err.message);
  } finally {
    state.busy = false;
  }
}

async function init() {
  const who = await api("/api/v1/whoami");
  state.role = who.role;
  $("who").textContent = who.name + " (" + who.role + ")";
  for (const button of document.querySelectorAll("button.operate")) {
    button.disabled = !OPERATE_ROLES.has(who.role);
    if (!OPERATE_ROLES.has(who.role)) {
      button.title = "needs an operator or admin token";
    }
  }
  const [grid, trafos] = await Promise.all([api("/api/v1/grid"), api("/api/v1/dashboard/transformers")]);
  $("grid-name").textContent = grid.name;
  const select = $("trafo-select");
  const none = document.createElement("option");
  none.value = "";
  none.textContent = "none";
  select.append(none);
  for (const t of trafos.transformers) {
    const option = document.createElement("option");
    option.value = t.id;
    option.textContent = t.id + " · " + t.name + " · " + t.sn_mva + " MVA";
    select.append(option);
  }
  state.trafo = trafos.transformers.length ? trafos.transformers[0].id : null;
  select.value = state.trafo || "";
  $("request-plan").textContent = state.trafo ? "Request plan for " + state.trafo : "Request plan";
  $("request-plan").disabled = !state.trafo || !OPERATE_ROLES.has(state.role);
  select.addEventListener("change", () => window.gridtwinSelectTrafo(select.value));
  $("loading-source").addEventListener("change", () => loadNetwork().catch((err) => showMessage(err.message)));
  $("alarms-all").addEventListener("change", () => loadAlarms().catch((err) => showMessage(err.message)));
  $("request-plan").addEventListener("click", () => act(requestPlan));
  $("approve-plan").addEventListener("click", () => act(planAction("approve")));
  $("reject-plan").addEventListener("click", () => act(planAction("reject")));
  $("dispatch-plan").addEventListener("click", () => act(planAction("dispatch")));
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    window.location.assign("/");
  });
  await poll(true);
  window.setInterval(() => poll(false), POLL_MS);
}

if (state.token) {
  init().catch((err) => showMessage(err.message));
}

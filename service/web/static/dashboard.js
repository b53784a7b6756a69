// Wisata admin dashboard: reads the JSON API of the service that serves this page.
// Plain browser JavaScript, no build step. Text from the API is only ever inserted as text
// (textContent), never as HTML.

const TOKEN_KEY = "wisata.adminToken";
const ACTIVE_JOB = new Set(["queued", "running"]);
const STATE_LABELS = {
  loaded: "LOADED",
  not_trained: "NOT TRAINED",
  failed: "FAILED",
  stale: "STALE",
  trained_not_persisted: "NOT PERSISTED",
};
const POLL_JOB_MS = 1000;
const POLL_BUSY_MS = 2000; // status while a job runs
const POLL_IDLE_MS = 15000;
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

const state = {
  status: null,
  job: null,
  followed: null,
  jobTimer: 0,
  statusTimer: 0,
  versionsSeq: 0,
  servedVersion: {},
};

// --- errors and the API -----------------------------------------------------------------------

/** An error answer of the API (or a failure to reach it), kept as the API worded it. */
class ApiError extends Error {
  constructor(status, error, message, body) {
    super(message);
    this.status = status;
    this.error = error;
    this.body = body;
  }
}

/** The operator closed the token dialog: nothing was sent. */
class Cancelled extends Error {}

async function api(method, path, { body, admin = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (admin) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(
      0,
      "network_error",
      `the service did not answer ${method} ${path} (${e.message})`,
    );
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && typeof data.error === "string" ? data.error : `http_${response.status}`;
    const message =
      data && typeof data.message === "string"
        ? data.message
        : text.slice(0, 300) || response.statusText;
    throw new ApiError(response.status, error, message, data);
  }
  if (data === null) {
    throw new ApiError(
      response.status,
      "bad_response",
      `${method} ${path} answered no JSON: ${text.slice(0, 200)}`,
    );
  }
  return data;
}

/** An admin call: asks for the token first if this tab has none; forgets it on a 401. */
async function adminCall(method, path, body) {
  if (sessionStorage.getItem(TOKEN_KEY) === null && !(await askToken())) throw new Cancelled();
  try {
    return await api(method, path, { body, admin: true });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      renderTokenState();
    }
    throw e;
  }
}

function showError(box, err) {
  if (err instanceof Cancelled) return;
  const apiError = err instanceof ApiError ? err : new ApiError(0, "script_error", String(err));
  const head = apiError.status ? `${apiError.status} ${apiError.error}` : apiError.error;
  const parts = [el("strong", { class: "error-code" }, head), `: ${apiError.message}`];
  if (apiError.status === 401) {
    parts.push(
      el(
        "span",
        { class: "hint block" },
        "The token was forgotten; you will be asked for it again.",
      ),
    );
  }
  box.replaceChildren(...parts);
  box.hidden = false;
}

function hide(box) {
  box.hidden = true;
  box.replaceChildren();
}

// --- small DOM and formatting helpers ---------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

function badge(text, kind) {
  return el("span", { class: `badge ${kind}` }, text);
}

function formatBytes(size) {
  if (typeof size !== "number") return "—";
  if (size < 1024) return `${size} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function formatDate(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  return when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function formatAge(iso) {
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (Number.isNaN(seconds)) return "";
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function formatNumber(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}

function short(text, length = 12) {
  return typeof text === "string" ? text.slice(0, length) : "";
}

/** A version id short enough to read: S3 ids are random, the folder backend's end random. */
function shortId(id) {
  return id.length <= 12 ? id : `…${id.slice(-8)}`;
}

/** The metrics a model's artifact records: its header's, else its stored metadata's (decoded). */
function metricsOfModel(model) {
  const fromHeader = model.header && model.header.metrics;
  if (fromHeader && Object.keys(fromHeader).length) return fromHeader;
  return model.artifact ? model.artifact.decoded.metrics : {};
}

function metricList(metrics) {
  const names = Object.keys(metrics).sort();
  if (!names.length) return el("span", { class: "muted" }, "none recorded");
  return el(
    "ul",
    { class: "metrics" },
    ...names.map((name) => el("li", {}, `${name} `, el("b", {}, formatNumber(metrics[name])))),
  );
}

function coverage(metrics) {
  return Number.isFinite(metrics.coverage) ? metrics.coverage : null;
}

// --- status -----------------------------------------------------------------------------------

async function refreshStatus() {
  try {
    const status = await api("GET", "/api/ml/status");
    state.status = status;
    hide($("status-error"));
    renderStatus(status);
    if (status.job && ACTIVE_JOB.has(status.job.status) && state.followed !== status.job.job_id) {
      followJob(status.job.job_id);
    }
    const selected = $("versions-model").value;
    const model = status.models[selected];
    const served =
      model && model.artifact ? `${model.artifact.version_id}|${model.artifact.etag}` : "";
    if (state.servedVersion[selected] !== undefined && state.servedVersion[selected] !== served) {
      refreshVersions();
    }
    state.servedVersion[selected] = served;
  } catch (e) {
    showError($("status-error"), e);
  }
  $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

function scheduleStatus() {
  clearTimeout(state.statusTimer);
  const busy = state.job !== null && ACTIVE_JOB.has(state.job.status);
  state.statusTimer = setTimeout(
    async () => {
      if (!document.hidden) await refreshStatus();
      scheduleStatus();
    },
    busy ? POLL_BUSY_MS : POLL_IDLE_MS,
  );
}

function renderStatus(status) {
  const storage = status.storage;
  const reach = storage.reachable
    ? badge("reachable", "ok")
    : badge(`unreachable${storage.error ? `: ${storage.error}` : ""}`, "bad");
  const unfinished = status.unfinished_publish;
  const held = unfinished
    ? [
        " · ",
        badge(
          `unfinished publish since ${formatDate(unfinished.started_at)}: ` +
            `the versions before it are served for ${unfinished.held_back.join(", ")}`,
          "warn wrap",
        ),
      ]
    : [];
  $("storage").replaceChildren(
    "Storage: ",
    el("b", {}, storage.backend),
    ` · ${storage.location} · `,
    reach,
    ...held,
  );
  const rows = Object.entries(status.models).map(([name, model]) => modelRow(name, model));
  $("models-body").replaceChildren(...rows);
}

function modelRow(name, model) {
  const label = STATE_LABELS[model.state] || model.state.toUpperCase();
  const kind = { loaded: "ok", failed: "bad", not_trained: "none" }[model.state] || "warn";
  const stateCell = [badge(label, `state ${kind}`)];
  if (model.reason) stateCell.push(el("span", { class: "reason" }, model.reason));

  const trained = [];
  if (model.trained_at) {
    trained.push(
      el("time", { datetime: model.trained_at }, formatDate(model.trained_at)),
      el("span", { class: "age" }, formatAge(model.trained_at)),
    );
    const dataset = model.header && model.header.dataset;
    if (dataset) {
      trained.push(
        el("span", { class: "small muted" }, `${dataset.items} items, ${dataset.users} users`),
      );
    }
  } else {
    trained.push(el("span", { class: "muted" }, "—"));
  }

  const artifact = model.artifact;
  const version = [];
  if (model.checksum)
    version.push(el("code", { title: `sha256 ${model.checksum}` }, short(model.checksum)));
  if (artifact && artifact.version_id) {
    version.push(
      el(
        "span",
        { class: "small", title: artifact.version_id },
        `id ${shortId(artifact.version_id)}`,
      ),
    );
  }
  if (artifact && artifact.etag) {
    version.push(
      el("span", { class: "small", title: artifact.etag }, `ETag ${short(artifact.etag, 10)}`),
    );
  }
  if (!version.length) version.push(el("span", { class: "muted" }, "—"));

  const lastError = model.last_error
    ? el("span", { class: "error-text" }, model.last_error)
    : el("span", { class: "muted" }, "—");

  return el(
    "tr",
    { "data-model": name, "data-state": model.state },
    el("th", { scope: "row", "data-label": "Model" }, name),
    el("td", { "data-label": "State", class: "state-cell" }, ...stateCell),
    el("td", { "data-label": "Trained", class: "stack" }, ...trained),
    el(
      "td",
      { "data-label": "Size" },
      artifact ? formatBytes(artifact.size) : el("span", { class: "muted" }, "—"),
    ),
    el("td", { "data-label": "Version", class: "stack version-cell" }, ...version),
    el("td", { "data-label": "Metrics" }, metricList(metricsOfModel(model))),
    el("td", { "data-label": "Last error" }, lastError),
  );
}

// --- training ---------------------------------------------------------------------------------

async function trainAll() {
  hide($("train-error"));
  const button = $("train-all");
  button.disabled = true;
  try {
    const accepted = await adminCall("POST", "/api/ml/train-all");
    await followJob(accepted.job_id);
  } catch (e) {
    showError($("train-error"), e);
    const running = e instanceof ApiError && e.status === 409 && e.body && e.body.job_id;
    if (running) await followJob(e.body.job_id);
  } finally {
    renderTrainButton();
  }
}

async function followJob(jobId) {
  state.followed = jobId;
  clearTimeout(state.jobTimer);
  await pollJob(jobId);
}

async function pollJob(jobId) {
  if (state.followed !== jobId) return;
  let job;
  try {
    job = await api("GET", `/api/ml/jobs/${encodeURIComponent(jobId)}`);
  } catch (e) {
    showError($("train-error"), e);
    if (e.status === 0) state.jobTimer = setTimeout(() => pollJob(jobId), POLL_BUSY_MS);
    return;
  }
  if (state.followed !== jobId) return;
  const wasActive = state.job !== null && ACTIVE_JOB.has(state.job.status);
  state.job = job;
  renderJob(job);
  renderTrainButton();
  if (ACTIVE_JOB.has(job.status)) {
    if (!wasActive) scheduleStatus();
    state.jobTimer = setTimeout(() => pollJob(jobId), POLL_JOB_MS);
  } else {
    await Promise.all([refreshStatus(), refreshVersions()]);
    scheduleStatus();
  }
}

function renderTrainButton() {
  const busy = state.job !== null && ACTIVE_JOB.has(state.job.status);
  const button = $("train-all");
  button.disabled = busy;
  button.textContent = busy ? "Training…" : "Train all";
}

function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 1) return "under a second";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function secondsBetween(from, to) {
  return (new Date(to).getTime() - new Date(from).getTime()) / 1000;
}

function renderJob(job) {
  const box = $("job");
  box.hidden = false;
  box.dataset.status = job.status;
  const active = ACTIVE_JOB.has(job.status);
  const done = job.models.filter((name) => name in job.seconds).length;
  const progress = $("job-progress");
  progress.max = job.models.length;
  // The service reports each model's time when the whole job ends: until then the bar can
  // only say "working" (indeterminate), not how far along it is.
  if (active && done === 0) progress.removeAttribute("value");
  else progress.value = done;

  let detail;
  if (job.status === "queued") detail = "waiting for a training worker";
  else if (job.status === "running") {
    detail = `training for ${formatDuration(secondsBetween(job.started_at, new Date()))}`;
  } else if (job.started_at && job.finished_at) {
    detail = `in ${formatDuration(secondsBetween(job.started_at, job.finished_at))}, ${formatAge(job.finished_at)}`;
  } else {
    detail = formatAge(job.finished_at || job.created_at);
  }
  // Screen readers hear the status when it changes, not the running time every second.
  const announce = $("job-announce");
  const heard = `Training job ${job.status}${job.error ? `: ${job.error}` : ""}`;
  if (announce.textContent !== heard) announce.textContent = heard;
  const summary = [
    el("b", {}, `Job ${short(job.job_id, 8)}`),
    " ",
    badge(job.status, `job-state ${job.status}`),
    ` ${detail}`,
  ];
  if (job.error) summary.push(el("span", { class: "error-text block" }, job.error));
  $("job-summary").replaceChildren(...summary);

  const items = job.models.map((name) => {
    let text;
    if (name in job.seconds) {
      const persisted = job.persisted[name];
      text = `trained in ${job.seconds[name].toFixed(1)} s${persisted ? `, stored: ${persisted}` : ""}`;
    } else {
      text = active ? "in this job" : "not trained";
    }
    return el("li", {}, el("b", {}, name), ` ${text}`);
  });
  $("job-models").replaceChildren(...items);
}

// --- admin token ------------------------------------------------------------------------------

function renderTokenState() {
  const saved = sessionStorage.getItem(TOKEN_KEY) !== null;
  $("token-state").textContent = saved
    ? "Admin token kept for this tab."
    : "You will be asked for the admin token.";
  $("forget-token").hidden = !saved;
}

/** Show a modal dialog built around ``form``; resolve true when it was submitted. */
function modal(dialog, form, cancel, onOk) {
  return new Promise((resolve) => {
    const finish = (ok) => {
      form.removeEventListener("submit", submit);
      cancel.removeEventListener("click", dismiss);
      dialog.removeEventListener("cancel", escape);
      if (ok && onOk) onOk();
      if (dialog.open) dialog.close();
      resolve(ok);
    };
    // Closed here rather than through the form's method="dialog" submission, so the
    // outcome never depends on which button the browser reports.
    const submit = (event) => {
      event.preventDefault();
      finish(true);
    };
    const dismiss = () => finish(false);
    const escape = (event) => {
      event.preventDefault();
      finish(false);
    };
    form.addEventListener("submit", submit);
    cancel.addEventListener("click", dismiss);
    dialog.addEventListener("cancel", escape);
    dialog.showModal();
  });
}

function askToken() {
  const input = $("token-input");
  input.value = "";
  const shown = modal($("token-dialog"), $("token-form"), $("token-cancel"), () => {
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    renderTokenState();
  });
  input.focus();
  return shown.finally(() => {
    input.value = "";
  });
}

function confirmAction(title, text, okLabel) {
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  const shown = modal($("confirm-dialog"), $("confirm-form"), $("confirm-cancel"));
  $("confirm-cancel").focus(); // the safe choice is the one Enter picks
  return shown;
}

// --- versions, rollback and the chart ---------------------------------------------------------

async function refreshVersions() {
  const name = $("versions-model").value;
  const seq = ++state.versionsSeq;
  try {
    const data = await api("GET", `/api/ml/models/${encodeURIComponent(name)}/versions`);
    if (seq !== state.versionsSeq) return;
    hide($("versions-error"));
    renderVersions(name, data.versions);
    renderChart(name, data.versions);
  } catch (e) {
    if (seq !== state.versionsSeq) return;
    showError($("versions-error"), e);
    $("versions").replaceChildren();
    renderChart(name, []);
  }
}

function renderVersions(name, versions) {
  const list = $("versions");
  const model = state.status ? state.status.models[name] : null;
  const served = model && model.artifact ? model.artifact : null;
  if (!versions.length) {
    list.replaceChildren(
      el("li", { class: "muted" }, `No stored version of ${name} yet: train it first.`),
    );
    return;
  }
  const items = versions.map((version, index) =>
    versionItem(name, version, versions.length - index, index, served, versions),
  );
  if (versions.length === 1 && !versions[0].version_id) {
    items.push(
      el(
        "li",
        { class: "muted" },
        "This store keeps no older versions (a folder, or a bucket without versioning): there is nothing to roll back to.",
      ),
    );
  }
  list.replaceChildren(...items);
}

function versionItem(name, version, number, index, served, versions) {
  // The service decodes the stored metadata (version.decoded); the raw form is not read here.
  const decoded = version.decoded;
  const sha = decoded.sha256;
  const trainedAt = decoded.trained_at;
  const serving =
    served !== null &&
    (version.version_id ? version.version_id === served.version_id : version.etag === served.etag);
  const head = [el("b", {}, `#${number}`)];
  if (index === 0) head.push(badge("current in the store", "info"));
  if (serving) head.push(badge("serving", "ok"));
  // A rollback stores an old version again as the newest: say which one it copies.
  const original = versions.slice(index + 1).findIndex((older) => older.etag === version.etag);
  if (original >= 0) {
    head.push(el("span", { class: "muted small" }, `same content as #${number - original - 1}`));
  }

  const facts = [];
  if (sha)
    facts.push(el("span", { title: `sha256 ${sha}` }, "sha256 ", el("code", {}, short(sha))));
  facts.push(el("span", {}, `stored ${formatDate(version.last_modified)}`));
  if (trainedAt) facts.push(el("span", {}, `trained ${formatAge(trainedAt)}`));
  facts.push(el("span", {}, formatBytes(version.size)));
  facts.push(el("span", { title: `ETag ${version.etag}` }, `ETag ${short(version.etag, 10)}`));
  if (version.version_id)
    facts.push(el("span", { title: version.version_id }, `id ${shortId(version.version_id)}`));

  const metrics = decoded.metrics;
  const parts = [
    el("div", { class: "version-head" }, ...head),
    el("div", { class: "facts" }, ...facts),
  ];
  if (Object.keys(metrics).length) parts.push(metricList(metrics));
  if (index > 0 && version.version_id) {
    const button = el(
      "button",
      {
        type: "button",
        class: "rollback",
        "data-version-id": version.version_id,
        "aria-label": `Roll back ${name} to version #${number}`,
      },
      `Roll back to #${number}`,
    );
    button.addEventListener("click", () => rollback(name, version, number, sha, trainedAt));
    parts.push(button);
  }
  return el(
    "li",
    { class: serving ? "version serving" : "version", "data-version-id": version.version_id || "" },
    ...parts,
  );
}

async function rollback(name, version, number, sha, trainedAt) {
  hide($("versions-error"));
  const note = $("rollback-note");
  note.hidden = true;
  const what = [
    sha ? `sha256 ${short(sha)}` : null,
    trainedAt ? `trained ${formatDate(trainedAt)}` : null,
  ]
    .filter(Boolean)
    .join(", ");
  const ok = await confirmAction(
    `Roll back ${name}?`,
    `Make version #${number} of ${name}${what ? ` (${what})` : ""} current again and serve it now? ` +
      "The version serving now stays in the store and can be restored the same way.",
    "Roll back",
  );
  if (!ok) return;
  try {
    const result = await adminCall("POST", `/api/ml/models/${encodeURIComponent(name)}/rollback`, {
      version_id: version.version_id,
    });
    const etag = result.model.artifact ? ` (ETag ${short(result.model.artifact.etag, 10)})` : "";
    const when = result.model.trained_at ? `, trained ${formatDate(result.model.trained_at)}` : "";
    note.textContent = `${name} now serves version #${number}${when}${etag}; it was stored again as the newest version.`;
    note.hidden = false;
  } catch (e) {
    showError($("versions-error"), e);
  }
  await refreshStatus();
  await refreshVersions();
}

function niceMax(value) {
  for (const step of [0.05, 0.1, 0.2, 0.25, 0.5, 1]) if (value <= step) return step;
  return Math.ceil(value);
}

function renderChart(name, versions) {
  const body = $("chart-body");
  const oldestFirst = versions.slice().reverse();
  const points = oldestFirst.map((version, index) => ({
    number: index + 1,
    ndcg: Number.isFinite(version.ndcg_at_10) ? version.ndcg_at_10 : null,
    coverage: coverage(version.decoded.metrics),
  }));
  const series = [
    { key: "ndcg", label: "NDCG@10", css: "s-ndcg" },
    { key: "coverage", label: "coverage", css: "s-coverage" },
  ];
  const values = points.flatMap((p) => [p.ndcg, p.coverage]).filter((v) => v !== null);
  if (!values.length) {
    body.replaceChildren(
      el(
        "p",
        { class: "chart-empty muted" },
        `No metrics recorded yet for ${name}: its stored versions carry no NDCG@10 or coverage (each training records them).`,
      ),
    );
    return;
  }
  const width = 320;
  const height = 170;
  const pad = { left: 36, right: 12, top: 12, bottom: 30 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const top = niceMax(Math.max(...values));
  const x = (i) => pad.left + (points.length === 1 ? plotW / 2 : (i / (points.length - 1)) * plotW);
  const y = (v) => pad.top + plotH * (1 - v / top);

  const described = points
    .map(
      (p) =>
        `#${p.number}: ${series.map((s) => `${s.label} ${p[s.key] === null ? "none" : formatNumber(p[s.key])}`).join(", ")}`,
    )
    .join("; ");
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `NDCG@10 and coverage of the ${points.length} stored versions of ${name}, oldest first. ${described}`,
  });
  for (const tick of [0, top / 2, top]) {
    chart.append(
      svg("line", { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick), class: "grid" }),
      svg(
        "text",
        { x: pad.left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end" },
        String(Number(tick.toFixed(3))),
      ),
    );
  }
  const every = Math.ceil(points.length / 8);
  points.forEach((p, i) => {
    if (i % every === 0 || i === points.length - 1) {
      chart.append(
        svg(
          "text",
          { x: x(i), y: height - 10, class: "tick", "text-anchor": "middle" },
          `#${p.number}`,
        ),
      );
    }
  });
  for (const s of series) {
    const defined = points.map((p, i) => [i, p[s.key]]).filter(([, v]) => v !== null);
    if (defined.length > 1) {
      chart.append(
        svg("polyline", {
          class: `line ${s.css}`,
          points: defined.map(([i, v]) => `${x(i)},${y(v)}`).join(" "),
        }),
      );
    }
    for (const [i, v] of defined) {
      chart.append(
        svg(
          "circle",
          { class: `dot ${s.css}`, cx: x(i), cy: y(v), r: 4 },
          svg("title", {}, `#${points[i].number} ${s.label} ${formatNumber(v)}`),
        ),
      );
    }
  }
  const legend = el(
    "ul",
    { class: "legend" },
    ...series.map((s) =>
      el("li", {}, el("span", { class: `swatch ${s.css}`, "aria-hidden": "true" }), s.label),
    ),
  );
  body.replaceChildren(chart, legend);
}

// --- try it -----------------------------------------------------------------------------------

function renderLambda() {
  const slider = $("try-lambda");
  $("try-lambda-value").textContent = Number(slider.value).toFixed(2);
  slider.disabled = $("try-algorithm").value !== "hybrid";
}

async function recommend(event) {
  event?.preventDefault();
  const error = $("try-error");
  hide(error);
  const algorithm = $("try-algorithm").value;
  const params = new URLSearchParams({
    user_id: $("try-user").value.trim(),
    algorithm,
    limit: $("try-limit").value,
  });
  if (algorithm === "hybrid") params.set("lambda", $("try-lambda").value);
  const button = $("try-submit");
  button.disabled = true;
  try {
    const data = await api("GET", `/api/frontend/recommendations?${params}`);
    $("try-note").hidden = true;
    renderRecommendations(data);
  } catch (e) {
    $("try-result").replaceChildren();
    showError(error, e);
  } finally {
    button.disabled = false;
  }
}

function renderRecommendations(data) {
  const head = [
    el(
      "span",
      {},
      `${data.items.length} for `,
      el("b", {}, data.user_id),
      ` · ${data.algorithm} · model `,
      el("code", {}, data.model_version || "—"),
    ),
  ];
  if (data.cold_start) {
    head.push(
      el(
        "span",
        { class: "cold-start" },
        badge("Cold start", "warn"),
        " unknown user: the most popular places answered",
      ),
    );
  }
  const cards = data.items.map((item, index) =>
    el(
      "li",
      { class: "card", "data-item-id": item.id },
      el("h3", {}, el("span", { class: "rank" }, `${index + 1}.`), item.name),
      el("p", { class: "city" }, item.city || "city unknown"),
      el(
        "ul",
        { class: "tags", "aria-label": "categories" },
        ...(item.categories || []).map((c) => el("li", {}, c)),
      ),
      el("p", { class: "score" }, "score ", el("b", {}, formatNumber(item.score))),
    ),
  );
  if (canRate() && data.user_id) {
    cards.forEach((card, index) => card.append(rateControl(data.user_id, data.items[index])));
  }
  const list = cards.length
    ? el("ol", { class: "cards" }, ...cards)
    : el("p", { class: "muted" }, "No recommendations.");
  $("try-result").replaceChildren(el("div", { class: "result-head" }, ...head), list);
}

// --- rating an item -----------------------------------------------------------------------------

/** Ratings go to the site's database: only a service whose data is one takes them. */
function canRate() {
  return Boolean(state.status && state.status.database);
}

/** The rating scale of the served models' data, as their artifacts record it (else 1 to 5). */
function ratingScale() {
  for (const model of Object.values((state.status && state.status.models) || {})) {
    const scale = model.artifact && model.artifact.decoded && model.artifact.decoded.rating_scale;
    if (Array.isArray(scale) && scale.length === 2) return scale;
  }
  return [1, 5];
}

function rateControl(userId, item) {
  const [low, high] = ratingScale();
  const step = Number.isInteger(low) && Number.isInteger(high) ? 1 : 0.5;
  const select = el("select", { class: "rate-value", "aria-label": `rating of ${item.name}` });
  for (let value = high; value >= low; value -= step) {
    select.append(el("option", { value: String(value) }, String(value)));
  }
  const button = el("button", { type: "button", class: "rate" }, "Rate");
  button.addEventListener("click", () => rate(userId, item, Number(select.value), button));
  return el("p", { class: "rate-form" }, select, " ", button);
}

async function rate(userId, item, rating, button) {
  const error = $("try-error");
  hide(error);
  button.disabled = true;
  try {
    await adminCall("POST", "/api/ratings", {
      ratings: [{ user_id: userId, item_id: item.id, rating }],
    });
    await recommend();
    const note = $("try-note");
    note.textContent = `${userId} rated ${item.name} ${rating}: the answer below counts it, without retraining.`;
    note.hidden = false;
  } catch (e) {
    showError(error, e);
  } finally {
    button.disabled = false;
  }
}

// --- start ------------------------------------------------------------------------------------

function start() {
  $("refresh").addEventListener("click", () => {
    refreshStatus();
    refreshVersions();
  });
  $("train-all").addEventListener("click", trainAll);
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    renderTokenState();
  });
  $("versions-model").addEventListener("change", () => {
    $("rollback-note").hidden = true;
    refreshVersions();
  });
  $("try-form").addEventListener("submit", recommend);
  $("try-algorithm").addEventListener("change", renderLambda);
  $("try-lambda").addEventListener("input", renderLambda);
  renderTokenState();
  renderLambda();
  refreshStatus().then(() => refreshVersions());
  scheduleStatus();
}

start();

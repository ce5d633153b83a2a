// Jobs: the server's pages of jobs, filtered by status and title, kept current by the
// server-sent job events (no polling).
import { api, follow } from "./api.js";
import { h, fill, field, when } from "./dom.js";
import { t } from "./i18n.js";

const PAGE = 50;
const STATUSES = ["", "queued", "running", "completed", "failed"];

function statusText(status) {
  return t(`status${status[0].toUpperCase()}${status.slice(1)}`);
}

export function jobsPage(main) {
  const state = { status: "", q: "", offset: 0, total: 0 };
  const rows = new Map(); // task id -> {status cell, progress, ...}
  const status = h("select", { name: "status", "data-testid": "status-filter" },
    STATUSES.map((s) => h("option", { value: s }, s ? statusText(s) : t("all"))));
  const query = h("input", { type: "search", name: "q", "data-testid": "title-filter", maxlength: 200 });
  const body = h("tbody", { "data-testid": "jobs-body" });
  const counter = h("span", { class: "dim", "data-testid": "jobs-count" });
  const liveBadge = h("span", { class: "badge", "data-testid": "jobs-live", "data-live": "false" }, t("offline"));
  const prev = h("button", { type: "button" }, t("prev"));
  const next = h("button", { type: "button" }, t("next"));
  const controller = new AbortController();
  let reloadTimer = null;

  const row = (job) => {
    const progress = h("progress", { max: 1, value: job.progress, "aria-label": t("colProgress") });
    const statusCell = h("td", { "data-testid": "job-status", "data-status": job.status }, statusText(job.status));
    const duration = h("td", {}, job.processing_time != null ? `${job.processing_time.toFixed(1)} s` : "—");
    const name = job.status === "completed"
      ? h("a", { href: `#/recording/${job.task_id}` }, job.title || job.filename)
      : (job.title || job.filename);
    const tr = h("tr", { "data-task": job.task_id, "data-testid": "job-row" },
      h("th", { scope: "row" }, name, job.title ? h("small", { class: "dim" }, ` ${job.filename}`) : null),
      statusCell, h("td", {}, progress), h("td", {}, String(job.priority)),
      h("td", {}, job.submitted_by), duration, h("td", {}, when(job.created_at)));
    rows.set(job.task_id, { tr, job });
    return tr;
  };

  const load = async () => {
    const params = new URLSearchParams({ limit: PAGE, offset: state.offset });
    if (state.status) params.set("status", state.status);
    if (state.q) params.set("q", state.q);
    try {
      const page = await api(`/api/v1/tasks?${params}`, { signal: controller.signal });
      state.total = page.total;
      rows.clear();
      fill(body, page.items.map(row));
      counter.textContent = t("pageOf", {
        from: page.total ? state.offset + 1 : 0, to: state.offset + page.items.length, total: page.total,
      });
      prev.disabled = state.offset === 0;
      next.disabled = state.offset + PAGE >= page.total;
      main.dataset.loaded = "true";
    } catch (error) {
      if (!controller.signal.aborted) fill(body, h("tr", {}, h("td", { colspan: 7 }, t("error", { reason: error.message }))));
    }
  };

  const changed = (job) => {
    const known = rows.get(job.task_id);
    if (known && (!state.status || state.status === job.status)) {
      const replacement = row(job);
      known.tr.replaceWith(replacement);
      return;
    }
    // A new job, or one leaving the filtered status: the page's membership changed.
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 500);
  };

  let typing = null;
  query.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.q = query.value.trim(); state.offset = 0; load(); }, 250);
  });
  status.addEventListener("change", () => { state.status = status.value; state.offset = 0; load(); });
  prev.addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); load(); });
  next.addEventListener("click", () => { state.offset += PAGE; load(); });

  fill(main, h("section", { class: "panel", "aria-labelledby": "jobs-title" },
    h("div", { class: "row" }, h("h2", { id: "jobs-title" }, t("jobsTitle")), liveBadge),
    h("div", { class: "filters" }, field(t("filterStatus"), status), field(t("searchTitle"), query)),
    h("div", { class: "table-wrap" }, h("table", { class: "jobs" },
      h("thead", {}, h("tr", {}, ["colTitle", "colStatus", "colProgress", "colPriority", "colSubmitted",
        "colDuration", "colCreated"].map((k) => h("th", { scope: "col" }, t(k))))),
      body)),
    h("div", { class: "row pager" }, prev, counter, next)));
  load();
  follow("/api/v1/task-events", controller.signal, (type, job) => { if (type === "task") changed(job); },
    (live) => { liveBadge.dataset.live = String(live); liveBadge.textContent = live ? t("live") : t("offline"); });
  return () => { controller.abort(); clearTimeout(reloadTimer); clearTimeout(typing); };
}

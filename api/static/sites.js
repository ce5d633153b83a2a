// heritage-audio dashboard: the multi-site view.
//
// One row per site from GET /api/v1/sites?window=W (each site's newest window of the
// chosen kind: speech minutes, distinct speakers, dominant heritage category and its
// share, occupancy, mean level), refreshed every REFRESH_S seconds (`?sites_refresh=N`
// overrides, 2..3600). The API needs a caller: the archive application's sign-in (same
// tab) or `?token=`. Without one, or before any site was aggregated, the panel stays
// hidden, so a single-site gallery screen looks as it always did.

const REFRESH_S = 15;
const SESSION_KEY = "heritage-audio-session";
const CATEGORIES = new Map([
  ["folk_music", ["Folk music", "#f4a261"]],
  ["classical_music", ["Classical music", "#5cc8ff"]],
  ["opera", ["Opera", "#c77dff"]],
  ["spoken_word", ["Spoken word", "#90d26d"]],
  ["historical_speech", ["Historical speech", "#f9d84a"]],
  ["religious_chant", ["Religious chant", "#ff6f91"]],
  ["other", ["Other sound", "#9aa5b1"]],
]);

const ui = {};
for (const node of document.querySelectorAll("[data-ref^='sites']")) ui[node.dataset.ref] = node;

const params = new URLSearchParams(location.search);
const refreshS = Math.min(3600, Math.max(2, Number(params.get("sites_refresh")) || REFRESH_S));

function token() {
  if (params.get("token")) return params.get("token");
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY))?.token ?? null;
  } catch {
    return null;
  }
}

const fixed = (value, digits) => (Number.isFinite(value) ? value.toFixed(digits) : "—");
const pct = (value) => (Number.isFinite(value) ? `${Math.round(value * 100)}%` : "—");

function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function cell(row, testid, text) {
  const td = document.createElement("td");
  td.dataset.testid = testid;
  td.textContent = text;
  row.append(td);
  return td;
}

function siteRow(site) {
  const row = document.createElement("tr");
  row.dataset.testid = "site-row";
  row.dataset.site = site.site;
  const figures = site.latest?.site ?? null;
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = site.site;
  row.append(th);
  cell(row, "site-rooms", String(site.rooms.length));
  const heard = cell(row, "site-fresh", ago(site.last_event));
  heard.className = "fresh";
  heard.dataset.fresh = String(site.fresh);
  heard.title = `${site.fresh ? "live" : "silent"}; last event ${site.last_event}`;
  cell(row, "site-speech", figures ? fixed(figures.speech_minutes, 1) : "—");
  cell(row, "site-speakers", figures ? String(figures.distinct_speakers) : "—");
  const category = cell(row, "site-category", "");
  category.className = "site-cat";
  if (figures?.dominant_category) {
    const [label, color] = CATEGORIES.get(figures.dominant_category) ?? [figures.dominant_category, "#9aa7b6"];
    const dot = document.createElement("i");
    dot.style.background = color;
    category.append(dot, `${label} ${pct(figures.dominant_share)}`);
  } else {
    category.textContent = "—";
  }
  cell(row, "site-occupancy", figures ? pct(figures.occupancy) : "—");
  cell(row, "site-level", figures && Number.isFinite(figures.rms_mean_dbfs) ? `${fixed(figures.rms_mean_dbfs, 1)} dBFS` : "—");
  return row;
}

let pending = null;

async function refresh() {
  const bearer = token();
  if (!bearer) {
    ui.sitesPanel.hidden = true;
    return;
  }
  pending?.abort();
  pending = new AbortController();
  const kind = ui.sitesWindow.value;
  let response;
  try {
    response = await fetch(`/api/v1/sites?window=${encodeURIComponent(kind)}&limit=200`, {
      headers: { Authorization: `Bearer ${bearer}` },
      signal: pending.signal,
    });
  } catch (error) {
    if (error.name !== "AbortError") ui.sitesStatus.textContent = "sites unreachable; retrying";
    return;
  }
  if (response.status === 401 || response.status === 403) {
    ui.sitesPanel.hidden = true;
    return;
  }
  if (!response.ok) {
    ui.sitesStatus.textContent = `sites unavailable (${response.status}); retrying`;
    return;
  }
  const body = await response.json();
  if (kind !== ui.sitesWindow.value) return; // the window changed while this was in flight
  ui.sitesRows.replaceChildren(...body.items.map(siteRow));
  ui.sitesPanel.hidden = body.total === 0;
  ui.sitesStatus.textContent = `${body.total} site${body.total === 1 ? "" : "s"} · updated ${new Date().toLocaleTimeString()}`;
  ui.sitesPanel.dataset.window = kind;
}

ui.sitesWindow.addEventListener("change", refresh);
refresh();
setInterval(refresh, refreshS * 1000);

// Search: recordings by Dublin Core words, category, speaker, date range and duration,
// paginated by the server.
import { api } from "./api.js";
import { h, fill, field, clock, when } from "./dom.js";
import { CATEGORIES, t } from "./i18n.js";

const PAGE = 20;

export function searchPage(main) {
  const controls = {
    q: h("input", { type: "search", name: "q", maxlength: 500, "data-testid": "search-words" }),
    category: h("select", { name: "category" }, h("option", { value: "" }, t("all")),
      CATEGORIES.map((c) => h("option", { value: c }, t(`cat${c}`)))),
    speaker: h("input", { name: "speaker", maxlength: 200 }),
    date_from: h("input", { name: "date_from", type: "date" }),
    date_to: h("input", { name: "date_to", type: "date" }),
    min_minutes: h("input", { name: "min_minutes", type: "number", min: 0, step: "any" }),
    max_minutes: h("input", { name: "max_minutes", type: "number", min: 0, step: "any" }),
  };
  const results = h("ol", { class: "results", "data-testid": "search-results" });
  const summary = h("p", { class: "dim", role: "status", "data-testid": "search-summary" });
  const pager = h("div", { class: "row pager" });
  let offset = 0;

  const run = async () => {
    const params = new URLSearchParams({ limit: PAGE, offset });
    for (const name of ["q", "category", "speaker", "date_from", "date_to"]) {
      if (controls[name].value.trim()) params.set(name, controls[name].value.trim());
    }
    if (controls.min_minutes.value) params.set("min_duration", controls.min_minutes.value * 60);
    if (controls.max_minutes.value) params.set("max_duration", controls.max_minutes.value * 60);
    try {
      const page = await api(`/api/v1/recordings?${params}`);
      summary.textContent = `${t("results", { total: page.total })} (${t(page.full_text ? "fullText" : "simpleMatch")})`;
      fill(results, page.items.length ? page.items.map((r) => h("li", { "data-testid": "search-result" },
        h("a", { href: `#/recording/${r.task_id}` }, r.title || r.filename),
        h("span", { class: "dim" }, ` ${r.filename} · ${r.category ? t(`cat${r.category}`) : "—"} · `
          + `${r.duration != null ? clock(r.duration) : "—"} · ${r.date_from || "—"} · ${when(r.completed_at)}`),
        r.speakers.length ? h("span", { class: "speakers" }, ` · ${r.speakers.join(", ")}`) : null))
        : h("li", {}, t("noResults")));
      fill(pager,
        h("button", { type: "button", disabled: offset === 0, onclick: () => { offset -= PAGE; run(); } }, t("prev")),
        h("button", { type: "button", disabled: offset + PAGE >= page.total, onclick: () => { offset += PAGE; run(); } }, t("next")));
    } catch (error) {
      summary.textContent = t("error", { reason: error.message });
    }
  };

  const form = h("form", { class: "filters", role: "search", "data-testid": "search-form" },
    field(t("words"), controls.q), field(t("category"), controls.category),
    field(t("speakerName"), controls.speaker), field(t("dateFrom"), controls.date_from),
    field(t("dateTo"), controls.date_to), field(t("minMinutes"), controls.min_minutes),
    field(t("maxMinutes"), controls.max_minutes),
    h("button", { type: "submit", class: "primary" }, t("find")));
  form.addEventListener("submit", (e) => { e.preventDefault(); offset = 0; run(); });
  fill(main, h("section", { class: "panel", "aria-labelledby": "search-title" },
    h("h2", { id: "search-title" }, t("searchPage")), form, summary, results, pager));
  controls.q.focus();
  run();
  return null;
}

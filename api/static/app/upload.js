// Upload: drag and drop (or choose) many recordings, the curator's Dublin Core, processing
// type, priority, the number of speakers if known and the slower, more accurate speaker
// separation; each file shows its own progress and, if refused, the server's reason.
import { session, upload } from "./api.js";
import { h, fill, field } from "./dom.js";
import { t } from "./i18n.js";

const DC_FIELDS = ["title", "creator", "date", "rights", "subject", "description", "publisher",
  "contributor", "language", "coverage", "source", "relation", "type"];
const PROCESSING = ["comprehensive", "quick", "speaker", "heritage", "metadata"];
const PRIORITIES = ["normal", "low", "high", "urgent"];

export function uploadPage(main) {
  if (!session.can("admin", "operator")) {
    fill(main, h("p", { class: "panel", "data-testid": "not-allowed" }, t("roleViewer")));
    return null;
  }
  const inputs = Object.fromEntries(DC_FIELDS.map((name) => [name, name === "description"
    ? h("textarea", { name, rows: 2, maxlength: 4000 })
    : h("input", { name, maxlength: name === "date" ? 100 : 1000 })]));
  const processing = h("select", { name: "processing_type" },
    PROCESSING.map((p) => h("option", { value: p }, p)));
  const priority = h("select", { name: "priority" },
    PRIORITIES.map((p) => h("option", { value: p }, t(`priority_${p}`))));
  const speakers = h("input", { type: "number", name: "n_speakers", min: 1, max: 32, step: 1 });
  const accurate = h("input", { type: "checkbox", name: "accurate_speakers" });
  const picker = h("input", { type: "file", multiple: true, accept: "audio/*,.wav,.flac,.mp3,.ogg,.opus,.aif,.aiff",
    class: "visually-hidden", id: "files", "data-testid": "file-input" });
  const zone = h("label", { class: "drop", for: "files", tabindex: 0, role: "button",
    "data-testid": "drop-zone" }, t("dropHere"));
  const list = h("ul", { class: "uploads", "aria-live": "polite", "data-testid": "upload-list" });

  const send = (files) => {
    const fields = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
    fields.processing_type = processing.value;
    fields.priority = priority.value;
    if (speakers.value.trim()) fields.n_speakers = speakers.value.trim();
    if (accurate.checked) fields.accurate_speakers = "true";
    for (const file of files) {
      const bar = h("progress", { max: 1, value: 0, "aria-label": file.name });
      const state = h("span", { class: "state" }, t("uploading", { pct: 0 }));
      const item = h("li", { "data-testid": "upload-item", "data-state": "sending" },
        h("span", { class: "name" }, file.name), bar, state);
      list.prepend(item);
      upload(file, fields, (f) => {
        bar.value = f;
        state.textContent = t("uploading", { pct: Math.round(f * 100) });
      }).then(({ ok, body }) => {
        bar.value = 1;
        item.dataset.state = ok ? "queued" : "refused";
        fill(state, ok
          ? h("a", { href: `#/recording/${body.task_id}` }, t("uploadQueued", { id: body.task_id.slice(0, 8) }))
          : t("uploadRefused", { reason: body.detail }));
      });
    }
  };
  picker.addEventListener("change", () => { send([...picker.files]); picker.value = ""; });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); picker.click(); }
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    send([...e.dataTransfer.files]);
  });

  const cap = (name) => `dc${name[0].toUpperCase()}${name.slice(1)}`;
  fill(main, h("section", { class: "panel", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, t("uploadTitle")),
    h("form", { class: "upload-form", "data-testid": "upload-form", onsubmit: (e) => e.preventDefault() },
      h("fieldset", {}, h("legend", {}, t("dcLegend")),
        h("div", { class: "grid" }, DC_FIELDS.map((name) => field(t(cap(name)), inputs[name])))),
      h("fieldset", {}, h("legend", {}, t("optionsLegend")),
        h("div", { class: "grid" }, field(t("processingType"), processing), field(t("priority"), priority),
          field(t("nSpeakers"), speakers), field(t("accurateSpeakers"), accurate))),
      picker, zone),
    list));
  return null;
}

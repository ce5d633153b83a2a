// A recording's page: overview, playback, lanes, corrections, metadata, downloads, models.
import { api, download, session } from "./api.js";
import { h, fill, field, clock, when } from "./dom.js";
import { CATEGORIES, t } from "./i18n.js";
import { drawSpectrogram, drawWaveform, lane, musicSegments, silenceSegments, span } from "./lanes.js";

function categorySelect(selected) {
  return h("select", { name: "category", "data-testid": "category-select" },
    CATEGORIES.map((c) => h("option", { value: c, selected: c === selected }, t(`cat${c}`))));
}

function dl(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]));
}

export function recordingPage(main, { params: [taskId], toast }) {
  const canEdit = session.can("admin", "operator");
  const audio = h("audio", { controls: true, preload: "metadata", "data-testid": "player" });
  const wave = h("canvas", { class: "wave", role: "img", "aria-label": t("waveform"), "data-testid": "waveform" });
  const spectro = h("canvas", { class: "spectro", role: "img", "aria-label": t("spectrogram"), "data-testid": "spectrogram" });
  const playhead = h("div", { class: "playhead", "aria-hidden": "true" });
  const lanesBox = h("div", { class: "lanes", "aria-label": t("lanes"), "data-testid": "lanes" });
  const selection = h("section", { class: "panel selection", "aria-live": "polite", "data-testid": "selection", hidden: true });
  const title = h("h2", { "data-testid": "recording-title" }, t("recordingTitle"));
  const summary = h("p", { class: "dim", "data-testid": "recording-summary" }, t("loading"));
  const side = h("div", { class: "side" });
  const history = h("ol", { class: "history", "data-testid": "corrections" });
  let duration = 1;
  let stopAt = null;
  let state = null; // {doc, annotations, record}

  fill(main, h("article", { class: "recording" },
    h("header", { class: "panel" }, title, summary, audio),
    h("section", { class: "panel overview" }, h("div", { class: "stack" }, wave, spectro, playhead), lanesBox),
    selection,
    h("div", { class: "columns" }, side,
      h("section", { class: "panel" }, h("h3", {}, t("corrections")), history))));

  const play = (start, end) => {
    audio.currentTime = start;
    stopAt = end;
    audio.play().catch(() => {});
  };
  audio.addEventListener("timeupdate", () => {
    playhead.style.left = `${(audio.currentTime / duration) * 100}%`;
    if (stopAt !== null && audio.currentTime >= stopAt) { audio.pause(); stopAt = null; }
  });
  wave.addEventListener("click", (e) => {
    const box = wave.getBoundingClientRect();
    play(((e.clientX - box.left) / box.width) * duration, null);
  });

  const correct = async (path, body) => {
    try {
      await api(`/api/v1/results/${taskId}/${path}`, { method: "POST", json: body });
      toast(t("correctionSaved"));
      await refresh();
    } catch (error) {
      toast(t("error", { reason: error.message }));
    }
  };

  const pick = (laneId, seg, button) => {
    play(seg.start, seg.end);
    for (const b of lanesBox.querySelectorAll(".seg[aria-pressed]")) b.removeAttribute("aria-pressed");
    button.setAttribute("aria-pressed", "true");
    const parts = [h("h3", {}, t("selected")), h("p", { "data-testid": "selected-segment" },
      `${button.getAttribute("aria-label")}`)];
    if (canEdit) {
      if (laneId === "heritage") {
        const choice = categorySelect(seg.category);
        parts.push(h("form", { class: "row", "data-testid": "relabel-form", onsubmit: (e) => {
          e.preventDefault();
          correct("corrections", { category: choice.value, start: seg.start, end: seg.end });
        } }, field(t("relabelSegment"), choice), h("button", { type: "submit", class: "primary" }, t("apply"))));
      }
      if (laneId.startsWith("speaker:")) {
        const label = seg.speaker;
        const name = h("input", { name: "name", maxlength: 200, value: state.names[label] || "" });
        const others = Object.keys(state.doc.results.speaker_recognition.speakers).filter((s) => s !== label);
        const into = h("select", { name: "merge_into" }, others.map((s) => h("option", { value: s }, state.names[s] || s)));
        parts.push(h("form", { class: "row", onsubmit: (e) => {
          e.preventDefault();
          correct("speakers", { speaker: label, name: name.value.trim() });
        } }, field(t("renameSpeaker"), name), h("button", { type: "submit" }, t("apply"))));
        if (others.length) {
          parts.push(h("form", { class: "row", onsubmit: (e) => {
            e.preventDefault();
            correct("speakers", { speaker: label, merge_into: into.value });
          } }, field(t("mergeSpeaker"), into), h("button", { type: "submit" }, t("apply"))));
        }
      }
      const laneName = laneId.startsWith("speaker:") ? "speaker" : laneId;
      parts.push(h("button", { type: "button", "data-testid": "mark-wrong", onclick: () => correct("wrong-segments", {
        lane: laneName, start: seg.start, end: seg.end, speaker: seg.speaker || null,
      }) }, t("markWrong")));
    }
    fill(selection, parts);
    selection.hidden = false;
  };

  const drawLanes = () => {
    const { doc, annotations, overview } = state;
    const r = doc.results;
    const wrong = annotations.filter((a) => a.kind === "wrong_segment").map((a) => a.detail);
    const ranges = annotations.filter((a) => a.kind === "category" && a.detail.start != null);
    const isWrong = (laneId, seg) => wrong.some((w) => w.lane === laneId && w.start === seg.start && w.end === seg.end);
    const decorate = (laneId) => (button, seg) => {
      if (isWrong(laneId, seg)) button.classList.add("wrong");
    };
    const out = [];
    if (r.voice_activity) {
      out.push(lane({ id: "speech", label: t("laneSpeech"), segments: r.voice_activity.segments, duration,
        onPick: pick, describe: (s) => t("segment", { lane: t("laneSpeech"), start: clock(s.start, 1), end: clock(s.end, 1) }),
        decorate: decorate("speech") }));
    }
    if (r.speaker_recognition) {
      const byLabel = new Map();
      for (const seg of r.speaker_recognition.segments) {
        const label = state.merges[seg.speaker] || seg.speaker;
        if (!byLabel.has(label)) byLabel.set(label, []);
        byLabel.get(label).push(seg);
      }
      for (const [label, segments] of byLabel) {
        const name = state.names[label] ? `${state.names[label]} (${label})` : label;
        const text = t("laneSpeaker", { name });
        out.push(lane({ id: `speaker:${label}`, label: text, segments, duration, onPick: pick,
          describe: (s) => t("segment", { lane: text, start: clock(s.start, 1), end: clock(s.end, 1) }),
          decorate: decorate("speaker") }));
      }
    }
    const timeline = r.heritage_classification?.timeline;
    if (timeline) {
      out.push(lane({ id: "heritage", label: t("laneHeritage"), segments: timeline, duration, onPick: pick,
        describe: (s) => {
          const fix = ranges.filter((a) => a.detail.start === s.start && a.detail.end === s.end).pop();
          const base = `${t(`cat${s.category}`)}, ${t("confidence", { pct: Math.round(s.confidence * 100) })}, ${span(s)}`;
          return fix ? `${base} → ${t(`cat${fix.detail.category}`)} (${t("corrected")})` : base;
        },
        decorate: (button, s) => {
          button.dataset.category = s.category;
          button.style.opacity = String(0.35 + 0.65 * s.confidence);
          const fix = ranges.filter((a) => a.detail.start === s.start && a.detail.end === s.end).pop();
          if (fix) { button.classList.add("corrected"); button.dataset.category = fix.detail.category; }
          if (isWrong("heritage", s)) button.classList.add("wrong");
        } }));
      out.push(lane({ id: "music", label: t("laneMusic"), help: t("laneMusicHelp"), segments: musicSegments(timeline), duration, onPick: pick,
        describe: (s) => t("segment", { lane: t("laneMusic"), start: clock(s.start, 1), end: clock(s.end, 1) }),
        decorate: decorate("music") }));
    }
    if (overview) {
      out.push(lane({ id: "silence", label: t("laneSilence"), help: t("laneSilenceHelp"), segments: silenceSegments(overview), duration, onPick: pick,
        describe: (s) => t("segment", { lane: t("laneSilence"), start: clock(s.start, 1), end: clock(s.end, 1) }),
        decorate: decorate("silence") }));
    }
    fill(lanesBox, out);
    lanesBox.dataset.drawn = "true";
  };

  const drawSide = () => {
    const { doc, record } = state;
    const m = doc.results.metadata_generation || {};
    const tech = m.technical || {};
    const era = m.cultural_tags?.recording_era;
    const info = doc.audio_info;
    const heritage = doc.results.heritage_classification;
    const whole = state.annotations.filter((a) => a.kind === "category" && a.detail.start == null).pop();
    const dcForm = h("form", { class: "dc", "data-testid": "dc-form" });
    const inputs = {};
    for (const name of record.editable) {
      const value = record.curator[name] ?? (record.elements[name] || []).join("; ");
      const key = `dc${name[0].toUpperCase()}${name.slice(1)}`;
      inputs[name] = h("input", { name, value, readonly: !canEdit, maxlength: name === "description" ? 4000 : 1000 });
      dcForm.append(field(t(key), inputs[name]));
    }
    const fixed = dl(["format", "identifier"].map((name) =>
      [t(`dc${name[0].toUpperCase()}${name.slice(1)}`), (record.elements[name] || []).join("; ")]));
    const dcMessage = h("p", { role: "status", "data-testid": "dc-message" });
    if (canEdit) {
      dcForm.append(h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, t("save")), dcMessage));
      dcForm.addEventListener("submit", async (e) => {
        e.preventDefault();
        const body = {};
        for (const [name, input] of Object.entries(inputs)) {
          const before = record.curator[name] ?? (record.elements[name] || []).join("; ");
          if (input.value !== before) body[name] = input.value;
        }
        try {
          state.record = await api(`/api/v1/recordings/${taskId}/dublin-core`, { method: "PATCH", json: body });
          dcMessage.textContent = t("saved");
        } catch (error) {
          dcMessage.textContent = t("error", { reason: error.message });
        }
      });
    }
    const fileLabel = heritage ? h("div", { class: "row" },
      h("span", { "data-testid": "file-category", "data-category": whole ? whole.detail.category : heritage.predicted_category },
        `${t("category")}: ${t(`cat${whole ? whole.detail.category : heritage.predicted_category}`)}`
        + (whole ? ` (${t("corrected")})` : ` — ${t("confidence", { pct: Math.round(heritage.confidence * 100) })}`))) : null;
    const fileForm = heritage && canEdit ? (() => {
      const choice = categorySelect(heritage.predicted_category);
      return h("form", { class: "row", "data-testid": "relabel-file", onsubmit: (e) => {
        e.preventDefault();
        correct("corrections", { category: choice.value });
      } }, field(t("relabelFile"), choice), h("button", { type: "submit" }, t("apply")));
    })() : null;
    const loud = tech.loudness || {};
    const dlButton = (text, path, name) => h("button", { type: "button", onclick: () => download(path, name).catch(
      (error) => toast(t("error", { reason: error.message }))) }, text);
    const stem = (info.filename || taskId).replace(/\.[^.]+$/, "");
    fill(side,
      h("section", { class: "panel" }, fileLabel, fileForm),
      h("section", { class: "panel" }, h("h3", {}, t("technical")), dl([
        [t("durationLabel"), clock(info.duration, 1)], [t("formatLabel"), info.format],
        [t("sampleRate"), `${info.sample_rate} Hz`], [t("channels"), info.channels],
        [t("loudness"), loud.integrated_lufs != null ? `${loud.integrated_lufs} LUFS` : null],
        [t("truePeak"), loud.true_peak_dbtp != null ? `${loud.true_peak_dbtp} dBTP` : null],
        [t("bandwidth"), tech.effective_bandwidth_hz != null ? `${tech.effective_bandwidth_hz} Hz` : null],
        [t("noiseFloor"), tech.noise_floor_dbfs != null ? `${tech.noise_floor_dbfs} dBFS` : null],
        [t("era"), era ? `${era.era.replaceAll("_", " ")} (${era.years}), ${Math.round(era.confidence * 100)} %` : null],
      ])),
      h("section", { class: "panel" }, h("h3", {}, t("dublinCore"), " ",
        h("small", { class: "dim" }, canEdit ? t("curatorOwns") : "")), dcForm, fixed),
      h("section", { class: "panel" }, h("h3", {}, t("downloads")), h("div", { class: "row" },
        dlButton(t("downloadJson"), `/api/v1/results/${taskId}`, `${stem}.json`),
        dlButton(t("downloadRttm"), `/api/v1/results/${taskId}/rttm`, `${stem}.rttm`),
        dlButton(t("downloadDc"), `/api/v1/results/${taskId}/oai_dc`, `${stem}.oai_dc.xml`))),
      h("section", { class: "panel" }, h("h3", {}, t("models")), dl([
        [t("software"), doc.provenance?.software_version],
        ...Object.entries(doc.provenance?.models || {}),
      ])));
  };

  const drawHistory = () => {
    fill(history, state.annotations.map((a) => {
      const d = a.detail;
      const what = {
        category: () => `${t(`cat${d.category}`)} ${d.start != null ? span(d) : ""}`,
        speaker_name: () => `${d.speaker} → ${d.name}`,
        speaker_merge: () => `${d.speaker} → ${d.merge_into}`,
        wrong_segment: () => `${t("markWrong")}: ${d.lane} ${span(d)}`,
      }[a.kind]();
      return h("li", { "data-kind": a.kind }, t("correctedBy", { what, who: a.reported_by, when: when(a.received_at) }));
    }));
  };

  const applyAnnotations = (annotations) => {
    state.annotations = annotations;
    state.names = {};
    state.merges = {};
    for (const [label, info] of Object.entries(state.doc.results.speaker_recognition?.speakers || {})) {
      if (info.name) state.names[label] = info.name;
    }
    for (const a of annotations) {
      if (a.kind === "speaker_name") state.names[a.detail.speaker] = a.detail.name;
      if (a.kind === "speaker_merge") state.merges[a.detail.speaker] = a.detail.merge_into;
    }
  };

  const refresh = async () => {
    applyAnnotations(await api(`/api/v1/results/${taskId}/annotations`));
    drawLanes();
    drawSide();
    drawHistory();
  };

  const load = async () => {
    const [status, doc, annotations, record, link] = await Promise.all([
      api(`/api/v1/status/${taskId}`), api(`/api/v1/results/${taskId}`),
      api(`/api/v1/results/${taskId}/annotations`), api(`/api/v1/recordings/${taskId}/dublin-core`),
      api(`/api/v1/recordings/${taskId}/audio-link`),
    ]);
    duration = doc.audio_info.duration || 1;
    audio.src = link.url;
    title.textContent = (record.elements.title || [])[0] || status.filename;
    summary.textContent = `${status.filename} · ${clock(duration)} · ${status.processing_type} · ${when(status.completed_at)}`;
    state = { doc, record, overview: null };
    applyAnnotations(annotations);
    drawLanes();
    drawSide();
    drawHistory();
    api(`/api/v1/recordings/${taskId}/overview`).then((overview) => {
      state.overview = overview;
      drawWaveform(wave, overview.peaks);
      drawSpectrogram(spectro, overview.spectrogram);
      wave.dataset.drawn = "true";
      drawLanes();
    }).catch((error) => { summary.textContent += ` · ${t("error", { reason: error.message })}`; });
  };
  load().catch((error) => { summary.textContent = t("error", { reason: error.message }); });
  return null;
}

// Drawing a recording: waveform and spectrogram canvases from the precomputed overview,
// and lanes of segment buttons (speech, speakers, heritage category, music, silence).
import { h, clock } from "./dom.js";
import { MUSIC_CATEGORIES, t } from "./i18n.js";

const SILENT_PEAK = 1; // overview peaks are signed bytes: 1/127 is about -42 dBFS
const MIN_SILENCE_S = 1;

/** Min/max peaks as vertical bars, one per column, scaled to the canvas. */
export function drawWaveform(canvas, peaks) {
  const width = (canvas.width = canvas.clientWidth * devicePixelRatio || 1200);
  const height = (canvas.height = canvas.clientHeight * devicePixelRatio || 120);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = getComputedStyle(canvas).color;
  const columns = peaks.length / 2;
  const middle = height / 2;
  for (let x = 0; x < width; x++) {
    const c = Math.min(columns - 1, Math.floor((x / width) * columns));
    const low = peaks[2 * c] / 127;
    const high = peaks[2 * c + 1] / 127;
    ctx.fillRect(x, middle - high * middle, 1, Math.max(1, (high - low) * middle));
  }
}

/** The spectrogram's bytes (column after column, low band first) as an image. */
export function drawSpectrogram(canvas, spectrogram) {
  const { columns, bands, data } = spectrogram;
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  canvas.width = columns;
  canvas.height = bands;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(columns, bands);
  for (let c = 0; c < columns; c++) {
    for (let b = 0; b < bands; b++) {
      const v = bytes[c * bands + b];
      const i = ((bands - 1 - b) * columns + c) * 4;
      image.data[i] = Math.min(255, v * 1.4);
      image.data[i + 1] = Math.max(0, v * 1.1 - 60);
      image.data[i + 2] = Math.max(40, 160 - v * 0.5);
      image.data[i + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
}

/** Runs of near-silent overview columns, as segments of at least a second. */
export function silenceSegments(overview) {
  const { peaks, duration } = overview;
  const columns = peaks.length / 2;
  const out = [];
  let start = null;
  for (let c = 0; c <= columns; c++) {
    const quiet = c < columns && Math.max(-peaks[2 * c], peaks[2 * c + 1]) <= SILENT_PEAK;
    if (quiet && start === null) start = c;
    if (!quiet && start !== null) {
      const seg = { start: (start / columns) * duration, end: (c / columns) * duration };
      if (seg.end - seg.start >= MIN_SILENCE_S) out.push(seg);
      start = null;
    }
  }
  return out;
}

/** Adjacent timeline windows of music categories, joined. */
export function musicSegments(timeline) {
  const out = [];
  for (const w of timeline || []) {
    if (!MUSIC_CATEGORIES.has(w.category)) continue;
    const last = out[out.length - 1];
    if (last && w.start - last.end < 0.01) last.end = w.end;
    else out.push({ start: w.start, end: w.end });
  }
  return out;
}

/** One lane: a label and a track of segment buttons placed by time. `describe(seg)` gives
 * the accessible text; `decorate(button, seg)` adds classes (category, corrected, wrong). */
export function lane({ id, label, help, segments, duration, onPick, describe, decorate }) {
  const track = h("div", { class: "track", role: "group", "aria-label": label });
  const buttons = segments.map((seg) => {
    const button = h("button", {
      type: "button", class: "seg", "data-start": seg.start, "data-end": seg.end,
      "aria-label": describe(seg), title: describe(seg),
    });
    button.style.left = `${(seg.start / duration) * 100}%`;
    button.style.width = `${Math.max(0.05, ((seg.end - seg.start) / duration) * 100)}%`;
    if (decorate) decorate(button, seg);
    button.addEventListener("click", () => onPick(id, seg, button));
    return button;
  });
  track.append(...buttons);
  return h("div", { class: "lane", "data-lane": id, "data-testid": "lane" },
    h("span", { class: "lane-label", title: help || label }, label, h("small", { class: "dim" }, ` ${segments.length}`)), track);
}

export function span(seg) {
  return `${clock(seg.start, 1)}–${clock(seg.end, 1)}`;
}

export function laneLabel(kind, name) {
  return t(kind, { name });
}

// A few DOM helpers: elements built from code (never from HTML strings), so text from the
// API is always text, and nothing needs an inline script or style.

/** `h("button", {class: "x", onclick: f}, "Play")`: an element with attributes and children. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "value") element.value = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

/** Replace the children of `element`. */
export function fill(element, ...children) {
  element.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return element;
}

/** 75.5 -> "1:15.5"; 3725 -> "1:02:05". */
export function clock(seconds, decimals = 0) {
  const s = Math.max(0, seconds);
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = (s % 60).toFixed(decimals).padStart(decimals ? 3 + decimals : 2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** A labelled form control: `<label>text <input …></label>`. */
export function field(labelText, control) {
  return h("label", { class: "field" }, h("span", {}, labelText), control);
}

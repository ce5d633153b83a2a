// The archive application's access to the API: the signed-in session, JSON requests,
// uploads with progress, and server-sent events read through fetch (so the token travels
// in a header, never in a URL).

const KEY = "heritage-audio-session";

export const session = {
  get() {
    try { return JSON.parse(sessionStorage.getItem(KEY)) || null; } catch { return null; }
  },
  save(value) { sessionStorage.setItem(KEY, JSON.stringify(value)); },
  clear() { sessionStorage.removeItem(KEY); },
  can(...roles) { const s = this.get(); return Boolean(s && roles.includes(s.role)); },
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function authHeaders() {
  const s = session.get();
  return s ? { Authorization: `Bearer ${s.token}` } : {};
}

async function reason(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

/** A request to the API; the parsed JSON (or the Response with `raw`), ApiError otherwise. */
export async function api(path, { method = "GET", json, raw = false, signal } = {}) {
  const headers = { ...authHeaders() };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, signal, body: json === undefined ? undefined : JSON.stringify(json),
  });
  if (response.status === 401 && session.get()) {
    session.clear();
    location.hash = "#/login";
  }
  if (!response.ok) throw new ApiError(response.status, await reason(response));
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

/** Sign in: stores the token and role for this browser tab. */
export async function signIn(username, password) {
  const response = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw new ApiError(response.status, await reason(response));
  const body = await response.json();
  session.save({ token: body.access_token, role: body.role, name: username });
  return body;
}

/** Upload one file with form fields; `onProgress(fraction)` as bytes leave. Resolves to
 * {ok, status, body}; the server's refusal comes back in body.detail. */
export function upload(file, fields, onProgress) {
  return new Promise((resolve) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) if (value !== "") form.append(name, value);
    form.append("audio_file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/process");
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { body = { detail: xhr.statusText }; }
      resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, body });
    });
    xhr.addEventListener("error", () => resolve({ ok: false, status: 0, body: { detail: "network error" } }));
    xhr.send(form);
  });
}

/** Follow a server-sent event stream until `signal` aborts; reconnects after errors.
 * Calls `onEvent(type, data)` for each event and `onState(live)` as it connects. */
export async function follow(path, signal, onEvent, onState) {
  while (!signal.aborted) {
    try {
      const response = await fetch(path, { headers: authHeaders(), signal });
      if (!response.ok) throw new ApiError(response.status, await reason(response));
      onState(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let type = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length) onEvent(type, JSON.parse(data.join("\n")));
        }
      }
    } catch (error) {
      if (signal.aborted) return;
    }
    onState(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

/** Save an authenticated download under `filename`. */
export async function download(path, filename) {
  const response = await api(path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

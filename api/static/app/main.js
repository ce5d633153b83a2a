// The archive application: a hash router over its pages, the header and sign-in.
import { session, signIn } from "./api.js";
import { h, fill, field } from "./dom.js";
import { t } from "./i18n.js";
import { jobsPage } from "./jobs.js";
import { recordingPage } from "./recording.js";
import { searchPage } from "./search.js";
import { uploadPage } from "./upload.js";

const main = document.querySelector("[data-ref=main]");
const nav = document.querySelector("[data-ref=nav]");
const who = document.querySelector("[data-ref=who]");
const toastBox = document.querySelector("[data-ref=toast]");
let leave = null; // the current page's clean-up (closes its event stream)

export function toast(message) {
  toastBox.textContent = message;
  toastBox.classList.add("shown");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => toastBox.classList.remove("shown"), 4000);
}

function loginPage() {
  const user = h("input", { name: "username", autocomplete: "username", required: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const message = h("p", { class: "error", role: "alert", "data-testid": "login-error" });
  const form = h("form", { class: "panel narrow", "aria-labelledby": "login-title" },
    h("h2", { id: "login-title" }, t("signIn")),
    field(t("username"), user), field(t("password"), pass),
    h("button", { type: "submit", class: "primary" }, t("signIn")), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn(user.value, pass.value);
      location.hash = "#/jobs";
    } catch (error) {
      message.textContent = t("signInFailed", { reason: error.message });
    }
  });
  fill(main, form);
  user.focus();
}

function header() {
  const s = session.get();
  const links = s ? [["#/jobs", t("navJobs")], ["#/search", t("navSearch")]] : [];
  if (session.can("admin", "operator")) links.splice(1, 0, ["#/upload", t("navUpload")]);
  links.push(["/", t("navLive")]);
  const current = location.hash.split("/")[1] || "";
  fill(nav, links.map(([href, text]) => h("a", {
    href, "aria-current": href === `#/${current}` ? "page" : null,
  }, text)));
  if (s) {
    fill(who, h("span", { "data-testid": "signed-in" }, t("signedInAs", s)),
      h("button", { type: "button", onclick: () => { session.clear(); location.hash = "#/login"; } }, t("signOut")));
  } else {
    fill(who, h("a", { href: "#/login" }, t("signIn")));
  }
}

const PAGES = { jobs: jobsPage, upload: uploadPage, search: searchPage, recording: recordingPage };

function route() {
  if (leave) { leave(); leave = null; }
  const [, name = "", ...rest] = location.hash.split("/");
  if (!session.get() || name === "login") {
    header();
    loginPage();
    return;
  }
  header();
  const page = PAGES[name] || jobsPage;
  if (!PAGES[name]) history.replaceState(null, "", "#/jobs");
  leave = page(main, { params: rest.map(decodeURIComponent), toast }) || null;
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
route();

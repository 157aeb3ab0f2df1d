/* The options page: read the form, validate it (a hub on another machine must be https://; a hub
 * address the admin's policy locks is shown read-only), ask
 * Chrome for access to a hub that is not on this machine, save (the token to local storage, the
 * rest to sync: storage.js); "Test connection" asks the hub who the token is; "Sign in with the
 * code" trades a one-time code for a token (signin.js) and saves it the same way. */

import { apiUrl, normaliseHubUrl, validateSettings } from "../background/settings.js";
import { exchangeCode, parseSignIn } from "../background/signin.js";
import { loadManaged, loadSettings, saveSettings } from "../background/storage.js";

const form = document.getElementById("form");
const $ = (id) => document.getElementById(id);
const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost"]); // in host_permissions already

function fillCountries(selected) {
  const names = new Intl.DisplayNames([navigator.language || "en"], { type: "region" });
  const countries = globalThis.libphonenumber.getCountries()
    .map((code) => ({ code, name: names.of(code) || code }))
    .sort((a, b) => a.name.localeCompare(b.name));
  for (const { code, name } of countries) {
    const option = new Option(`${name} (${code})`, code, false, code === selected);
    $("defaultCountry").append(option);
  }
}

function readForm() {
  return {
    hubUrl: form.hubUrl.value,
    token: form.token.value,
    legA: form.legA.value,
    legANumber: form.legANumber.value,
    defaultCountry: form.defaultCountry.value,
    popBehaviour: form.popBehaviour.value,
    detection: form.detection.checked,
    detectionOffSites: form.detectionOffSites.value,
  };
}

function writeForm(s) {
  form.hubUrl.value = s.hubUrl;
  form.token.value = s.token;
  form.legA.value = s.legA;
  form.legANumber.value = s.legANumber ? globalThis.callpopPhone.formatForPeople(s.legANumber, s.defaultCountry) : "";
  form.defaultCountry.value = s.defaultCountry;
  form.popBehaviour.value = s.popBehaviour;
  form.detection.checked = s.detection;
  form.detectionOffSites.value = (s.detectionOffSites || []).join("\n");
}

function showErrors(errors = {}) {
  for (const p of document.querySelectorAll(".error[data-for]")) p.textContent = errors[p.dataset.for] || "";
}

function say(el, text, ok) {
  el.textContent = text;
  el.className = "result " + (ok ? "ok" : "bad");
}

/* Chrome must allow requests to the hub; a hub elsewhere than this machine needs the user's yes.
 * Called first thing in a click handler: the request needs the click's user gesture. */
function askForHub(hubUrl) {
  const hub = normaliseHubUrl(hubUrl);
  if (hub.error) return Promise.resolve(true); // refused anyway (e.g. http:// elsewhere): no prompt, the check says why
  const url = new URL(hub.value);
  if (LOCAL_HOSTS.has(url.hostname)) return Promise.resolve(true);
  return chrome.permissions.request({ origins: [`${url.protocol}//${url.hostname}/*`] }).catch(() => false);
}

/* GET /api/me with the token: the agent's name, or the exact reason it failed. */
export async function testConnection(hubUrl, token, fetchImpl = fetch) {
  const hub = normaliseHubUrl(hubUrl);
  if (hub.error) return { ok: false, text: hub.error };
  if (!token.trim()) return { ok: false, text: "Enter your agent token first." };
  let response;
  try {
    response = await fetchImpl(apiUrl(hub.value, "/api/me"), {
      headers: { Authorization: `Bearer ${token.trim()}` },
      signal: AbortSignal.timeout(5000),
    });
  } catch (e) {
    const why = e.name === "TimeoutError" ? "no answer within 5 s" : e.message;
    return { ok: false, text: `Could not reach ${hub.value}: ${why}. Is the hub running, and is the address right?` };
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = body.message ? `${body.error || "error"}: ${body.message}` : response.statusText;
    return { ok: false, text: `The hub answered ${response.status} (${detail}).` };
  }
  const phones = [body.extension && `extension ${body.extension}`, body.mobile && `mobile ${body.mobile}`,
    body.home && `home ${body.home}`].filter(Boolean).join(", ");
  return { ok: true, agent: body, text: `Connected as ${body.name || body.id}${phones ? ` (${phones})` : ""}.` };
}

function labelPhones(agent) {
  $("legA-extension").textContent = agent.extension ? `My extension (${agent.extension})` : "My extension (none on file)";
  $("legA-mobile").textContent = agent.mobile ? `My mobile (${agent.mobile})` : "My mobile (none on file)";
  $("legA-home").textContent = agent.home ? `My home phone (${agent.home})` : "My home phone (none on file)";
}

function showStatus(status) {
  const el = $("status");
  if (!status) return;
  const text = {
    connected: `Connected to the hub as ${status.detail}: pop-ups will show here.`,
    connecting: "Connecting to the hub…",
    disconnected: `Not connected to the hub: ${status.detail}`,
    signed_out: `Signed out: ${status.detail}`,
  }[status.state] || status.state;
  el.textContent = text;
  el.className = "status " + status.state;
}

$("test").addEventListener("click", () => {
  const permitted = askForHub(form.hubUrl.value);
  const result = $("test-result");
  say(result, "Testing…", true);
  permitted.then(async (ok) => {
    if (!ok) return say(result, "Chrome was not allowed to contact this hub, so callpop cannot reach it.", false);
    const outcome = await testConnection(form.hubUrl.value, form.token.value);
    say(result, outcome.text, outcome.ok);
    if (outcome.agent) labelPhones(outcome.agent);
  });
});

$("signin").addEventListener("click", () => {
  const result = $("signin-result");
  const parsed = parseSignIn(form.signinCode.value, form.hubUrl.value);
  if (parsed.error) return say(result, parsed.error, false);
  const permitted = askForHub(parsed.hubUrl); // first: the permission prompt needs this click
  say(result, "Signing in…", true);
  permitted.then(async (ok) => {
    if (!ok) return say(result, "Chrome was not allowed to contact this hub, so callpop cannot reach it.", false);
    const outcome = await exchangeCode(parsed.hubUrl, parsed.code);
    if (!outcome.ok) return say(result, outcome.text, false);
    // The rest of the settings as they were saved (not half-typed ones); the token only in local storage.
    const checked = validateSettings({ ...(await loadSettings()), hubUrl: parsed.hubUrl, token: outcome.token });
    if (checked.errors) return say(result, "Signed in, but not saved: " + Object.values(checked.errors).join("; "), false);
    await saveSettings(checked.settings);
    form.hubUrl.value = checked.settings.hubUrl;
    form.token.value = checked.settings.token; // a password field: kept for Save, never shown
    form.signinCode.value = "";
    labelPhones(outcome.agent);
    say(result, outcome.text, true);
  });
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const checked = validateSettings(readForm());
  showErrors(checked.errors);
  if (checked.errors) return say($("saved"), "Not saved: fix the fields marked above.", false);
  askForHub(checked.settings.hubUrl).then(async (ok) => {
    if (!ok) return say($("saved"), "Not saved: callpop needs permission to contact your hub.", false);
    await saveSettings(checked.settings);
    writeForm(checked.settings);
    say($("saved"), "Saved.", true);
  });
});

chrome.storage.session.onChanged.addListener((changes) => {
  if (changes.status) showStatus(changes.status.newValue);
});

/* A hub address the admin's policy locks: shown, not editable (what is saved is the policy's anyway). */
function showManaged(policy) {
  form.hubUrl.readOnly = policy.locked;
  $("hubUrl-managed").hidden = !policy.locked;
}

loadSettings().then((s) => {
  fillCountries(s.defaultCountry);
  writeForm(s);
});
loadManaged().then(showManaged);
chrome.storage.session.get("status").then(({ status }) => showStatus(status || { state: "connecting" }));

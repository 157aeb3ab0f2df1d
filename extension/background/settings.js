/* The agent's settings: defaults, validation, and the URLs and dial parameters derived from them.
 * Shared by the service worker and the options page; where each is kept is storage.js. */

export const DEFAULTS = Object.freeze({
  hubUrl: "http://127.0.0.1:8765",
  token: "",
  legA: "extension", // which of the agent's phones rings first: extension | mobile | home | other
  legANumber: "", // the number typed in when legA is "other" (E.164 once saved)
  defaultCountry: "IL", // for numbers written without an international prefix
  popBehaviour: "stay", // stay: a bubble stays until dismissed; fade: it goes by itself
  detection: true,
  detectionOffSites: [], // host names where numbers are not marked
});

export const LEG_A_CHOICES = Object.freeze(["extension", "mobile", "home", "other"]);
export const POP_BEHAVIOURS = Object.freeze(["stay", "fade"]);

const lib = () => globalThis.libphonenumber;

/* Hosts that are this machine: only these may be reached over plain http:// (ws://). */
export const LOOPBACK_HOSTS = Object.freeze(["127.0.0.1", "localhost", "[::1]"]);

export const NEEDS_HTTPS = "A hub on another machine needs https:// (over http:// your agent token would cross the network in clear); " +
  "http:// is only for a hub on this machine (127.0.0.1, localhost, [::1])";

/* "https://www.example.com/x", "*.example.com", "EXAMPLE.com:8080" -> "example.com"-style host. */
export function normaliseSite(text) {
  let site = String(text || "").trim().toLowerCase();
  if (!site) return "";
  site = site.replace(/^\*\./, "");
  try {
    site = new URL(/^[a-z][a-z0-9+.-]*:\/\//.test(site) ? site : "http://" + site).hostname;
  } catch {
    return null;
  }
  const hostLike = /^[a-z0-9.-]+$/.test(site) && !site.startsWith(".") && site.includes(".");
  return hostLike || site === "localhost" ? site : null;
}

export function siteIsOff(host, sites) {
  host = String(host || "").toLowerCase();
  return (sites || []).some((site) => host === site || host.endsWith("." + site));
}

/* The hub's base URL as typed, checked: https, or http to this machine only; a host, no query;
 * without a trailing slash. The URL parser has normalised the host first (127.1, 0x7f.0.0.1 and
 * LOCALHOST are 127.0.0.1 and localhost), so look-alikes such as localhost.example.com are refused. */
export function normaliseHubUrl(text) {
  const raw = String(text || "").trim();
  let url;
  try {
    url = new URL(raw);
  } catch {
    return { error: "Enter the hub's address, e.g. http://127.0.0.1:8765 or https://callpop.example.com" };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return { error: "The hub's address starts with http:// or https://" };
  if (url.username || url.password) return { error: "Leave user names and passwords out of the address; the token signs you in" };
  if (url.search || url.hash) return { error: "The hub's address has no ?query or #fragment" };
  if (url.protocol === "http:" && !LOOPBACK_HOSTS.includes(url.hostname)) return { error: NEEDS_HTTPS };
  return { value: url.origin + url.pathname.replace(/\/+$/, "") };
}

/* Validate what the options form holds; returns {settings} ready to save, or {errors: {field: why}}. */
export function validateSettings(input) {
  const errors = {};
  const out = { ...DEFAULTS };

  const hub = normaliseHubUrl(input.hubUrl);
  if (hub.error) errors.hubUrl = hub.error;
  else out.hubUrl = hub.value;

  const token = String(input.token || "").trim();
  if (!token) errors.token = "Paste the agent token your callpop administrator gave you";
  else if (/\s/.test(token) || token.length > 200) errors.token = "A token is one word without spaces (at most 200 characters)";
  else out.token = token;

  const country = String(input.defaultCountry || "").trim().toUpperCase();
  if (!lib().isSupportedCountry(country)) errors.defaultCountry = "Choose a country (two-letter code such as IL, US or GB)";
  else out.defaultCountry = country;

  if (!LEG_A_CHOICES.includes(input.legA)) errors.legA = "Choose which phone rings first";
  else out.legA = input.legA;
  if (input.legA === "other") {
    const typed = String(input.legANumber || "").trim();
    const parsed = typed && lib().parsePhoneNumberFromString(typed, errors.defaultCountry ? undefined : country);
    if (!typed) errors.legANumber = "Type the number of the phone that should ring first";
    else if (!parsed || !parsed.isValid()) errors.legANumber = `${typed} is not a phone number we can dial`;
    else out.legANumber = parsed.number;
  }

  if (!POP_BEHAVIOURS.includes(input.popBehaviour)) errors.popBehaviour = "Choose how pop-ups behave";
  else out.popBehaviour = input.popBehaviour;

  out.detection = input.detection !== false;

  const sites = Array.isArray(input.detectionOffSites)
    ? input.detectionOffSites
    : String(input.detectionOffSites || "").split(/[\s,]+/);
  const bad = [];
  const clean = [];
  for (const s of sites) {
    if (!String(s).trim()) continue;
    const site = normaliseSite(s);
    if (site === null) bad.push(String(s).trim());
    else if (!clean.includes(site)) clean.push(site);
  }
  if (bad.length) errors.detectionOffSites = `Not a web site: ${bad.join(", ")}`;
  else out.detectionOffSites = clean;

  return Object.keys(errors).length ? { errors } : { settings: out };
}

/* Thrown for a hub address the extension will not send the token to (e.g. one stored by an older
 * version that accepted http:// to any host). */
export class HubRefused extends Error {}

function checkedHub(hubUrl) {
  const hub = normaliseHubUrl(hubUrl);
  if (hub.error) throw new HubRefused(`Not connecting to ${String(hubUrl || "").trim() || "an empty address"}: ${hub.error}`);
  return hub.value;
}

/* The hub's /ws URL (wss:// for https://). Checks the address again: every way the token leaves
 * goes through here or apiUrl. */
export function wsUrl(hubUrl) {
  const url = new URL(checkedHub(hubUrl));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.pathname = url.pathname.replace(/\/+$/, "") + "/ws";
  url.search = "";
  url.hash = "";
  return url.toString();
}

export function apiUrl(hubUrl, path) {
  return checkedHub(hubUrl) + path;
}

/* What POST /api/dial expects as leg_a. */
export function legAParam(settings) {
  return settings.legA === "other" ? settings.legANumber : settings.legA;
}

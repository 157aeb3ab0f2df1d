/* Signing in with a one-time code a supervisor made (POST /api/signin): what the agent typed
 * (the code, or the sign-in link that also names the hub), and the exchange for a token of the
 * agent's own, which the options page stores like a pasted token (chrome.storage.local) and never
 * shows. Shared by the options page and the tests. */

import { apiUrl, normaliseHubUrl } from "./settings.js";

const CODE = /^[A-Za-z0-9]{4}[- ]?[A-Za-z0-9]{4}$/;
export const CODE_HINT = "A sign-in code is 8 letters and digits, like ABCD-EFGH (or paste the sign-in link)";

/* {hubUrl, code} from "ABCD-EFGH" and the hub address typed in, or from a link
 * "https://hub.example.com/signin#code=ABCD-EFGH" (its hub wins); else {error}. */
export function parseSignIn(text, typedHubUrl) {
  const raw = String(text || "").trim();
  if (!raw) return { error: "Enter the sign-in code your supervisor gave you" };
  let code = raw;
  let hubUrl = typedHubUrl;
  if (/^https?:\/\//i.test(raw)) {
    let url;
    try {
      url = new URL(raw);
    } catch {
      return { error: CODE_HINT };
    }
    code = new URLSearchParams(url.hash.replace(/^#/, "")).get("code") || "";
    hubUrl = url.origin + url.pathname.replace(/\/signin\/?$/, "");
  }
  if (!CODE.test(code.trim())) return { error: CODE_HINT };
  const hub = normaliseHubUrl(hubUrl);
  if (hub.error) return { error: hub.error };
  return { hubUrl: hub.value, code: code.trim().toUpperCase() };
}

/* Trade the code for a token: {ok: true, token, agent, text} or {ok: false, text} saying why
 * (used, expired, too many tries, hub not reachable). The token is never in `text`. */
export async function exchangeCode(hubUrl, code, fetchImpl = fetch) {
  let response;
  try {
    response = await fetchImpl(apiUrl(hubUrl, "/api/signin"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code }),
      signal: AbortSignal.timeout(5000),
    });
  } catch (e) {
    const why = e.name === "TimeoutError" ? "no answer within 5 s" : e.message;
    return { ok: false, text: `Could not reach ${hubUrl}: ${why}. Is the hub address right?` };
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const why = body.message || response.statusText || `HTTP ${response.status}`;
    return { ok: false, text: `Not signed in: ${why}.`.replace(/\.\.$/, ".") };
  }
  if (typeof body.token !== "string" || !body.token || !body.agent) {
    return { ok: false, text: "Not signed in: the hub's answer has no token." };
  }
  const agent = body.agent;
  return { ok: true, token: body.token, agent, text: `Signed in as ${agent.name || agent.id}.` };
}

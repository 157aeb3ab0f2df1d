/* Notes and dispositions on a call, from the extension: the "Add note" button of a bubble opens
 * notes/notes.html?call=<id>, which loads the call's notes (GET /api/calls/{id}/log) and saves
 * the agent's (POST, the same route the console uses). Only the hub's own validation decides what
 * is accepted; these functions say its answer in words for the agent, never the token. */

import { apiUrl } from "./settings.js";

export const NOTES_PAGE = "notes/notes.html";
const TIMEOUT_MS = 5000;

/* The page of one call's note (relative to the extension's root). */
export function notesPage(callId) {
  return `${NOTES_PAGE}?call=${encodeURIComponent(callId)}`;
}

async function ask(fetchImpl, hubUrl, token, callId, init = {}) {
  let response;
  try {
    response = await fetchImpl(apiUrl(hubUrl, `/api/calls/${encodeURIComponent(callId)}/log`), {
      ...init,
      headers: { Authorization: `Bearer ${token}`, ...(init.body ? { "Content-Type": "application/json" } : {}) },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (e) {
    const why = e.name === "TimeoutError" ? `no answer within ${TIMEOUT_MS / 1000} s` : e.message;
    return { ok: false, text: `Could not reach the hub: ${why}.` };
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) return { ok: false, text: body.message || `The hub answered HTTP ${response.status}.` };
  return { ok: true, body };
}

/* {ok, call: {status, dispositions, notes: [...], log: [...]}} or {ok: false, text}. */
export async function loadNotes(hubUrl, token, callId, fetchImpl = fetch) {
  const got = await ask(fetchImpl, hubUrl, token, callId);
  return got.ok ? { ok: true, call: got.body } : got;
}

/* Save a note: {ok, text} saying where it went (with the call's log, or queued for the CRM). */
export async function saveNote(hubUrl, token, callId, { disposition = "", notes = "" }, fetchImpl = fetch) {
  const got = await ask(fetchImpl, hubUrl, token, callId, {
    method: "POST", body: JSON.stringify({ disposition, notes }),
  });
  if (!got.ok) return { ok: false, text: `Not saved: ${got.text}` };
  const { revision, logged } = got.body;
  return { ok: true, text: revision ? "Saved, and sent to your CRM." : `Saved (${logged}).` };
}

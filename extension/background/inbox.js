/* Missed calls: the hub's `inbox` message (sent on welcome and whenever it changes) is kept in
 * session storage, where the toolbar popup (popup/popup.html) reads it and the badge counts it.
 * "Call back" is a normal click-to-call linked to the missed call (`callback_for`); "Done" is
 * POST /api/missed/{call_id}/done. The hub then sends the new inbox. */

import { apiUrl } from "./settings.js";
import { displayText } from "./text.js";

export const INBOX_KEY = "inbox";
const REQUEST_TIMEOUT_MS = 10000;
const MAX_ITEMS = 50;

/* "14:05", or "Mon 14:05" for another day: when a call was missed, in the browser's time. */
export function whenText(iso, now = Date.now()) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const today = new Date(now).toDateString() === at.toDateString();
  return today ? time : `${at.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" })} ${time}`;
}

/* What the popup lists for an `inbox` message: every text from the hub through displayText. */
export function inboxItems(message, now = Date.now()) {
  const missed = message && Array.isArray(message.missed) ? message.missed : [];
  return missed.filter((e) => e && typeof e.call_id === "string" && e.call_id).slice(0, MAX_ITEMS).map((e) => {
    const phone = displayText(e.phone) || displayText(e.caller);
    const name = displayText(e.name);
    return {
      call_id: e.call_id,
      title: name || phone || "Number withheld",
      detail: name ? phone : "",
      when: whenText(e.missed_at, now),
      kind: e.kind === "unseen" ? "unseen" : "missed",
      label: e.kind === "unseen" ? "Pop not seen" : "Missed call",
      number: typeof e.e164 === "string" && e.e164 ? e.e164 : (typeof e.caller === "string" ? e.caller : ""),
    };
  });
}

/* How many open entries an `inbox` message says there are (0 for anything else). */
export function inboxCount(message) {
  const n = Number(message && message.count);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

export class Inbox {
  /**
   * @param {object} deps area: chrome.storage.session (or a fake); settings(): the current
   *   settings; dialing: a Dialing (its call(number, extra)); onCount(n): the badge;
   *   fetch; now()
   */
  constructor({ area, settings, dialing, onCount = () => {}, fetch = globalThis.fetch.bind(globalThis), now = Date.now }) {
    Object.assign(this, { area, settings, dialing, onCount, fetch, now });
  }

  /* An `inbox` message from the hub. */
  async update(message) {
    const count = inboxCount(message);
    await this.area.set({ [INBOX_KEY]: { missed: Array.isArray(message.missed) ? message.missed : [], count, at: this.now() } });
    this.onCount(count);
  }

  async current() {
    const stored = await this.area.get(INBOX_KEY);
    return (stored && stored[INBOX_KEY]) || { missed: [], count: 0 };
  }

  /* "Call back": a click-to-call to the missed caller, linked to the missed call. */
  async callBack(callId) {
    const entry = (await this.current()).missed.find((e) => e && e.call_id === callId);
    if (!entry) return null;
    const item = inboxItems({ missed: [entry] }, this.now())[0];
    if (!item.number) return null;
    return this.dialing.call(item.number, { callback_for: callId });
  }

  /* "Done": the hub marks it handled (and sends the inbox without it). Resolves to true if it did. */
  async done(callId) {
    const s = await this.settings();
    if (!s.token || typeof callId !== "string" || !callId) return false;
    const url = apiUrl(s.hubUrl, `/api/missed/${encodeURIComponent(callId)}/done`);
    try {
      const response = await this.fetch(url, { method: "POST", headers: { Authorization: `Bearer ${s.token}` },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      return response.status === 200;
    } catch {
      return false;
    }
  }
}

/* Screen pops: a hub `pop` becomes a notification bubble; a later `pop` for the same call updates
 * it in place; a `call` that was answered elsewhere, ended or missed clears it. Clicking opens the
 * CRM page (http/https only) and closing it is reported back, so the hub can tell whether agents
 * use their pops: `ack shown`, `ack clicked`, `ack closed`. */

import { notesPage } from "./notes.js";
import { displayText } from "./text.js";

export const POP_PREFIX = "pop:";
const CLEARING_STATES = new Set(["answered_elsewhere", "ended", "missed"]);

/* The URL a bubble may open: absolute http(s) only, never javascript:, data:, file: or relative. */
export function safeUrl(url) {
  if (typeof url !== "string" || !url) return "";
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : "";
  } catch {
    return "";
  }
}

/* chrome.notifications options for a `pop` message (every field from the hub through displayText). */
export function popBubble(pop, { popBehaviour = "stay", iconUrl = "" } = {}) {
  const phone = displayText(pop.phone) || displayText(pop.raw);
  const number = phone || "Number withheld";
  const name = displayText(pop.name);
  const company = displayText(pop.company);
  const extension = displayText(pop.extension);
  const total = Number(pop.total) || 0;
  let title;
  let message;
  switch (pop.status) {
    case "found":
      title = name || company || number;
      message = [name ? company : "", number].filter(Boolean).join("\n");
      break;
    case "multiple":
      title = `${total > 1 ? total : "Several"} matches`;
      message = [number, name ? `First: ${name}${company ? ` (${company})` : ""}` : ""].filter(Boolean).join("\n");
      break;
    case "pending":
      title = number;
      message = "Looking up the caller…";
      break;
    default: // not_found, error (a broken CRM says nothing about the caller)
      title = "Unknown caller";
      message = number;
  }
  return {
    type: "basic",
    iconUrl,
    title,
    message,
    contextMessage: extension ? `Incoming call · extension ${extension}` : "Incoming call",
    priority: 2,
    requireInteraction: popBehaviour !== "fade",
    isClickable: Boolean(safeUrl(pop.url)),
    buttons: [{ title: "Add note" }],
    silent: false,
  };
}

export class Popups {
  /**
   * @param {object} deps notifications/tabs: the chrome APIs (or fakes); records: a Records;
   *   send(message): to the hub; settings(): the current settings; iconUrl; now();
   *   pageUrl(path): the extension's own page at path (chrome.runtime.getURL)
   */
  constructor({ notifications, tabs, records, send, settings, iconUrl = "", now = Date.now, pageUrl = (path) => path }) {
    Object.assign(this, { notifications, tabs, records, send, settings, iconUrl, now, pageUrl });
    this.queue = Promise.resolve(); // one bubble operation at a time: create, then update, never crossed
  }

  serial(work) {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => {});
    return run;
  }

  /* A `pop` from the hub. */
  show(pop, receivedAt = this.now()) {
    return this.serial(async () => {
      if (!pop || typeof pop.call_id !== "string" || !pop.call_id) return;
      const id = POP_PREFIX + pop.call_id;
      const record = (await this.records.get(id)) || {};
      if (record.closed || record.cleared) return; // dismissed, or the call moved on: stay quiet
      const { popBehaviour } = await this.settings();
      const options = popBubble(pop, { popBehaviour, iconUrl: this.iconUrl });
      let shown = false;
      if (record.shownAt) shown = await this.notifications.update(id, options);
      if (!shown) await this.notifications.create(id, options);
      const shownAt = record.shownAt || this.now();
      await this.records.put(id, {
        ...record, kind: "pop", call_id: pop.call_id, url: safeUrl(pop.url), status: pop.status,
        title: options.title, message: options.message, receivedAt, shownAt, updatedAt: this.now(),
        updates: (record.updates || 0) + (record.shownAt ? 1 : 0),
        shown: [...(record.shown || []), { status: pop.status, title: options.title, message: options.message, at: this.now() }].slice(-5),
      });
      if (!record.shownAt) this.send({ type: "ack", call_id: pop.call_id, event: "shown" });
    });
  }

  /* A `call` from the hub: answered elsewhere, ended or missed clears the bubble. */
  callState(message) {
    return this.serial(async () => {
      if (!message || !CLEARING_STATES.has(message.state)) return;
      const id = POP_PREFIX + message.call_id;
      const record = await this.records.get(id);
      await this.records.put(id, { ...(record || { kind: "pop", call_id: message.call_id }), cleared: message.state });
      if (record) await this.notifications.clear(id);
    });
  }

  /* The agent clicked a bubble: open the CRM page if it is a web page, and say so to the hub. */
  clicked(id) {
    return this.serial(async () => {
      if (!id.startsWith(POP_PREFIX)) return;
      const record = await this.records.get(id);
      if (!record) return;
      const url = safeUrl(record.url);
      if (url) await this.tabs.create({ url });
      this.send({ type: "ack", call_id: record.call_id, event: "clicked" });
      await this.records.put(id, { ...record, clickedAt: this.now(), cleared: record.cleared || "clicked" });
      await this.notifications.clear(id);
    });
  }

  /* A bubble's button: "Add note" opens the call's note page (the bubble stays). */
  button(id, index) {
    return this.serial(async () => {
      if (!id.startsWith(POP_PREFIX) || index !== 0) return;
      const record = await this.records.get(id);
      if (record) await this.tabs.create({ url: this.pageUrl(notesPage(record.call_id)) });
    });
  }

  /* The hub says how the call's log went to the CRM: kept with the bubble's record. */
  logged(message) {
    return this.serial(async () => {
      if (!message || typeof message.call_id !== "string") return;
      const id = POP_PREFIX + message.call_id;
      const record = await this.records.get(id);
      if (record) await this.records.put(id, { ...record, logged: message.state, logUrl: safeUrl(message.url) });
    });
  }

  /* A bubble went away. Only the agent closing it counts as `closed`; our own clears do not. */
  closed(id, byUser) {
    return this.serial(async () => {
      if (!id.startsWith(POP_PREFIX) || !byUser) return;
      const record = await this.records.get(id);
      if (!record || record.closed) return;
      await this.records.put(id, { ...record, closed: true, closedAt: this.now() });
      this.send({ type: "ack", call_id: record.call_id, event: "closed" });
    });
  }
}

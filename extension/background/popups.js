/* Screen pops: a hub `pop` becomes a notification bubble; a later `pop` for the same call updates
 * it in place; a `call` that was answered elsewhere, ended or missed clears it. Clicking opens the
 * CRM page (http/https only) and closing it is reported back, so the hub can tell whether agents
 * use their pops: `ack shown`, `ack clicked`, `ack closed`.
 *
 * Several matches with candidates (the pop's `contacts`) become buttons: Chrome gives a
 * notification two at most, so with more than two the second is "More…", which opens a small
 * extension page (choose/) listing them all. (The `list` notification type would show every
 * name, but its items are not clickable, and Windows' and macOS' native notifications show
 * only the first.) A choice opens that contact and goes back as `ack clicked` with `chosen`. */

import { notesPage } from "./notes.js";
import { displayText } from "./text.js";

export const POP_PREFIX = "pop:";
const MAX_BUTTONS = 2; // what Chrome allows on one notification
const MAX_CONTACTS = 5; // the hub sends no more
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

/* The contacts a several-matches pop offers, as shown: text only, http(s) URLs only; `index`
 * is the contact's place in the hub's list (what `chosen` names). */
export function popContacts(pop) {
  if (!pop || pop.status !== "multiple" || !Array.isArray(pop.contacts)) return [];
  return pop.contacts.slice(0, MAX_CONTACTS)
    .map((c, index) => ({ index, name: displayText(c && c.name), company: displayText(c && c.company), url: safeUrl(c && c.url) }))
    .filter((c) => c.name && c.url);
}

const contactLabel = (c) => (c.company ? `${c.name} (${c.company})` : c.name);

/* What each button of the bubble does: choose a contact (its index), open the page of them all,
 * or, when there is nothing to choose, open the call's note page. */
export function bubbleButtons(pop) {
  const choices = choiceButtons(popContacts(pop));
  return choices.length ? choices : [{ title: "Add note", note: true }];
}

export function choiceButtons(contacts) {
  if (contacts.length <= MAX_BUTTONS) return contacts.map((c) => ({ title: contactLabel(c), choose: c.index }));
  return [{ title: contactLabel(contacts[0]), choose: contacts[0].index },
    { title: `More… (${contacts.length} contacts)`, more: true }];
}

/* Why the caller was named, in small text: only when it is news (a later format, or a choice made before). */
export function matchedText(matched) {
  if (!matched || typeof matched !== "object") return "";
  if (matched.how === "chosen") return `chosen before${displayText(matched.by) ? ` by ${displayText(matched.by)}` : ""}`;
  if (matched.how === "format" && Number(matched.attempt) > 1 && displayText(matched.as)) {
    return `matched as ${displayText(matched.as)}`;
  }
  return "";
}

/* chrome.notifications options for a `pop` message (every field from the hub through displayText). */
export function popBubble(pop, { popBehaviour = "stay", iconUrl = "" } = {}) {
  const phone = displayText(pop.phone) || displayText(pop.raw);
  const number = phone || "Number withheld";
  const name = displayText(pop.name);
  const company = displayText(pop.company);
  const extension = displayText(pop.extension);
  const total = Number(pop.total) || 0;
  const buttons = bubbleButtons(pop);
  const choosing = !buttons[0].note;
  let title;
  let message;
  switch (pop.status) {
    case "found":
      title = name || company || number;
      message = [name ? company : "", number].filter(Boolean).join("\n");
      break;
    case "multiple":
      title = `${total > 1 ? total : "Several"} matches`;
      message = choosing ? `${number}\nChoose the contact:`
        : [number, name ? `First: ${name}${company ? ` (${company})` : ""}` : ""].filter(Boolean).join("\n");
      break;
    case "pending":
      title = number;
      message = "Looking up the caller…";
      break;
    default: // not_found, error (a broken CRM says nothing about the caller)
      title = "Unknown caller";
      message = number;
  }
  const context = [extension ? `Incoming call · extension ${extension}` : "Incoming call", matchedText(pop.matched)];
  const options = {
    type: "basic",
    iconUrl,
    title,
    message,
    contextMessage: context.filter(Boolean).join(" · "),
    priority: 2,
    requireInteraction: popBehaviour !== "fade",
    isClickable: Boolean(safeUrl(pop.url)),
    buttons: buttons.map((b) => ({ title: b.title })),
    silent: false,
  };
  return options;
}

export class Popups {
  /**
   * @param {object} deps notifications/tabs: the chrome APIs (or fakes); records: a Records;
   *   send(message): to the hub; settings(): the current settings; iconUrl; now();
   *   pageUrl(path): the extension's own page at path (chrome.runtime.getURL)
   */
  constructor({ notifications, tabs, records, send, settings, iconUrl = "", choosePage = "", now = Date.now,
    pageUrl = (path) => path }) {
    Object.assign(this, { notifications, tabs, records, send, settings, iconUrl, choosePage, now, pageUrl });
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
        contacts: popContacts(pop), buttons: bubbleButtons(pop),
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

  /* The agent clicked one of the bubble's buttons: a contact, "More…" (the page of them all), or
   * "Add note" (the call's note page; the bubble stays). */
  buttonClicked(id, buttonIndex) {
    return this.serial(async () => {
      if (!id.startsWith(POP_PREFIX)) return;
      const record = await this.records.get(id);
      const action = record && (record.buttons || [])[buttonIndex];
      if (!action) return;
      if (action.note) {
        await this.tabs.create({ url: this.pageUrl(notesPage(record.call_id)) });
        return;
      }
      if (action.more) {
        if (this.choosePage) await this.tabs.create({ url: `${this.choosePage}?call=${encodeURIComponent(record.call_id)}` });
        return;
      }
      await this.chooseIn(id, record, action.choose);
    });
  }

  /* The contacts of a call's bubble, for the choice page. */
  async contactsOf(callId) {
    const record = await this.records.get(POP_PREFIX + callId);
    if (!record || !(record.contacts || []).length) return null;
    return { call_id: record.call_id, title: record.title, contacts: record.contacts, chosen: record.chosen ?? null };
  }

  /* A contact chosen on the choice page; false when the bubble offered no such contact. */
  choose(callId, index) {
    return this.serial(async () => {
      const id = POP_PREFIX + callId;
      const record = await this.records.get(id);
      return Boolean(record) && this.chooseIn(id, record, index);
    });
  }

  async chooseIn(id, record, index) {
    const contact = (record.contacts || []).find((c) => c.index === index);
    const url = contact && safeUrl(contact.url);
    if (!url) return false;
    await this.tabs.create({ url });
    this.send({ type: "ack", call_id: record.call_id, event: "clicked", chosen: contact.index });
    await this.records.put(id, { ...record, clickedAt: this.now(), chosen: contact.index, cleared: record.cleared || "clicked" });
    await this.notifications.clear(id);
    return true;
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

/* A message from the choice page (choose/choose.js): the bubble's contacts, or the agent's choice.
 * The worker passes on only messages from that page; undefined for anything else. */
export function fromChoicePage(popups, message) {
  if (!message || typeof message.call_id !== "string") return undefined;
  if (message.type === "pop-contacts") return popups.contactsOf(message.call_id);
  if (message.type === "pop-choose" && Number.isInteger(message.index)) return popups.choose(message.call_id, message.index);
  return undefined;
}

/* Click-to-call: POST /api/dial with the agent's own phone as leg A, then one notification per
 * dial that follows the hub's `dial` messages: your phone is about to ring, it rings, you
 * answered, the other side rings, connected, or failed and why. */

import { apiUrl, legAParam } from "./settings.js";
import { loadSettings } from "./storage.js";
import { displayText } from "./text.js";

export const DIAL_PREFIX = "dial:";
const ORDER = ["requested", "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged", "ended", "failed"];
const FINAL = new Set(["ended", "failed"]);
const REQUEST_TIMEOUT_MS = 10000;

const phone = () => globalThis.callpopPhone;

function capitalise(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

/* "your mobile (054-812-4567)": which of the agent's phones rings first. */
export function whichPhone(kind, legA, country) {
  const shown = displayText(typeof legA === "string" && legA.startsWith("+") ? phone().formatForPeople(legA, country) : legA);
  switch (kind) {
    case "extension":
      return shown ? `your extension ${shown}` : "your extension";
    case "mobile":
      return shown ? `your mobile (${shown})` : "your mobile";
    case "home":
      return shown ? `your home phone (${shown})` : "your home phone";
    default:
      return shown ? `your phone ${shown}` : "your phone";
  }
}

/* {title, message} of the dial bubble in a given state (the hub's words through displayText). */
export function dialBubble(dial, state, country) {
  const to = displayText(dial.to) || "the number";
  const mine = whichPhone(dial.leg_a_kind, dial.leg_a, country);
  switch (state) {
    case "requested":
      return { title: `Calling ${to}`, message: `${capitalise(mine)} is about to ring. Answer it and you will be connected to ${to}.` };
    case "leg_a_ringing":
      return { title: `Calling ${to}`, message: `${capitalise(mine)} is ringing: answer it.` };
    case "leg_a_answered":
      return { title: `Calling ${to}`, message: `You answered. Now ringing ${to}…` };
    case "leg_b_ringing":
      return { title: `Ringing ${to}`, message: `Waiting for ${to} to answer…` };
    case "bridged":
      return { title: `Connected to ${to}`, message: `You are talking to ${to}.` };
    case "ended":
      return { title: `Call with ${to} ended`, message: "The call is over." };
    case "failed": {
      const reason = capitalise(displayText(dial.reason) || "the call could not be placed");
      const error = displayText(dial.error);
      return { title: `Call to ${to} failed`, message: error ? `${reason} (${error}).` : `${reason}.` };
    }
    default:
      return { title: `Calling ${to}`, message: state };
  }
}

export class Dialing {
  constructor({ notifications, records, fetch = globalThis.fetch.bind(globalThis), settings = loadSettings, iconUrl = "",
    now = Date.now }) {
    Object.assign(this, { notifications, records, fetch, settings, iconUrl, now });
    this.queue = Promise.resolve();
  }

  serial(work) {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => {});
    return run;
  }

  /* The agent chose "Click2Call to <number>" (or "Call back" in the popup: `extra` then holds
   * `callback_for`). Resolves to the dial id, or null when refused. */
  async call(e164, extra = {}) {
    const s = await this.settings();
    const to = phone().formatForPeople(e164, s.defaultCountry);
    if (!s.token) {
      await this.notice(`Could not call ${to}`, "Sign in first: open the callpop options and enter your agent token.");
      return null;
    }
    let url;
    try {
      url = apiUrl(s.hubUrl, "/api/dial"); // refuses http:// to another machine: the token would travel in clear
    } catch (e) {
      await this.notice(`Could not call ${to}`, `${e.message}. Open the callpop options to change the hub's address.`);
      return null;
    }
    let response;
    let body = {};
    try {
      response = await this.fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${s.token}` },
        body: JSON.stringify({ ...extra, to: e164, leg_a: legAParam(s), source: "extension" }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      body = await response.json().catch(() => ({}));
    } catch (e) {
      await this.notice(`Could not call ${to}`, `The hub at ${s.hubUrl} did not answer (${e.name === "TimeoutError" ? "timed out" : e.message}).`);
      return null;
    }
    if (response.status !== 202 || !body.dial_id) {
      const why = displayText(body.message) || `the hub answered ${response.status}`;
      const error = displayText(body.error);
      await this.notice(`Could not call ${to}`, `${capitalise(why)}${error ? ` (${error})` : ""}.`);
      return null;
    }
    // The hub's own `requested` message may have arrived first; either way one bubble shows it.
    await this.progress({ type: "dial", dial_id: body.dial_id, state: "requested", to: body.to || to,
      leg_a: body.leg_a, leg_a_kind: body.leg_a_kind });
    return body.dial_id;
  }

  /* A `dial` message from the hub (or our own `requested` after POST /api/dial). */
  progress(message) {
    return this.serial(async () => {
      if (!message || typeof message.dial_id !== "string" || !ORDER.includes(message.state)) return;
      const id = DIAL_PREFIX + message.dial_id;
      const known = (await this.records.get(id)) || { kind: "dial", dial_id: message.dial_id, states: [] };
      if (known.states.includes(message.state) || FINAL.has(known.state)) return; // repeated or late
      const dial = {
        ...known,
        to: message.to || known.to,
        leg_a: message.leg_a || known.leg_a,
        leg_a_kind: message.leg_a_kind || known.leg_a_kind,
        error: message.error || known.error,
        reason: message.reason || known.reason,
        states: [...known.states, message.state],
      };
      // A state older than the one shown (the HTTP answer after the first `dial` message) is
      // recorded but does not turn the bubble back.
      const newest = ORDER.indexOf(message.state) >= ORDER.indexOf(known.state || "requested") || !known.state;
      if (newest) {
        const { defaultCountry } = await this.settings();
        const text = dialBubble(dial, message.state, defaultCountry);
        Object.assign(dial, { state: message.state, title: text.title, message: text.message,
          shown: [...(known.shown || []), { state: message.state, message: text.message, at: this.now() }] });
        await this.bubble(id, text, Boolean(known.state));
      }
      await this.records.put(id, dial);
    });
  }

  async bubble(id, text, exists) {
    const options = { type: "basic", iconUrl: this.iconUrl, title: text.title, message: text.message,
      contextMessage: "Click2Call", priority: 1, requireInteraction: false, silent: true };
    if (exists && (await this.notifications.update(id, options))) return;
    await this.notifications.create(id, options);
  }

  async notice(title, message) {
    await this.notifications.create(`notice:${this.now()}`, { type: "basic", iconUrl: this.iconUrl, title, message,
      contextMessage: "Click2Call", priority: 1 });
  }
}

/* Stand-ins for the chrome.* APIs the worker's features are given, recording what was asked. */

import "../vendor/libphonenumber-max.js";
import "../content/detect.js";

export class FakeNotifications {
  constructor() {
    this.shown = new Map();
    this.log = [];
  }
  async create(id, options) {
    this.log.push(["create", id, options.title]);
    this.shown.set(id, { ...options });
    return id;
  }
  async update(id, options) {
    this.log.push(["update", id, options.title]);
    if (!this.shown.has(id)) return false;
    this.shown.set(id, { ...this.shown.get(id), ...options });
    return true;
  }
  async clear(id) {
    this.log.push(["clear", id]);
    return this.shown.delete(id);
  }
}

/* A chrome.storage area: get(key | [keys] | {key: default} | null), set, remove, setAccessLevel. */
export class FakeArea {
  constructor(data = {}) {
    this.data = structuredClone(data);
    this.accessLevel = null;
  }
  async get(keys) {
    if (keys === null || keys === undefined) return structuredClone(this.data);
    const defaults = typeof keys === "string" ? { [keys]: undefined }
      : Array.isArray(keys) ? Object.fromEntries(keys.map((k) => [k, undefined])) : keys;
    const out = {};
    for (const [k, fallback] of Object.entries(defaults)) {
      if (k in this.data) out[k] = structuredClone(this.data[k]);
      else if (fallback !== undefined) out[k] = structuredClone(fallback);
    }
    return out;
  }
  async set(items) {
    Object.assign(this.data, structuredClone(items));
  }
  async remove(keys) {
    for (const k of [].concat(keys)) delete this.data[k];
  }
  async setAccessLevel({ accessLevel }) {
    this.accessLevel = accessLevel;
  }
}

export class FakeTabs {
  constructor() {
    this.opened = [];
  }
  async create({ url }) {
    this.opened.push(url);
    return { id: this.opened.length };
  }
}

export class FakeMenus {
  constructor() {
    this.items = new Map();
  }
  async removeAll() {
    this.items.clear();
  }
  async create(props) {
    this.items.set(props.id, { ...props });
  }
  async update(id, props) {
    this.items.set(id, { ...this.items.get(id), ...props });
  }
}

/* Timers run by hand: advance(ms) fires what is due. */
export class FakeTimers {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.next = 1;
  }
  setTimeout(fn, ms) {
    const id = this.next++;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  }
  setInterval(fn, ms) {
    const id = this.next++;
    this.timers.set(id, { at: this.now + ms, fn, every: ms });
    return id;
  }
  clearTimeout(id) {
    this.timers.delete(id);
  }
  clearInterval(id) {
    this.timers.delete(id);
  }
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.now);
  }
  advance(ms) {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      const [id, t] = due;
      this.now = t.at;
      if (t.every) t.at += t.every;
      else this.timers.delete(id);
      t.fn();
    }
    this.now = until;
  }
}

/* A WebSocket the test drives: open(), receive(message), close(code). */
export class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000, reason = "") {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.onclose && this.onclose({ code, reason });
  }
  // --- the hub's side
  open() {
    this.readyState = 1;
    this.onopen && this.onopen();
  }
  receive(message) {
    this.onmessage && this.onmessage({ data: JSON.stringify(message) });
  }
  drop(code, reason = "") {
    this.readyState = 3;
    this.onclose && this.onclose({ code, reason });
  }
}

/* The service worker's WebSocket to the hub: sign in with `hello`, keep it alive, and come back
 * after any drop with exponential backoff and jitter.
 *
 * A Manifest V3 worker is stopped after ~30 s without extension events; WebSocket protocol pings
 * do not count, application messages do. The hub sends a `heartbeat` every 15 s and we send our
 * own `ping` every 20 s. If the worker is stopped anyway, the keep-alive alarm (worker.js) starts
 * it again and `ensure()` reconnects.
 */

import { displayText } from "./text.js";

export const CLOSE_UNAUTHORIZED = 4401;
export const BASE_DELAY_MS = 500;
export const MAX_DELAY_MS = 30000;
export const PING_EVERY_MS = 20000;
export const SILENCE_LIMIT_MS = 50000; // no heartbeat for this long: the connection is dead
export const WELCOME_TIMEOUT_MS = 10000;
export const AUTH_RETRY_MS = 5 * 60000; // a refused token is tried again this rarely (or when it changes)

/* Delay before reconnect attempt n (0-based): exponential, capped, "equal jitter" so that many
 * browsers dropped by one hub restart do not all come back in the same instant. */
export function reconnectDelay(attempt, random = Math.random) {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class HubConnection {
  /**
   * @param {object} deps
   * @param {(message: object, receivedAt: number) => void} deps.onMessage every parsed hub message
   * @param {(state: string, detail: string) => void} deps.onState connected | connecting | disconnected | signed_out
   */
  constructor({ onMessage, onState, WebSocket = globalThis.WebSocket, timers = globalThis, now = Date.now,
    random = Math.random, wsUrl }) {
    Object.assign(this, { onMessage, onState, WebSocketImpl: WebSocket, timers, now, random, wsUrl });
    this.state = "disconnected";
    this.detail = "";
    this.hubUrl = "";
    this.token = "";
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.welcomeTimer = null;
    this.lastSeen = 0;
    this.refusedToken = null;
    this.refusedAt = 0;
    this.outbox = []; // acks made while offline, sent after the next welcome
    this.agent = null;
  }

  /* New settings: reconnect at once if where or who changed. */
  configure({ hubUrl, token }) {
    const changed = hubUrl !== this.hubUrl || token !== this.token;
    this.hubUrl = hubUrl || "";
    this.token = token || "";
    if (changed) {
      this.attempt = 0;
      this.refusedToken = null;
      this.reconnectNow();
    } else {
      this.ensure();
    }
  }

  /* Connect unless connected, connecting, or waiting out a backoff (called by the alarm too). */
  ensure() {
    if (this.ws || this.retryTimer) return;
    if (this.refusedToken !== null && this.refusedToken === this.token && this.now() - this.refusedAt < AUTH_RETRY_MS) return;
    this.connect();
  }

  reconnectNow() {
    this.clearRetry();
    this.drop();
    this.connect();
  }

  connect() {
    this.clearRetry();
    if (!this.hubUrl || !this.token) {
      this.setState("signed_out", this.hubUrl ? "no agent token: open the options" : "no hub address: open the options");
      return;
    }
    let url;
    try {
      url = this.wsUrl(this.hubUrl); // refuses ws:// to another machine (a setting from an older version)
    } catch (e) {
      this.setState("signed_out", e.message || `bad hub address ${this.hubUrl}`);
      return;
    }
    this.setState("connecting", url);
    const ws = new this.WebSocketImpl(url);
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.lastSeen = this.now();
      ws.send(JSON.stringify({ type: "hello", token: this.token, client: "extension" }));
      this.welcomeTimer = this.timers.setTimeout(() => {
        if (ws === this.ws && this.state !== "connected") this.fail(ws, "no welcome from the hub");
      }, WELCOME_TIMEOUT_MS);
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      const receivedAt = this.now();
      this.lastSeen = receivedAt;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!message || typeof message !== "object") return;
      if (message.type === "welcome") this.welcomed(message);
      this.onMessage(message, receivedAt);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.closed(event.code, event.reason);
    };
    ws.onerror = () => {}; // a close event follows and says what happened
  }

  welcomed(message) {
    this.attempt = 0;
    this.agent = message.agent || null;
    this.timers.clearTimeout(this.welcomeTimer);
    const name = displayText(this.agent && this.agent.name) || "agent";
    this.setState("connected", name);
    this.timers.clearInterval(this.pingTimer);
    this.pingTimer = this.timers.setInterval(() => this.tick(), PING_EVERY_MS);
    const queued = this.outbox.splice(0);
    for (const m of queued) this.send(m);
  }

  tick() {
    if (!this.ws) return;
    if (this.now() - this.lastSeen > SILENCE_LIMIT_MS) {
      this.fail(this.ws, "the hub went silent");
      return;
    }
    this.send({ type: "ping" });
  }

  /* Send now, or keep acks for the next connection (other messages are only worth sending live). */
  send(message) {
    if (this.ws && this.state === "connected" && this.ws.readyState === 1) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    if (message.type === "ack") {
      this.outbox.push(message);
      if (this.outbox.length > 100) this.outbox.shift();
    }
    return false;
  }

  /* Give up on this socket (drop() closes it) and retry as after any drop. */
  fail(ws, why) {
    if (ws === this.ws) this.closed(1006, why);
  }

  closed(code, reason) {
    this.drop();
    if (code === CLOSE_UNAUTHORIZED) {
      this.refusedToken = this.token;
      this.refusedAt = this.now();
      this.setState("signed_out", reason || "the hub refused the token");
      return;
    }
    const delay = reconnectDelay(this.attempt++, this.random);
    this.setState("disconnected", `${reason || "connection lost"} (code ${code}); retrying in ${(delay / 1000).toFixed(1)} s`);
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  /* Forget the current socket without scheduling anything. */
  drop() {
    this.timers.clearInterval(this.pingTimer);
    this.timers.clearTimeout(this.welcomeTimer);
    this.pingTimer = this.welcomeTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= 1) {
      try {
        ws.close(1000, "reconnecting");
      } catch {
        // ignore
      }
    }
  }

  clearRetry() {
    if (this.retryTimer) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  setState(state, detail = "") {
    this.state = state;
    this.detail = detail;
    this.onState(state, detail);
  }
}

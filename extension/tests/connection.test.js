/* The worker's connection to the hub, with a scripted WebSocket and hand-run timers. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { BASE_DELAY_MS, HubConnection, MAX_DELAY_MS, PING_EVERY_MS, reconnectDelay, SILENCE_LIMIT_MS } from "../background/connection.js";
import { badgeFor } from "../background/badge.js";
import { wsUrl } from "../background/settings.js";
import { FakeSocket, FakeTimers } from "./fakes.js";

function connect({ random = () => 0.5 } = {}) {
  FakeSocket.all = [];
  const timers = new FakeTimers();
  const states = [];
  const messages = [];
  const c = new HubConnection({ WebSocket: FakeSocket, timers, now: () => timers.now, random, wsUrl,
    onState: (s, d) => states.push([s, d]), onMessage: (m) => messages.push(m) });
  return { c, timers, states, messages, socket: () => FakeSocket.all.at(-1) };
}

test("backoff doubles up to a cap, with jitter in the upper half", () => {
  assert.equal(reconnectDelay(0, () => 0), BASE_DELAY_MS / 2);
  assert.equal(reconnectDelay(0, () => 1), BASE_DELAY_MS);
  assert.equal(reconnectDelay(3, () => 1), BASE_DELAY_MS * 8);
  assert.equal(reconnectDelay(50, () => 1), MAX_DELAY_MS);
  assert.equal(reconnectDelay(50, () => 0), MAX_DELAY_MS / 2);
  const spread = new Set(Array.from({ length: 20 }, () => reconnectDelay(4)));
  assert.ok(spread.size > 10, "browsers dropped together come back at different times");
});

test("hello with the token first; welcome means connected", () => {
  const { c, socket, states, messages } = connect();
  c.configure({ hubUrl: "http://127.0.0.1:8765", token: "demo-token-noa" });
  assert.equal(socket().url, "ws://127.0.0.1:8765/ws");
  socket().open();
  assert.deepEqual(socket().sent, [{ type: "hello", token: "demo-token-noa", client: "extension" }]);
  socket().receive({ type: "welcome", agent: { id: "noa", name: "Noa Levi" }, heartbeat_s: 15 });
  assert.deepEqual(states.at(-1), ["connected", "Noa Levi"]);
  assert.equal(messages[0].type, "welcome");
});

test("after a drop it reconnects by itself, later each time, and resets once welcomed", () => {
  const { c, socket, timers, states } = connect({ random: () => 1 });
  c.configure({ hubUrl: "https://hub.example/callpop/", token: "t" });
  assert.equal(socket().url, "wss://hub.example/callpop/ws");
  socket().open();
  socket().receive({ type: "welcome", agent: { name: "A" } });
  const delays = [];
  for (let i = 0; i < 4; i++) {
    socket().drop(1001, "hub shutting down");
    assert.equal(states.at(-1)[0], "disconnected");
    delays.push(timers.pending()[0]);
    timers.advance(delays.at(-1));
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000]);
  assert.equal(FakeSocket.all.length, 5);
  socket().open();
  socket().receive({ type: "welcome", agent: { name: "A" } });
  socket().drop(1006);
  assert.equal(timers.pending()[0], 500, "a good connection resets the backoff");
});

test("a refused token (4401) signs out and does not hammer the hub; a new token retries", () => {
  const { c, socket, timers, states } = connect();
  c.configure({ hubUrl: "http://127.0.0.1:8765", token: "wrong" });
  socket().open();
  socket().drop(4401, "invalid token");
  assert.deepEqual(states.at(-1), ["signed_out", "invalid token"]);
  assert.deepEqual(timers.pending(), []);
  c.ensure(); // the keep-alive alarm
  assert.equal(FakeSocket.all.length, 1);
  c.configure({ hubUrl: "http://127.0.0.1:8765", token: "demo-token-noa" });
  assert.equal(FakeSocket.all.length, 2);
});

test("no token or no hub: signed out without trying", () => {
  const { c, states } = connect();
  c.configure({ hubUrl: "http://127.0.0.1:8765", token: "" });
  assert.equal(states.at(-1)[0], "signed_out");
  assert.equal(FakeSocket.all.length, 0);
});

test("an http:// hub on another machine is refused: no socket, the reason shown, nothing sent", () => {
  const { c, states, timers, socket } = connect();
  c.configure({ hubUrl: "http://pbx.example.com:8765", token: "demo-token-noa" }); // stored by an older version
  assert.equal(FakeSocket.all.length, 0, "the token never leaves over ws://");
  const [state, detail] = states.at(-1);
  assert.equal(state, "signed_out");
  assert.match(detail, /^Not connecting to http:\/\/pbx\.example\.com:8765: .*https:\/\/.*in clear/);
  assert.match(badgeFor(state, detail).title, /in clear/, "the badge's title says why");
  assert.deepEqual(timers.pending(), [], "and does not retry by itself");
  c.ensure(); // the keep-alive alarm: still refused
  assert.equal(FakeSocket.all.length, 0);
  c.configure({ hubUrl: "https://pbx.example.com", token: "demo-token-noa" });
  assert.equal(socket().url, "wss://pbx.example.com/ws");
});

test("the agent's name from the hub is shown without bidi or zero-width characters", () => {
  const { c, socket, states } = connect();
  c.configure({ hubUrl: "http://127.0.0.1:8765", token: "t" });
  socket().open();
  socket().receive({ type: "welcome", agent: { name: "Noa\u202E Levi\u200B" } });
  assert.deepEqual(states.at(-1), ["connected", "Noa Levi"]);
});

test("pings every 20 s; a hub silent for too long is dropped and redialled", () => {
  const { c, socket, timers, states } = connect();
  c.configure({ hubUrl: "http://127.0.0.1:8765", token: "t" });
  socket().open();
  socket().receive({ type: "welcome", agent: { name: "A" } });
  timers.advance(PING_EVERY_MS);
  assert.deepEqual(socket().sent.at(-1), { type: "ping" });
  socket().receive({ type: "pong" });
  timers.advance(SILENCE_LIMIT_MS + PING_EVERY_MS);
  const dropped = states.find(([s, d]) => s === "disconnected" && /silent/.test(d));
  assert.ok(dropped, JSON.stringify(states));
  assert.equal(FakeSocket.all.length, 2, "and dialled again");
});

test("acks made while offline are sent after the next welcome", () => {
  const { c, socket, timers } = connect();
  c.configure({ hubUrl: "http://127.0.0.1:8765", token: "t" });
  socket().open();
  socket().receive({ type: "welcome", agent: { name: "A" } });
  socket().drop(1006);
  assert.equal(c.send({ type: "ack", call_id: "c1", event: "clicked" }), false);
  assert.equal(c.send({ type: "ping" }), false);
  timers.advance(1000);
  socket().open();
  socket().receive({ type: "welcome", agent: { name: "A" } });
  assert.deepEqual(socket().sent, [{ type: "hello", token: "t", client: "extension" }, { type: "ack", call_id: "c1", event: "clicked" }]);
});

test("the alarm reconnects a worker that has no socket and no retry pending", () => {
  const { c } = connect();
  c.hubUrl = "http://127.0.0.1:8765";
  c.token = "t";
  c.ensure();
  assert.equal(FakeSocket.all.length, 1);
  c.ensure(); // already connecting: nothing more
  assert.equal(FakeSocket.all.length, 1);
});

test("the badge says connected, disconnected or signed out", () => {
  assert.equal(badgeFor("connected", "Noa Levi").text, "on");
  assert.match(badgeFor("connected", "Noa Levi").title, /Noa Levi/);
  assert.equal(badgeFor("disconnected").text, "off");
  assert.equal(badgeFor("signed_out", "invalid token").text, "!");
  assert.notEqual(badgeFor("connected").color, badgeFor("signed_out").color);
});

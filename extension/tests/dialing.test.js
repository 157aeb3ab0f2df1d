/* Click-to-call from the menu: the request to the hub and the notifications that follow it. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { dialBubble, Dialing, whichPhone } from "../background/dialing.js";
import { Records } from "../background/records.js";
import { DEFAULTS } from "../background/settings.js";
import { FakeArea, FakeNotifications } from "./fakes.js";

function setup(respond, settings = {}) {
  const notifications = new FakeNotifications();
  const requests = [];
  const fetch = async (url, init) => {
    requests.push({ url, init, body: JSON.parse(init.body) });
    const [status, body] = respond(url, init);
    return { status, ok: status < 300, json: async () => body };
  };
  const dialing = new Dialing({ notifications, records: new Records(new FakeArea(), "dials"), fetch,
    settings: async () => ({ ...DEFAULTS, token: "demo-token-noa", ...settings }) });
  return { notifications, requests, dialing };
}

test("POST /api/dial with the number, the agent's leg A and source extension", async () => {
  const { requests, dialing, notifications } = setup(() => [202, { dial_id: "d1", leg_a: "+972548124567", leg_a_kind: "mobile", to: "054-555-7777" }],
    { legA: "mobile", hubUrl: "http://127.0.0.1:9000" });
  assert.equal(await dialing.call("+972545557777"), "d1");
  assert.equal(requests[0].url, "http://127.0.0.1:9000/api/dial");
  assert.equal(requests[0].init.headers.Authorization, "Bearer demo-token-noa");
  assert.deepEqual(requests[0].body, { to: "+972545557777", leg_a: "mobile", source: "extension" });
  const b = notifications.shown.get("dial:d1");
  assert.equal(b.title, "Calling 054-555-7777");
  assert.equal(b.message, "Your mobile (054-812-4567) is about to ring. Answer it and you will be connected to 054-555-7777.");
});

test("a stored http:// hub on another machine is refused before any request: the token stays here", async () => {
  const { requests, dialing, notifications } = setup(() => [202, { dial_id: "d9" }], { hubUrl: "http://pbx.example.com:8765" });
  assert.equal(await dialing.call("+972545557777"), null);
  assert.deepEqual(requests, []);
  const [notice] = notifications.shown.values();
  assert.equal(notice.title, "Could not call 054-555-7777");
  assert.match(notice.message, /Not connecting to http:\/\/pbx\.example\.com:8765: .*in clear.*Open the callpop options/);
});

test("another number typed in as leg A is sent as that number", async () => {
  const { requests, dialing } = setup(() => [202, { dial_id: "d2", leg_a: "+972501234567", leg_a_kind: "number", to: "x" }],
    { legA: "other", legANumber: "+972501234567" });
  await dialing.call("+972545557777");
  assert.equal(requests[0].body.leg_a, "+972501234567");
});

test("the bubble follows the dial to bridged, one bubble, in order", async () => {
  const { dialing, notifications } = setup(() => [202, { dial_id: "d1", leg_a: "201", leg_a_kind: "extension", to: "054-555-7777" }]);
  // The hub's `requested` can beat the HTTP answer.
  await dialing.progress({ type: "dial", dial_id: "d1", state: "requested", to: "054-555-7777", leg_a: "201", leg_a_kind: "extension" });
  await dialing.call("+972545557777");
  const titles = [];
  for (const state of ["leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged", "bridged", "ended"]) {
    await dialing.progress({ type: "dial", dial_id: "d1", state, to: "054-555-7777" });
    titles.push(notifications.shown.get("dial:d1").title);
  }
  assert.deepEqual(titles, ["Calling 054-555-7777", "Calling 054-555-7777", "Ringing 054-555-7777", "Connected to 054-555-7777",
    "Connected to 054-555-7777", "Call with 054-555-7777 ended"]);
  assert.equal(notifications.log.filter(([op]) => op === "create").length, 1);
  const record = await dialing.records.get("dial:d1");
  assert.deepEqual(record.states, ["requested", "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged", "ended"]);
});

test("a failed dial says why", async () => {
  const { dialing, notifications } = setup(() => [202, { dial_id: "d9", leg_a: "201", leg_a_kind: "extension", to: "054-555-9999" }]);
  await dialing.call("+972545559999");
  await dialing.progress({ type: "dial", dial_id: "d9", state: "failed", to: "054-555-9999", error: "leg_b_no_answer", reason: "054-555-9999 did not answer" });
  const b = notifications.shown.get("dial:d9");
  assert.equal(b.title, "Call to 054-555-9999 failed");
  assert.equal(b.message, "054-555-9999 did not answer (leg_b_no_answer).");
  await dialing.progress({ type: "dial", dial_id: "d9", state: "bridged" }); // too late: ignored
  assert.equal(notifications.shown.get("dial:d9").title, "Call to 054-555-9999 failed");
});

test("a refusal by the hub and an unreachable hub are shown with the exact reason", async () => {
  const refused = setup(() => [422, { error: "blocked_prefix", message: "numbers starting +1900 are blocked (premium rate / toll fraud)" }]);
  assert.equal(await refused.dialing.call("+19005550123"), null);
  const [b] = refused.notifications.shown.values();
  assert.equal(b.title, "Could not call +1 900 555 0123");
  assert.equal(b.message, "Numbers starting +1900 are blocked (premium rate / toll fraud) (blocked_prefix).");

  const down = setup(() => {
    throw new TypeError("Failed to fetch");
  });
  await down.dialing.call("+972545557777");
  assert.match([...down.notifications.shown.values()][0].message, /did not answer \(Failed to fetch\)/);

  const noToken = setup(() => [202, {}], { token: "" });
  await noToken.dialing.call("+972545557777");
  assert.equal(noToken.requests.length, 0);
  assert.match([...noToken.notifications.shown.values()][0].message, /Sign in first/);
});

test("which phone rings first, in words", () => {
  assert.equal(whichPhone("extension", "201", "IL"), "your extension 201");
  assert.equal(whichPhone("mobile", "+972548124567", "IL"), "your mobile (054-812-4567)");
  assert.equal(whichPhone("home", "+17185550199", "IL"), "your home phone (+1 718 555 0199)");
  assert.equal(whichPhone("number", "+972501234567", "IL"), "your phone 050-123-4567");
  assert.equal(dialBubble({ to: "x", leg_a_kind: "extension", leg_a: "201" }, "leg_a_ringing", "IL").message,
    "Your extension 201 is ringing: answer it.");
});

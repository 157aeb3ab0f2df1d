/* Hub messages: the dispatch table matches the hub's list of types, and each message does what
 * the agent should see (bubbles shown, updated in place, cleared; acks sent back). */

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { Records } from "../background/records.js";
import { dispatch, HUB_HANDLERS } from "../background/protocol.js";
import { popBubble, Popups, safeUrl } from "../background/popups.js";
import { displayText } from "../background/text.js";
import { FakeArea, FakeNotifications, FakeTabs } from "./fakes.js";
import { EXTENSION } from "./load-content-scripts.js";

function pythonTuple(name) {
  const source = fs.readFileSync(path.join(EXTENSION, "..", "pipelines", "events.py"), "utf8");
  const m = new RegExp(`^${name} = \\(([^)]*)\\)`, "m").exec(source);
  assert.ok(m, `${name} in pipelines/events.py`);
  return [...m[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]);
}

test("the dispatch table has exactly the hub's message types (HUB_TYPES)", () => {
  assert.deepEqual(Object.keys(HUB_HANDLERS).sort(), pythonTuple("HUB_TYPES").sort());
});

function setup({ popBehaviour = "stay" } = {}) {
  const notifications = new FakeNotifications();
  const tabs = new FakeTabs();
  const sent = [];
  const popups = new Popups({ notifications, tabs, records: new Records(new FakeArea(), "bubbles"),
    send: (m) => sent.push(m), settings: async () => ({ popBehaviour }), iconUrl: "icon.png" });
  const log = [];
  const app = { popups, dialing: { progress: async (m) => log.push(m) }, welcomed: (a) => log.push(a), log: (t) => log.push(t) };
  return { notifications, tabs, sent, popups, app, log };
}

const POP = { type: "pop", call_id: "c1", status: "found", phone: "072-277-6772", e164: "+972722776772",
  name: "John Doe", company: "Voicenter", url: "http://crm.example/contact/1", total: 1, extension: "201" };

test("a found pop becomes a bubble with name, company and number, and is acked shown once", async () => {
  const { notifications, sent, app } = setup();
  await dispatch(POP, app);
  const b = notifications.shown.get("pop:c1");
  assert.equal(b.title, "John Doe");
  assert.equal(b.message, "Voicenter\n072-277-6772");
  assert.equal(b.requireInteraction, true);
  assert.equal(b.isClickable, true);
  assert.deepEqual(sent, [{ type: "ack", call_id: "c1", event: "shown" }]);
  await dispatch(POP, app); // the hub replays ringing calls after a reconnect
  assert.equal(sent.length, 1);
});

test("unknown callers, several matches, pending lookups and withheld numbers", () => {
  const bubble = (p) => popBubble({ ...POP, ...p });
  assert.deepEqual([bubble({ status: "not_found", name: "", company: "" }).title, bubble({ status: "not_found" }).message],
    ["Unknown caller", "072-277-6772"]);
  assert.equal(bubble({ status: "error" }).title, "Unknown caller");
  const several = bubble({ status: "multiple", total: 3 });
  assert.equal(several.title, "3 matches");
  assert.match(several.message, /072-277-6772\nFirst: John Doe \(Voicenter\)/);
  assert.deepEqual([bubble({ status: "pending" }).title, bubble({ status: "pending" }).message], ["072-277-6772", "Looking up the caller…"]);
  assert.equal(bubble({ status: "not_found", phone: "", raw: "" }).message, "Number withheld");
  assert.equal(popBubble(POP, { popBehaviour: "fade" }).requireInteraction, false);
});

test("a later pop for the same call updates the bubble in place", async () => {
  const { notifications, sent, app } = setup();
  await dispatch({ ...POP, status: "pending", name: "", company: "", url: "" }, app);
  await dispatch(POP, app);
  assert.deepEqual(notifications.log.map(([op, id]) => `${op} ${id}`), ["create pop:c1", "update pop:c1"]);
  assert.equal(notifications.shown.get("pop:c1").title, "John Doe");
  assert.equal(notifications.shown.size, 1);
  assert.equal(sent.length, 1);
});

test("answered elsewhere, ended and missed clear the bubble; answered by me keeps it", async () => {
  for (const state of ["answered_elsewhere", "ended", "missed"]) {
    const { notifications, app } = setup();
    await dispatch(POP, app);
    await dispatch({ type: "call", call_id: "c1", state }, app);
    assert.equal(notifications.shown.size, 0, state);
    await dispatch(POP, app); // a late update must not bring it back
    assert.equal(notifications.shown.size, 0, state);
  }
  const { notifications, app } = setup();
  await dispatch(POP, app);
  await dispatch({ type: "call", call_id: "c1", state: "answered" }, app);
  assert.equal(notifications.shown.size, 1);
});

test("a click opens only http(s) URLs in a new tab and acks clicked; closing acks closed", async () => {
  const { tabs, sent, app, popups, notifications } = setup();
  await dispatch(POP, app);
  await popups.clicked("pop:c1");
  assert.deepEqual(tabs.opened, ["http://crm.example/contact/1"]);
  assert.deepEqual(sent.map((m) => m.event), ["shown", "clicked"]);
  assert.equal(notifications.shown.size, 0);

  const other = setup();
  for (const [i, url] of ["file:///etc/passwd", "data:text/html,<script>x</script>", "chrome://settings", "javascript:alert(1)"].entries()) {
    const id = i === 3 ? "c2" : `bad${i}`;
    await dispatch({ ...POP, call_id: id, url }, other.app);
    assert.equal(other.notifications.shown.get(`pop:${id}`).isClickable, false, url);
    await other.popups.clicked(`pop:${id}`);
  }
  assert.deepEqual(other.tabs.opened, [], "nothing but http(s) is opened");
  other.sent.splice(0, 6); // the acks of the bad0..bad2 bubbles
  await other.popups.closed("pop:c2", true);
  assert.deepEqual(other.sent.map((m) => m.event), ["shown", "clicked", "closed"]);

  const third = setup();
  await dispatch({ ...POP, call_id: "c3" }, third.app);
  await third.popups.closed("pop:c3", false); // our own clear, not the agent
  await third.popups.closed("pop:c3", true);
  await third.popups.closed("pop:c3", true);
  assert.deepEqual(third.sent.map((m) => m.event), ["shown", "closed"]);
});

test("names from the CRM lose bidi overrides and zero-width characters; no line of their own", () => {
  const spoofed = { ...POP, name: "John\u202E\u2066 Doe\u200B\u2069", company: "Voice\u200Dcenter\u00AD\nFraud dept",
    phone: "\u200E072-277-6772\u200F", extension: "201\uFEFF" };
  const b = popBubble(spoofed);
  assert.equal(b.title, "John Doe");
  assert.equal(b.message, "Voicecenter Fraud dept\n072-277-6772");
  assert.equal(b.contextMessage, "Incoming call · extension 201");
  assert.equal(popBubble({ ...spoofed, status: "multiple", total: 2 }).message, "072-277-6772\nFirst: John Doe (Voicecenter Fraud dept)");
  assert.equal(popBubble({ ...POP, status: "not_found", phone: "\u200B", raw: "" }).message, "Number withheld");
});

test("displayText drops every format character (Cf) and turns control characters into spaces", () => {
  assert.equal(displayText("a\u202Ab\u202Bc\u202Cd\u202De\u202Ef\u2066g\u2067h\u2068i\u2069j\u200Bk\u200Cl\u200Dm\u2060n\uFEFFo\u061Cp\u200Eq\u200Fr"),
    "abcdefghijklmnopqr");
  assert.equal(displayText(" line\r\nbreak\ttab\u0000 "), "line break tab");
  assert.equal(displayText("יוחנן כהן"), "יוחנן כהן", "right-to-left names are left alone");
  assert.equal(displayText(972722776772), "972722776772");
  for (const v of [null, undefined, {}, ["x"]]) assert.equal(displayText(v), "");
});

test("safeUrl keeps absolute http(s) only", () => {
  assert.equal(safeUrl("https://crm.example/x?phone=1"), "https://crm.example/x?phone=1");
  for (const bad of ["javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "/relative", "", null, "chrome://settings"]) {
    assert.equal(safeUrl(bad), "", String(bad));
  }
});

test("dial, welcome, error and unknown messages go where they belong", async () => {
  const { app, log } = setup();
  await dispatch({ type: "dial", dial_id: "d1", state: "bridged" }, app);
  dispatch({ type: "welcome", agent: { id: "noa", name: "Noa Levi" } }, app);
  dispatch({ type: "heartbeat", at: "now" }, app);
  dispatch({ type: "pong" }, app);
  dispatch({ type: "error", code: "unknown_call", message: "no pop" }, app);
  dispatch({ type: "brand_new" }, app);
  dispatch({ type: "toString" }, app);
  dispatch(null, app);
  assert.deepEqual(log.slice(0, 3), [{ type: "dial", dial_id: "d1", state: "bridged" }, { id: "noa", name: "Noa Levi" },
    "hub error unknown_call: no pop"]);
  assert.equal(log.length, 6, "unknown types are logged, not acted on");
});

test("a bubble's Add note button opens the call's note page, and the log's outcome is kept", async () => {
  const { tabs, app, popups } = setup();
  await dispatch(POP, app);
  assert.deepEqual(app.popups.notifications.shown.get("pop:c1").buttons, [{ title: "Add note" }]);
  await popups.buttonClicked("pop:c1", 0);
  assert.deepEqual(tabs.opened, ["notes/notes.html?call=c1"]);
  await popups.buttonClicked("pop:c1", 1); // no second button
  assert.equal(tabs.opened.length, 1);
  await dispatch({ type: "call_log", call_id: "c1", revision: 1, state: "delivered", url: "javascript:alert(1)" }, app);
  const record = await popups.records.get("pop:c1");
  assert.equal(record.logged, "delivered");
  assert.equal(record.logUrl, "");
});

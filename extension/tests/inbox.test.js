/* Missed calls in the extension: the inbox message kept for the popup, the badge's count next
 * to the connection state, "Call back" as a click-to-call linked to the missed call, "Done". */

import assert from "node:assert/strict";
import { test } from "node:test";
import { badgeFor } from "../background/badge.js";
import { dispatch } from "../background/protocol.js";
import { Inbox, INBOX_KEY, inboxCount, inboxItems, whenText } from "../background/inbox.js";
import { FakeArea } from "./fakes.js";

const NOW = Date.parse("2026-12-02T14:30:00Z");
const ENTRY = { call_id: "c1", agent_id: "noa", kind: "missed", caller: "0722776772", phone: "072-277-6772",
  e164: "+972722776772", name: "John Doe", missed_at: "2026-12-02T14:05:00Z", handled_at: null };
const MESSAGE = { type: "inbox", missed: [ENTRY], count: 1 };

test("the badge shows the missed count when connected, the connection state otherwise, and says both", () => {
  assert.deepEqual(badgeFor("connected", "noa", 0), badgeFor("connected", "noa"));
  assert.equal(badgeFor("connected", "noa", 0).text, "on");
  const missed = badgeFor("connected", "noa", 3);
  assert.equal(missed.text, "3");
  assert.equal(missed.color, "#d93025");
  assert.match(missed.title, /connected as noa\n3 missed calls in the inbox/);
  assert.equal(badgeFor("connected", "noa", 120).text, "99+");
  const off = badgeFor("disconnected", "no network", 2); // a stale count must not hide that pops cannot come
  assert.equal(off.text, "off");
  assert.match(off.title, /2 missed calls/);
  assert.equal(badgeFor("connected", "noa", 1).title.endsWith("1 missed call in the inbox"), true);
  assert.equal(badgeFor("connected", "noa", -1).text, "on");
});

test("inbox items: name first, the number beside it, withheld numbers named, markup never kept", () => {
  const [item] = inboxItems(MESSAGE, NOW);
  assert.equal(item.title, "John Doe");
  assert.equal(item.detail, "072-277-6772");
  assert.equal(item.number, "+972722776772");
  assert.equal(item.label, "Missed call");
  assert.equal(item.when, whenText(ENTRY.missed_at, NOW));
  assert.match(item.when, /^\d\d:\d\d/); // today: the time only
  const [unknown] = inboxItems({ missed: [{ ...ENTRY, name: "", e164: "" }] }, NOW);
  assert.equal(unknown.title, "072-277-6772");
  assert.equal(unknown.number, "0722776772");
  const [withheld] = inboxItems({ missed: [{ ...ENTRY, name: "", phone: "", caller: "", e164: "", kind: "unseen" }] }, NOW);
  assert.equal(withheld.title, "Number withheld");
  assert.equal(withheld.label, "Pop not seen");
  assert.equal(withheld.number, "");
  assert.deepEqual(inboxItems({ missed: [null, { call_id: "" }, "x"] }), []);
  assert.deepEqual(inboxItems(null), []);
  assert.notEqual(whenText("2026-11-30T09:00:00Z", NOW), whenText("2026-12-02T09:00:00Z", NOW)); // another day says which
  assert.equal(whenText("not a time", NOW), "");
  assert.equal(inboxCount({ count: 4 }), 4);
  assert.equal(inboxCount({ count: "x" }), 0);
});

function setup({ token = "tok" } = {}) {
  const area = new FakeArea();
  const calls = [];
  const fetched = [];
  const counts = [];
  const inbox = new Inbox({
    area,
    settings: async () => ({ token, hubUrl: "http://127.0.0.1:8765" }),
    dialing: { call: async (number, extra) => { calls.push([number, extra]); return "d1"; } },
    onCount: (n) => counts.push(n),
    fetch: async (url, init) => { fetched.push([url, init]); return { status: url.includes("gone") ? 404 : 200 }; },
    now: () => NOW,
  });
  return { area, calls, fetched, counts, inbox };
}

test("an inbox message is kept for the popup and counted on the badge; call back links the dial", async () => {
  const { area, calls, counts, inbox } = setup();
  await dispatch(MESSAGE, { inbox, log: () => {} });
  assert.deepEqual(counts, [1]);
  assert.deepEqual(area.data[INBOX_KEY].missed, [ENTRY]);
  assert.equal(await inbox.callBack("c1"), "d1");
  assert.deepEqual(calls, [["+972722776772", { callback_for: "c1" }]]);
  assert.equal(await inbox.callBack("not-in-the-inbox"), null);
  await inbox.update({ type: "inbox", missed: [], count: 0 });
  assert.deepEqual(counts, [1, 0]);
  assert.equal(await inbox.callBack("c1"), null); // handled meanwhile
});

test("done posts to the hub with the token, the id escaped; without a token nothing is sent", async () => {
  const { fetched, inbox } = setup();
  assert.equal(await inbox.done("c 1/x"), true);
  const [url, init] = fetched[0];
  assert.equal(url, "http://127.0.0.1:8765/api/missed/c%201%2Fx/done");
  assert.equal(init.method, "POST");
  assert.equal(init.headers.Authorization, "Bearer tok");
  assert.equal(await inbox.done("gone"), false);
  const signedOut = setup({ token: "" });
  assert.equal(await signedOut.inbox.done("c1"), false);
  assert.equal(signedOut.fetched.length, 0);
});

/* Several matches with candidates: the bubble's buttons (two at most, else "More…"), the choice
 * sent back as `ack clicked` with `chosen`, the choice page's messages, and "matched as". */

import assert from "node:assert/strict";
import { test } from "node:test";
import { Records } from "../background/records.js";
import { dispatch } from "../background/protocol.js";
import { choiceButtons, fromChoicePage, matchedText, popBubble, popContacts, Popups } from "../background/popups.js";
import { FakeArea, FakeNotifications, FakeTabs } from "./fakes.js";

const CHOOSE = "chrome-extension://x/choose/choose.html";

function setup() {
  const notifications = new FakeNotifications();
  const tabs = new FakeTabs();
  const sent = [];
  const popups = new Popups({ notifications, tabs, records: new Records(new FakeArea(), "bubbles"),
    send: (m) => sent.push(m), settings: async () => ({ popBehaviour: "stay" }), iconUrl: "icon.png", choosePage: CHOOSE });
  return { notifications, tabs, sent, popups, app: { popups } };
}

const contact = (i, extra = {}) => ({ name: `Person ${i}`, company: i % 2 ? "Law" : "", url: `https://crm.example/c/${i}`, ...extra });
const SEVERAL = (n) => ({ type: "pop", call_id: "m1", status: "multiple", phone: "03-555-1000", name: "Person 0 / Person 1",
  company: "", url: "https://crm.example/search", total: n, extension: "201", contacts: Array.from({ length: n }, (_, i) => contact(i)) });

test("two candidates are two buttons; more than two are the first and More…", () => {
  const two = popBubble(SEVERAL(2));
  assert.deepEqual(two.buttons, [{ title: "Person 0" }, { title: "Person 1 (Law)" }]);
  assert.equal(two.title, "2 matches");
  assert.equal(two.message, "03-555-1000\nChoose the contact:");
  const five = popBubble(SEVERAL(5));
  assert.deepEqual(five.buttons, [{ title: "Person 0" }, { title: "More… (5 contacts)" }]);
  assert.deepEqual(choiceButtons(popContacts(SEVERAL(5))), [{ title: "Person 0", choose: 0 }, { title: "More… (5 contacts)", more: true }]);
});

test("no candidates, or none usable, keep today's bubble, with only Add note", () => {
  const plain = { ...SEVERAL(2), contacts: undefined };
  assert.deepEqual(popBubble(plain).buttons, [{ title: "Add note" }]);
  assert.match(popBubble(plain).message, /First: Person 0/);
  const unsafe = { ...SEVERAL(2), contacts: [contact(0, { url: "javascript:alert(1)" }), contact(1, { name: "\u202E" })] };
  assert.deepEqual(popContacts(unsafe), []);
  assert.deepEqual(popBubble(unsafe).buttons, [{ title: "Add note" }]);
  assert.deepEqual(popContacts({ ...SEVERAL(2), status: "found" }), [], "only several matches offer a choice");
});

test("a contact left out keeps its index in the hub's list", () => {
  const pop = { ...SEVERAL(3), contacts: [contact(0, { url: "file:///etc/passwd" }), contact(1), contact(2)] };
  assert.deepEqual(choiceButtons(popContacts(pop)).map((b) => b.choose), [1, 2]);
});

test("clicking a contact's button opens it and sends the choice, once", async () => {
  const { tabs, sent, notifications, popups, app } = setup();
  await dispatch(SEVERAL(2), app);
  await popups.buttonClicked("pop:m1", 1);
  assert.deepEqual(tabs.opened, ["https://crm.example/c/1"]);
  assert.deepEqual(sent.slice(-1), [{ type: "ack", call_id: "m1", event: "clicked", chosen: 1 }]);
  assert.equal(notifications.shown.has("pop:m1"), false, "the bubble is cleared");
  await popups.buttonClicked("pop:m1", 7); // no such button
  assert.equal(sent.length, 2);
});

test("More… opens the choice page, which lists the contacts and sends the choice", async () => {
  const { tabs, sent, popups, app } = setup();
  await dispatch(SEVERAL(4), app);
  await popups.buttonClicked("pop:m1", 1);
  assert.deepEqual(tabs.opened, [`${CHOOSE}?call=m1`]);
  assert.equal(sent.length, 1, "only the shown ack so far");
  const listed = await fromChoicePage(popups, { type: "pop-contacts", call_id: "m1" });
  assert.deepEqual(listed.contacts.map((c) => [c.index, c.name]), [[0, "Person 0"], [1, "Person 1"], [2, "Person 2"], [3, "Person 3"]]);
  assert.equal(await fromChoicePage(popups, { type: "pop-choose", call_id: "m1", index: 3 }), true);
  assert.deepEqual(tabs.opened.slice(-1), ["https://crm.example/c/3"]);
  assert.deepEqual(sent.slice(-1), [{ type: "ack", call_id: "m1", event: "clicked", chosen: 3 }]);
  assert.equal(await fromChoicePage(popups, { type: "pop-choose", call_id: "m1", index: 9 }), false);
  assert.equal(await fromChoicePage(popups, { type: "pop-contacts", call_id: "nope" }), null);
  assert.equal(fromChoicePage(popups, { type: "pop-choose", call_id: "m1", index: "1" }), undefined);
  assert.equal(fromChoicePage(popups, { type: "menu-target" }), undefined);
});

test("clicking the bubble itself still opens the results page, with no choice", async () => {
  const { tabs, sent, popups, app } = setup();
  await dispatch(SEVERAL(2), app);
  await popups.clicked("pop:m1");
  assert.deepEqual(tabs.opened, ["https://crm.example/search"]);
  assert.deepEqual(sent.slice(-1), [{ type: "ack", call_id: "m1", event: "clicked" }]);
});

test("matched as: in small text when a later format or an earlier choice named the caller", () => {
  assert.equal(matchedText({ how: "format", format: "e164", as: "+972722776772", attempt: 2 }), "matched as +972722776772");
  assert.equal(matchedText({ how: "format", format: "national", as: "0722776772", attempt: 1 }), "");
  assert.equal(matchedText({ how: "chosen", by: "noa", total: 2 }), "chosen before by noa");
  assert.equal(matchedText({ how: "format", as: "\u202E+1", attempt: 2 }), "matched as +1");
  assert.equal(matchedText("matched"), "");
  const pop = { type: "pop", call_id: "f1", status: "found", phone: "072-277-6772", name: "John Doe", company: "",
    url: "https://crm.example/c/9", total: 1, extension: "201", matched: { how: "format", as: "+972722776772", attempt: 2 } };
  assert.equal(popBubble(pop).contextMessage, "Incoming call · extension 201 · matched as +972722776772");
});

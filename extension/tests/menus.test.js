/* "Click2Call to <number>": titles, which number a click is about, and the item's visibility. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { installMenu, Menu, MENU_ID, menuTitle, numberForClick } from "../background/menus.js";
import { Records } from "../background/records.js";
import { FakeArea, FakeMenus } from "./fakes.js";

test("titles carry the number formatted for people", () => {
  assert.equal(menuTitle("+972722776772", "IL"), "Click2Call to 072-277-6772");
  assert.equal(menuTitle("+972545557777", "IL"), "Click2Call to 054-555-7777");
  assert.equal(menuTitle("+12125550123", "US"), "Click2Call to (212) 555-0123");
  assert.equal(menuTitle("+12125550123", "IL"), "Click2Call to +1 212 555 0123");
  assert.equal(menuTitle("+442079460321", "GB"), "Click2Call to 020 7946 0321");
});

test("the number of a click: tel: link, selection, or what the page reported", () => {
  const last = { e164: "+972545557777", tabId: 7, frameId: 0, at: 1000 };
  const tab = { id: 7 };
  assert.equal(numberForClick({ linkUrl: "tel:+972722776772" }, tab, last, "IL", 2000), "+972722776772");
  assert.equal(numberForClick({ linkUrl: "callto:072-277-6772" }, tab, null, "IL", 2000), "+972722776772");
  assert.equal(numberForClick({ selectionText: "072-277-6772" }, tab, last, "IL", 2000), "+972722776772");
  assert.equal(numberForClick({ selectionText: "see you on 2024-11-25" }, tab, last, "IL", 2000), null);
  assert.equal(numberForClick({}, tab, last, "IL", 2000), "+972545557777");
  assert.equal(numberForClick({}, { id: 8 }, last, "IL", 2000), null, "another tab");
  assert.equal(numberForClick({ frameId: 3 }, tab, last, "IL", 2000), null, "another frame");
  assert.equal(numberForClick({}, tab, last, "IL", 1000 + 10 * 60000), null, "stale");
  assert.equal(numberForClick({ linkUrl: "https://example.com" }, tab, last, "IL", 2000), "+972545557777");
});

test("the item is created hidden and shown only over a number", async () => {
  const menus = new FakeMenus();
  await installMenu(menus);
  assert.deepEqual(menus.items.get(MENU_ID).visible, false);
  assert.deepEqual(menus.items.get(MENU_ID).contexts, ["page", "selection", "link"]);
  const menu = new Menu({ contextMenus: menus, records: new Records(new FakeArea(), "menu"), settings: async () => ({ defaultCountry: "IL" }) });
  await menu.target({ e164: "+972722776772", via: "text" }, { tab: { id: 3 }, frameId: 0 });
  assert.deepEqual([menus.items.get(MENU_ID).visible, menus.items.get(MENU_ID).title], [true, "Click2Call to 072-277-6772"]);
  assert.equal(await menu.numberFor({ menuItemId: MENU_ID, frameId: 0 }, { id: 3 }), "+972722776772");
  await menu.target(null, { tab: { id: 3 }, frameId: 0 });
  assert.equal(menus.items.get(MENU_ID).visible, false, "a right-click on no number hides the item");
});

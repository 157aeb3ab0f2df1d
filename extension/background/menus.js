/* The context-menu item "Click2Call to <number>".
 *
 * Chrome builds the menu from what the extension declared beforehand, so the item starts hidden
 * and the content script reports on every right-click (mousedown comes before the menu) which
 * number is under the pointer; the item is then shown with that number as its title, or hidden.
 * A tel:/callto: link or a selected number is re-read from the click itself. */

export const MENU_ID = "callpop-dial";
export const MENU_CONTEXTS = ["page", "selection", "link"];
const TARGET_FRESH_MS = 2 * 60000;

const phone = () => globalThis.callpopPhone;

export function menuTitle(e164, country) {
  return `Click2Call to ${phone().formatForPeople(e164, country)}`;
}

/* The number a menu click is about, or null. `last` is what the content script reported. */
export function numberForClick(info, tab, last, country, now = Date.now()) {
  if (info.linkUrl) {
    const e164 = phone().numberFromTelUrl(info.linkUrl, country);
    if (e164) return e164;
  }
  if (info.selectionText) return phone().numberInSelection(info.selectionText, country);
  if (last && last.e164 && tab && last.tabId === tab.id && (last.frameId || 0) === (info.frameId || 0) &&
      now - last.at < TARGET_FRESH_MS) return last.e164;
  return null;
}

/* Created in runtime.onInstalled (menus persist across worker restarts). */
export async function installMenu(contextMenus) {
  await contextMenus.removeAll();
  await contextMenus.create({ id: MENU_ID, title: "Click2Call", contexts: MENU_CONTEXTS, visible: false,
    documentUrlPatterns: ["http://*/*", "https://*/*"] });
}

export class Menu {
  constructor({ contextMenus, records, settings, now = Date.now }) {
    Object.assign(this, { contextMenus, records, settings, now });
    this.shown = { visible: false, title: "Click2Call" };
  }

  /* The content script says what is under the pointer (null: nothing callable). */
  async target(target, sender) {
    const { defaultCountry } = await this.settings();
    const e164 = target && typeof target.e164 === "string" ? target.e164 : null;
    const last = { e164, via: target ? target.via : null, tabId: sender.tab ? sender.tab.id : -1,
      frameId: sender.frameId || 0, at: this.now() };
    await this.records.put("menu", last);
    this.shown = e164 ? { visible: true, title: menuTitle(e164, defaultCountry) } : { visible: false, title: "Click2Call" };
    await this.contextMenus.update(MENU_ID, this.shown).catch(() => {});
    return this.shown;
  }

  async numberFor(info, tab) {
    const { defaultCountry } = await this.settings();
    return numberForClick(info, tab, await this.records.get("menu"), defaultCountry, this.now());
  }
}

/* The service worker: wires the features together. Every listener is registered here, at the
 * top level, so Chrome can start a stopped worker for any of these events and deliver it. */

import "../vendor/libphonenumber-max.js";
import "../content/detect.js";
import * as apis from "./apis.js";
import { showBadge } from "./badge.js";
import { HubConnection } from "./connection.js";
import { Dialing } from "./dialing.js";
import { Inbox } from "./inbox.js";
import { installMenu, Menu, MENU_ID } from "./menus.js";
import { fromChoicePage, Popups } from "./popups.js";
import { dispatch } from "./protocol.js";
import { Records } from "./records.js";
import { wsUrl } from "./settings.js";
import { loadSettings, lockSecrets, migrateSecrets } from "./storage.js";

const KEEPALIVE_ALARM = "callpop-keepalive";
const KEEPALIVE_MINUTES = 0.5; // the shortest period Chrome allows a packed extension
const ICON = chrome.runtime.getURL("icons/icon128.png");
const CHOOSE_PAGE = chrome.runtime.getURL("choose/choose.html");
const session = chrome.storage.session;

// Read fresh each time (a local read): a change takes effect at once, with no cache to go stale.
const settings = () => loadSettings();

// What the badge shows: the connection's state and the inbox's count (either may change first).
const badge = { state: "connecting", detail: "", missed: 0 };

const connection = new HubConnection({
  wsUrl,
  onMessage: (message, receivedAt) => {
    Promise.resolve(dispatch(message, app, receivedAt)).catch((e) => console.warn("callpop:", e));
  },
  onState: (state, detail) => {
    badge.state = state;
    badge.detail = detail;
    showBadge(chrome.action, state, detail, badge.missed);
    session.set({ status: { state, detail, agent: connection.agent, at: Date.now() } }).catch(() => {});
  },
});

const dialing = new Dialing({ notifications: apis.notifications, records: new Records(session, "dials"), settings, iconUrl: ICON });
const app = {
  popups: new Popups({ notifications: apis.notifications, tabs: apis.tabs, records: new Records(session, "bubbles"),
    send: (m) => connection.send(m), settings, iconUrl: ICON, choosePage: CHOOSE_PAGE,
    pageUrl: (path) => chrome.runtime.getURL(path) }),
  dialing,
  inbox: new Inbox({ area: session, settings, dialing, onCount: (n) => {
    badge.missed = n;
    showBadge(chrome.action, badge.state, badge.detail, n);
  } }),
  menu: new Menu({ contextMenus: apis.contextMenus, records: new Records(session, "menu"), settings }),
  welcomed: (agent) => session.set({ agent }),
  log: (text) => console.info("callpop:", text),
};

function keepAlarm() {
  chrome.alarms.get(KEEPALIVE_ALARM, (alarm) => {
    if (!alarm) chrome.alarms.create(KEEPALIVE_ALARM, { periodInMinutes: KEEPALIVE_MINUTES });
  });
}

async function onMenuClicked(info, tab) {
  if (info.menuItemId !== MENU_ID) return null;
  const e164 = await app.menu.numberFor(info, tab);
  if (!e164) {
    await app.dialing.notice("No phone number there", "Right-click a marked number, a phone link, or a selected number.");
    return null;
  }
  return app.dialing.call(e164);
}

// --- listeners (top level)
chrome.runtime.onInstalled.addListener(() => {
  installMenu(apis.contextMenus).catch((e) => console.warn("callpop: menu", e));
  keepAlarm();
});
chrome.runtime.onStartup.addListener(keepAlarm);
chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === KEEPALIVE_ALARM) connection.ensure();
});
chrome.contextMenus.onClicked.addListener((info, tab) => {
  onMenuClicked(info, tab).catch((e) => console.warn("callpop: dial", e));
});
// The popup's buttons ask the worker, which holds the hub's settings; only our own pages may
// (a content script has our id too, but the web page's URL).
const POPUP_URL = chrome.runtime.getURL("popup/");
const POPUP_ACTIONS = { "inbox-callback": (m) => app.inbox.callBack(m.call_id), "inbox-done": (m) => app.inbox.done(m.call_id) };
chrome.runtime.onMessage.addListener((message, sender, reply) => {
  if (sender.id !== chrome.runtime.id || !message) return false;
  // The choice page only (an extension page, never a content script in a web page).
  const choice = String(sender.url || "").startsWith(CHOOSE_PAGE) ? fromChoicePage(app.popups, message) : undefined;
  if (choice !== undefined) {
    choice.then(reply, () => reply(null));
    return true;
  }
  if (Object.hasOwn(POPUP_ACTIONS, message.type) && String(sender.url || "").startsWith(POPUP_URL)) {
    POPUP_ACTIONS[message.type](message).then(reply, () => reply(null));
    return true;
  }
  if (message.type !== "menu-target") return false;
  app.menu.target(message.target, sender).then(reply, () => reply(null));
  return true; // reply comes asynchronously
});
chrome.notifications.onClicked.addListener((id) => app.popups.clicked(id));
chrome.notifications.onButtonClicked.addListener((id, index) => app.popups.buttonClicked(id, index));
chrome.notifications.onClosed.addListener((id, byUser) => app.popups.closed(id, byUser));
chrome.storage.onChanged.addListener((changes, area) => {
  if (area !== "sync" && area !== "local" && area !== "managed") return; // preferences, the token, or the policy
  started.then(settings).then((s) => connection.configure(s));
});

// --- start (every time the worker starts, e.g. woken by the alarm)
keepAlarm();
// Close local storage to content scripts before anything reads the token, then move an older
// version's token out of sync; only then connect. A failure is logged, never fatal: a Chrome
// without setAccessLevel for local still gets the token out of sync.
const started = lockSecrets()
  .catch((e) => console.warn("callpop: could not close local storage to content scripts:", e))
  .then(() => migrateSecrets())
  .then((moved) => moved && console.info("callpop: moved the agent token from sync to local storage"))
  .catch((e) => console.warn("callpop: token migration", e));
started.then(settings).then((s) => connection.configure(s));

// For the options page and tests: handlers callable from outside (e.g. through worker.evaluate).
self.callpop = { app, connection, onMenuClicked, settings, started, notifications: apis.notifications };

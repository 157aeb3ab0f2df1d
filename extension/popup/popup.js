/* The toolbar popup: the inbox the worker keeps in session storage (background/inbox.js), with
 * "Call back" and "Done" for each missed call; the worker does both (it holds the token). */

import { INBOX_KEY, inboxItems } from "../background/inbox.js";

const $ = (id) => document.getElementById(id);
const STATUS = { connected: "connected", connecting: "connecting…", disconnected: "not connected", signed_out: "signed out" };

function render(inbox, status) {
  const items = inboxItems(inbox || {});
  const count = Number((inbox && inbox.count) || 0);
  $("count").textContent = count ? String(count) : "";
  $("status").textContent = STATUS[status && status.state] || "";
  $("empty").hidden = items.length > 0;
  const list = $("missed");
  list.replaceChildren(...items.map((item) => {
    const li = $("item").content.firstElementChild.cloneNode(true);
    li.dataset.callId = item.call_id;
    li.classList.add(item.kind);
    li.querySelector(".title").textContent = item.title; // textContent: the hub's text is never markup
    li.querySelector(".detail").textContent = item.detail;
    li.querySelector(".label").textContent = item.label;
    li.querySelector(".when").textContent = item.when;
    const back = li.querySelector(".callback");
    back.disabled = !item.number;
    back.addEventListener("click", () => act("inbox-callback", item.call_id, back));
    const done = li.querySelector(".done");
    done.addEventListener("click", () => act("inbox-done", item.call_id, done));
    return li;
  }));
}

async function act(type, callId, button) {
  button.disabled = true;
  $("problem").hidden = true;
  const result = await chrome.runtime.sendMessage({ type, call_id: callId }).catch(() => null);
  if (!result) {
    $("problem").textContent = type === "inbox-done" ? "The hub did not mark it done; try again." : "The call back was not placed.";
    $("problem").hidden = false;
    button.disabled = false;
  }
}

async function load() {
  const stored = await chrome.storage.session.get([INBOX_KEY, "status"]);
  render(stored[INBOX_KEY], stored.status);
}

chrome.storage.onChanged.addListener((changes, area) => {
  if (area === "session" && (INBOX_KEY in changes || "status" in changes)) load();
});
$("options").addEventListener("click", (e) => {
  e.preventDefault();
  chrome.runtime.openOptionsPage();
});
load();

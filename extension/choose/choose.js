/* The page "More…" opens from a several-matches bubble: every contact the pop offered; a click
 * sends the choice to the worker (which opens the contact and tells the hub) and closes the page.
 * Names are set as text, never as markup. */

const call = new URLSearchParams(location.search).get("call") || "";
const status = document.getElementById("status");
const list = document.getElementById("contacts");

async function choose(index) {
  const ok = await chrome.runtime.sendMessage({ type: "pop-choose", call_id: call, index });
  if (ok) window.close();
  else status.textContent = "This choice is no longer available.";
}

async function load() {
  const found = await chrome.runtime.sendMessage({ type: "pop-contacts", call_id: call });
  if (!found) {
    status.textContent = "This call's contacts are no longer available.";
    return;
  }
  document.getElementById("title").textContent = found.title || "Choose the contact";
  status.textContent = `${found.contacts.length} contacts share this number: choose the caller.`;
  for (const c of found.contacts) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.index = String(c.index);
    const name = document.createElement("span");
    name.textContent = c.name;
    name.dir = "auto";
    button.append(name);
    if (c.company) {
      const company = document.createElement("span");
      company.className = "company";
      company.textContent = c.company;
      company.dir = "auto";
      button.append(company);
    }
    button.addEventListener("click", () => choose(c.index));
    item.append(button);
    list.append(item);
  }
}

load().catch((e) => { status.textContent = `Could not load the contacts (${e.message}).`; });

/* The page side of number detection (the only content script that touches the DOM).
 *
 * Numbers found by findPhoneNumbers (detect.js) are marked with a CSS Custom Highlight: no
 * element is added, moved or restyled, so the page's layout and its own scripts see nothing.
 * Text added later is picked up by a MutationObserver, in batches. A right-click tells the
 * service worker which number (if any) is under the pointer, so the context menu can offer it.
 * The page's text never leaves this script; only the number the agent right-clicks does.
 */
(() => {
  // Loaded in a plain JavaScript context (no DOM, no extension APIs), this file does nothing.
  if (typeof document === "undefined" || typeof chrome === "undefined" || !chrome.runtime || !chrome.runtime.id) return;

  const HIGHLIGHT = "callpop-number";
  const SKIP = "script,style,noscript,template,code,pre,textarea,input,select,option,button,kbd,samp,math,object,embed";
  const TEL_LINKS = 'a[href^="tel:" i], a[href^="callto:" i]';
  const BATCH_DELAY_MS = 150;
  const SLICE_MS = 12; // work per task, so a huge page never freezes

  const DEFAULTS = { detection: true, detectionOffSites: [], defaultCountry: "IL" };
  const settings = { ...DEFAULTS };
  const marks = new Map(); // text node -> [{start, end, e164, range}]
  const links = new Map(); // <a href="tel:..."> -> e164
  const pendingRoots = new Set();
  const textQueue = [];
  let highlight = null;
  let observer = null;
  let timer = 0;
  let active = false;
  let ready = false; // settings read: `active` says what they decided

  function siteIsOff(host, list) {
    host = String(host || "").toLowerCase();
    return (list || []).some((site) => host === site || host.endsWith("." + site));
  }

  function wanted() {
    return settings.detection !== false && !siteIsOff(location.hostname, settings.detectionOffSites);
  }

  function skippedElement(el) {
    return el.matches(SKIP) || el.isContentEditable;
  }

  // --- scanning
  function collect(root) {
    if (root.nodeType === Node.TEXT_NODE) {
      if (root.parentElement && !root.parentElement.closest(SKIP) && !root.parentElement.isContentEditable) {
        textQueue.push(root);
      }
      return;
    }
    if (root.nodeType !== Node.ELEMENT_NODE && root.nodeType !== Node.DOCUMENT_NODE) return;
    const el = root.nodeType === Node.DOCUMENT_NODE ? root.documentElement : root;
    if (!el || (el.parentElement && el.parentElement.closest(SKIP)) || skippedElement(el)) return;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT, {
      acceptNode(node) {
        if (node.nodeType === Node.ELEMENT_NODE) return skippedElement(node) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_SKIP;
        return NodeFilter.FILTER_ACCEPT;
      },
    });
    for (let node = walker.nextNode(); node; node = walker.nextNode()) textQueue.push(node);
    if (el.matches(TEL_LINKS)) markLink(el);
    for (const a of el.querySelectorAll(TEL_LINKS)) markLink(a);
  }

  function markLink(a) {
    const e164 = numberFromTelUrl(a.getAttribute("href"), settings.defaultCountry);
    if (e164) links.set(a, e164);
    else links.delete(a);
  }

  function unmark(node) {
    const old = marks.get(node);
    if (!old) return;
    for (const m of old) highlight.delete(m.range);
    marks.delete(node);
  }

  function scanText(node) {
    unmark(node);
    if (!node.isConnected) return;
    const text = node.data;
    // Cheap test first: a phone number has at least 6 digits.
    if (text.length < 6 || (text.match(/\d/g) || []).length < 6) return;
    const found = findPhoneNumbers(text, settings.defaultCountry);
    if (!found.length) return;
    const list = found.map((f) => {
      const range = new Range();
      range.setStart(node, f.start);
      range.setEnd(node, f.end);
      highlight.add(range);
      return { ...f, range };
    });
    marks.set(node, list);
  }

  function schedule(delay) {
    if (!timer) timer = setTimeout(flush, delay);
  }

  function flush() {
    timer = 0;
    if (!active) return;
    for (const [node] of marks) if (!node.isConnected) unmark(node);
    for (const [a] of links) if (!a.isConnected) links.delete(a);
    for (const root of pendingRoots) collect(root);
    pendingRoots.clear();
    const until = performance.now() + SLICE_MS;
    while (textQueue.length && performance.now() < until) scanText(textQueue.shift());
    if (textQueue.length) schedule(0);
  }

  function onMutations(records) {
    for (const r of records) {
      if (r.type === "characterData") pendingRoots.add(r.target);
      else if (r.type === "attributes") pendingRoots.add(r.target);
      else for (const n of r.addedNodes) pendingRoots.add(n);
    }
    schedule(BATCH_DELAY_MS);
  }

  function start() {
    if (active) return;
    active = true;
    highlight = new Highlight();
    CSS.highlights.set(HIGHLIGHT, highlight);
    observer = new MutationObserver(onMutations);
    observer.observe(document, { childList: true, subtree: true, characterData: true, attributes: true,
      attributeFilter: ["href", "contenteditable"] });
    pendingRoots.add(document);
    schedule(0);
  }

  function stop() {
    if (!active) return;
    active = false;
    observer.disconnect();
    CSS.highlights.delete(HIGHLIGHT);
    marks.clear();
    links.clear();
    pendingRoots.clear();
    textQueue.length = 0;
  }

  function apply() {
    stop();
    if (wanted()) start();
  }

  // --- the right-click: which number is under the pointer?
  function rectsContain(rects, x, y) {
    for (const r of rects) if (x >= r.left - 1 && x <= r.right + 1 && y >= r.top - 1 && y <= r.bottom + 1) return true;
    return false;
  }

  function targetAt(event) {
    const country = settings.defaultCountry;
    const el = event.target instanceof Element ? event.target : event.target && event.target.parentElement;
    const link = el && el.closest("a[href]");
    if (link) {
      const e164 = numberFromTelUrl(link.getAttribute("href"), country);
      if (e164) return { e164, via: "link" };
    }
    const selection = window.getSelection();
    if (selection && !selection.isCollapsed && selection.rangeCount) {
      const range = selection.getRangeAt(0);
      if (rectsContain(range.getClientRects(), event.clientX, event.clientY)) {
        const e164 = numberInSelection(selection.toString(), country);
        return e164 ? { e164, via: "selection" } : null;
      }
    }
    for (const [node, list] of marks) {
      if (el && !el.contains(node)) continue;
      for (const m of list) {
        if (rectsContain(m.range.getClientRects(), event.clientX, event.clientY)) return { e164: m.e164, via: "text" };
      }
    }
    return null;
  }

  function report(event) {
    if (event.type === "mousedown" && event.button !== 2) return;
    let target = null;
    try {
      target = targetAt(event);
    } catch (e) {
      target = null;
    }
    send({ type: "menu-target", target });
  }

  function send(message) {
    try {
      chrome.runtime.sendMessage(message).catch(() => {});
    } catch (e) {
      // The extension was reloaded under this page: this copy of the script is orphaned.
      document.removeEventListener("mousedown", report, true);
      document.removeEventListener("contextmenu", report, true);
      stop();
    }
  }

  // mousedown comes first, so the menu item is updated before Chrome builds the menu.
  document.addEventListener("mousedown", report, true);
  document.addEventListener("contextmenu", report, true);

  chrome.runtime.onMessage.addListener((message, sender, reply) => {
    if (message && message.type === "list-numbers") {
      flush();
      const found = [];
      for (const [, list] of marks) for (const m of list) found.push({ text: m.range.toString(), e164: m.e164, via: "text" });
      for (const [a, e164] of links) found.push({ text: a.getAttribute("href"), e164, via: "link" });
      reply({ numbers: found, pending: textQueue.length + pendingRoots.size, active, ready });
    }
  });

  chrome.storage.onChanged.addListener((changes, area) => {
    if (area !== "sync") return;
    let changed = false;
    for (const key of Object.keys(settings)) {
      if (key in changes) {
        settings[key] = changes[key].newValue === undefined ? DEFAULTS[key] : changes[key].newValue;
        changed = true;
      }
    }
    if (changed) apply();
  });

  chrome.storage.sync.get(Object.keys(settings)).then((stored) => Object.assign(settings, stored)).finally(() => {
    ready = true;
    apply();
  });
})();

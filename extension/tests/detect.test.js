/* Number detection, the pure part: findPhoneNumbers as the manifest's content scripts define it
 * in a plain JavaScript context, measured on the corpus in fixtures/phone-corpus.json. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { corpus, loadContentScripts, manifest, score, writeMetrics } from "./load-content-scripts.js";

const ctx = loadContentScripts();
const find = (text, country) => ctx.findPhoneNumbers(text, country);

test("the content scripts load without a DOM and define findPhoneNumbers", () => {
  assert.equal(typeof ctx.findPhoneNumbers, "function");
  assert.equal(typeof ctx.document, "undefined");
  const scripts = manifest().content_scripts[0].js;
  assert.equal(scripts[0], "vendor/libphonenumber-max.js", "libphonenumber-js loads first");
});

test("results are [{start, end, e164}] with end exclusive", () => {
  const text = "Call 072-277-6772 now";
  assert.deepEqual(JSON.parse(JSON.stringify(find(text, "IL"))), [{ start: 5, end: 17, e164: "+972722776772" }]);
  assert.deepEqual(JSON.parse(JSON.stringify(find("", "IL"))), []);
  assert.deepEqual(JSON.parse(JSON.stringify(find(null, "IL"))), []);
});

test("a date that plain findNumbers marks as an Israeli number is not marked", () => {
  const text = "Meeting on 2024-11-25";
  const plain = ctx.libphonenumber.findNumbers(text, "IL", { v2: true });
  assert.equal(plain.length, 1, "the trap is real: the library alone marks it");
  assert.deepEqual(find(text, "IL").length, 0);
});

test("corpus: precision and recall", (t) => {
  const cases = corpus();
  const ours = score(find, cases);
  const plain = score((text, country) => ctx.callpopPhone.explainPhoneNumbers(text, country), cases);
  const traps = cases.filter((c) => c.tags.some((tag) => tag.startsWith("trap:")));
  const holdout = score(find, cases.filter((c) => c.tags.includes("holdout")));
  const report = `corpus: ${ours.cases} texts (${traps.length} traps), ${ours.expected} numbers | ` +
    `callpop precision ${ours.precision.toFixed(3)} recall ${ours.recall.toFixed(3)} (fp ${ours.fp}, fn ${ours.fn}) | ` +
    `plain findNumbers precision ${plain.precision.toFixed(3)} recall ${plain.recall.toFixed(3)} (fp ${plain.fp}) | ` +
    `holdout subset (${holdout.cases} texts) precision ${holdout.precision.toFixed(3)} recall ${holdout.recall.toFixed(3)}`;
  t.diagnostic(report);
  writeMetrics("detection.json", { corpus_texts: ours.cases, traps: traps.length, numbers: ours.expected,
    precision: ours.precision, recall: ours.recall, false_positives: ours.fp, missed: ours.fn,
    plain_findNumbers: { precision: plain.precision, recall: plain.recall, false_positives: plain.fp },
    holdout: { texts: holdout.cases, precision: holdout.precision, recall: holdout.recall } });
  for (const m of ours.misses) t.diagnostic(`${m.kind}: ${m.text} (${m.e164}) in ${JSON.stringify(m.in)}`);
  assert.ok(plain.fp >= 40, "the corpus holds traps the library alone falls into");
  assert.ok(ours.precision >= 0.99, `precision ${ours.precision}`);
  assert.ok(ours.recall >= 0.97, `recall ${ours.recall}`);
});

test("no trap in the corpus is marked", () => {
  for (const c of corpus().filter((c) => c.tags.some((tag) => tag.startsWith("trap:")))) {
    assert.deepEqual(JSON.parse(JSON.stringify(find(c.text, c.country))), [], `${c.tags.join(",")}: ${c.text}`);
  }
});

test("every rejected candidate says why", () => {
  const why = (text, country = "IL") => Array.from(ctx.callpopPhone.explainPhoneNumbers(text, country), (c) => c.rejected);
  assert.deepEqual(why("2024-11-25"), ["a date"]);
  assert.deepEqual(why("Upgrade 2.10.0-2.12.3"), ["a version or address (mixed separators)"]);
  assert.deepEqual(why("Order no. 0722776772"), ["labelled as an identifier"]);
  assert.deepEqual(why("Host 201.55.50.123", "US"), ["an IP address"]);
  assert.deepEqual(why("Total 2.125.550.123", "US"), ["an amount (dots between thousands)"]);
  assert.deepEqual(why("paid 2015550123.45", "US"), ["glued to more digits"]);
  assert.deepEqual(why("072-277-6772"), [""]);
});

test("tel: and callto: links", () => {
  const tel = (href, country = "IL") => ctx.callpopPhone.numberFromTelUrl(href, country);
  assert.equal(tel("tel:+972722776772"), "+972722776772");
  assert.equal(tel("tel:072-277-6772"), "+972722776772");
  assert.equal(tel("TEL:+1-212-555-0123;ext=22"), "+12125550123");
  assert.equal(tel("tel:%2B44%2020%207946%200321"), "+442079460321");
  assert.equal(tel("callto:+972545557777"), "+972545557777");
  assert.equal(tel("callto://+972545557777"), "+972545557777");
  assert.equal(tel("tel:12"), null);
  assert.equal(tel("mailto:a@b.c"), null);
  assert.equal(tel("javascript:alert(1)"), null);
  assert.equal(tel(undefined), null);
});

test("a selection is a number only when it holds one number and nothing else with digits", () => {
  const sel = (text, country = "IL") => ctx.callpopPhone.numberInSelection(text, country);
  assert.equal(sel("072-277-6772"), "+972722776772");
  assert.equal(sel("  Tel: 072-277-6772. "), "+972722776772");
  assert.equal(sel("(212) 555-0123", "US"), "+12125550123");
  assert.equal(sel("2024-11-25"), null);
  assert.equal(sel("hello world"), null);
  assert.equal(sel("072-277-6772 and 054-555-7777"), null);
  assert.equal(sel("Order 12 072-277-6772"), null);
  assert.equal(sel(""), null);
});

test("numbers are formatted for people: national at home, international abroad", () => {
  const fmt = ctx.callpopPhone.formatForPeople;
  assert.equal(fmt("+972722776772", "IL"), "072-277-6772");
  assert.equal(fmt("+12125550123", "US"), "(212) 555-0123");
  assert.equal(fmt("+12125550123", "IL"), "+1 212 555 0123");
  assert.equal(fmt("+447911123456", "GB"), "07911 123456");
  assert.equal(fmt("not a number", "IL"), "not a number");
});

test("a page full of text is scanned quickly", () => {
  const cases = corpus();
  const page = cases.map((c) => c.text).join("\n").repeat(10);
  const started = performance.now();
  find(page, "IL");
  const ms = performance.now() - started;
  assert.ok(ms < 2000, `${page.length} characters took ${ms.toFixed(0)} ms`);
});

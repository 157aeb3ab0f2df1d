/* Load the manifest's content scripts, in order, into a plain JavaScript context (no DOM, no
 * chrome.*), the way an outside check would, and return that context's global object. */

import fs from "node:fs";
import path from "node:path";
import vm from "node:vm";
import { fileURLToPath } from "node:url";

export const EXTENSION = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function manifest() {
  return JSON.parse(fs.readFileSync(path.join(EXTENSION, "manifest.json"), "utf8"));
}

export function loadContentScripts() {
  const context = vm.createContext({});
  for (const file of manifest().content_scripts[0].js) {
    const code = fs.readFileSync(path.join(EXTENSION, file), "utf8");
    vm.runInContext(code, context, { filename: file });
  }
  return context;
}

/* The corpus with each expected number located: [{...case, expected: [{start, end, e164}]}]. */
export function corpus() {
  const data = JSON.parse(fs.readFileSync(path.join(EXTENSION, "tests", "fixtures", "phone-corpus.json"), "utf8"));
  return data.cases.map((c) => {
    let from = 0;
    const expected = c.numbers.map(([text, e164]) => {
      const start = c.text.indexOf(text, from);
      if (start < 0) throw new Error(`corpus: ${JSON.stringify(text)} is not in ${JSON.stringify(c.text)}`);
      from = start + text.length;
      return { start, end: from, e164 };
    });
    return { ...c, expected };
  });
}

/* Precision and recall of `find(text, country)` over the corpus; a hit must match span and E.164. */
export function score(find, cases = corpus()) {
  const key = (x) => `${x.start}:${x.end}:${x.e164}`;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  const misses = [];
  for (const c of cases) {
    const want = new Set(c.expected.map(key));
    const got = find(c.text, c.country);
    const gotKeys = new Set(got.map(key));
    for (const g of got) {
      if (want.has(key(g))) tp++;
      else {
        fp++;
        misses.push({ kind: "false positive", text: c.text.slice(g.start, g.end), e164: g.e164, in: c.text, tags: c.tags });
      }
    }
    for (const e of c.expected) {
      if (!gotKeys.has(key(e))) {
        fn++;
        misses.push({ kind: "missed", text: c.text.slice(e.start, e.end), e164: e.e164, in: c.text, tags: c.tags });
      }
    }
  }
  return { cases: cases.length, expected: tp + fn, tp, fp, fn, precision: tp / (tp + fp || 1), recall: tp / (tp + fn || 1), misses };
}

/* Measurements for people to read after a run: test-output/extension/<name> (git-ignored). */
export function writeMetrics(name, data) {
  const dir = path.join(EXTENSION, "..", "test-output", "extension");
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), JSON.stringify(data, null, 2) + "\n");
}

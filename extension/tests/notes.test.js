import assert from "node:assert/strict";
import { test } from "node:test";

import { loadNotes, notesPage, saveNote } from "../background/notes.js";

function fakeFetch(status, body) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url, init });
    return { ok: status < 400, status, json: async () => body };
  };
  fn.calls = calls;
  return fn;
}

test("the page of a call escapes its id", () => {
  assert.equal(notesPage("a b/c"), "notes/notes.html?call=a%20b%2Fc");
});

test("saving posts the note with the token to the call's log route", async () => {
  const fetch = fakeFetch(202, { revision: 2, logged: "queued" });
  const saved = await saveNote("http://127.0.0.1:8765", "t0k", "c/1", { disposition: "Sale", notes: "hi" }, fetch);
  assert.deepEqual(saved, { ok: true, text: "Saved, and sent to your CRM." });
  const [{ url, init }] = fetch.calls;
  assert.equal(url, "http://127.0.0.1:8765/api/calls/c%2F1/log");
  assert.equal(init.method, "POST");
  assert.equal(init.headers.Authorization, "Bearer t0k");
  assert.deepEqual(JSON.parse(init.body), { disposition: "Sale", notes: "hi" });
});

test("a note during the call says it goes with the call's end", async () => {
  const saved = await saveNote("http://127.0.0.1:8765", "t", "c1", {}, fakeFetch(202, { revision: null, logged: "with the call's end" }));
  assert.equal(saved.text, "Saved (with the call's end).");
});

test("a refusal is said in the hub's words, never with the token", async () => {
  const saved = await saveNote("http://127.0.0.1:8765", "secret-token", "c1", { disposition: "Sold!" },
    fakeFetch(422, { error: "unknown_disposition", message: "disposition must be one of: Sale" }));
  assert.equal(saved.ok, false);
  assert.match(saved.text, /disposition must be one of/);
  assert.doesNotMatch(saved.text, /secret-token/);
});

test("an unreachable hub is said, and http to another machine is refused before sending", async () => {
  const down = async () => { throw new TypeError("Failed to fetch"); };
  assert.match((await loadNotes("http://127.0.0.1:1", "t", "c1", down)).text, /Could not reach the hub/);
  const never = fakeFetch(200, {});
  const refused = await loadNotes("http://crm.example.com", "t", "c1", never);
  assert.equal(refused.ok, false);
  assert.match(refused.text, /Not connecting to http:\/\/crm\.example\.com/);
  assert.equal(never.calls.length, 0);
});

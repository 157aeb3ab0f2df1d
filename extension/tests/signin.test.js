/* Signing in with a one-time code: what the agent may type, and what the hub's answers become. */

import assert from "node:assert/strict";
import { test } from "node:test";
import "./fakes.js";
import { CODE_HINT, exchangeCode, parseSignIn } from "../background/signin.js";

test("a code goes to the hub typed in; a link brings its own hub", () => {
  assert.deepEqual(parseSignIn(" abcd-efgh ", "http://127.0.0.1:8765/"), { hubUrl: "http://127.0.0.1:8765", code: "ABCD-EFGH" });
  assert.deepEqual(parseSignIn("ABCD EFGH", "https://callpop.example.com"), { hubUrl: "https://callpop.example.com", code: "ABCD EFGH" });
  assert.deepEqual(parseSignIn("https://callpop.example.com/signin#code=WXYZ-2345", "http://127.0.0.1:8765"),
    { hubUrl: "https://callpop.example.com", code: "WXYZ-2345" });
  assert.deepEqual(parseSignIn("https://example.com/callpop/signin#code=WXYZ2345", ""),
    { hubUrl: "https://example.com/callpop", code: "WXYZ2345" });
});

test("anything else says what a code looks like, or why the hub is refused", () => {
  assert.match(parseSignIn("", "http://127.0.0.1:8765").error, /sign-in code/);
  for (const bad of ["ABC-DEFG", "ABCD-EFGH-IJKL", "demo-token-noa", "https://hub.example.com/signin", "https://hub.example.com/signin#code=<x>"]) {
    assert.equal(parseSignIn(bad, "http://127.0.0.1:8765").error, CODE_HINT, bad);
  }
  // A link to a hub elsewhere over http:// would send the token in clear: refused like a typed address.
  assert.match(parseSignIn("http://hub.example.com/signin#code=ABCD-EFGH", "").error, /https:\/\//);
  assert.match(parseSignIn("ABCD-EFGH", "ftp://x").error, /http:\/\/ or https:\/\//);
});

function answering(status, body) {
  const calls = [];
  const fetchImpl = async (url, init) => {
    calls.push({ url, init });
    return { ok: status < 400, status, statusText: "", json: async () => body };
  };
  return { calls, fetchImpl };
}

test("the code is posted once and the token comes back, never in the text", async () => {
  const { calls, fetchImpl } = answering(200, { token: "secret-token-123", agent: { id: "noa", name: "Noa Levi" } });
  const got = await exchangeCode("http://127.0.0.1:8765", "ABCD-EFGH", fetchImpl);
  assert.deepEqual(got, { ok: true, token: "secret-token-123", agent: { id: "noa", name: "Noa Levi" }, text: "Signed in as Noa Levi." });
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, "http://127.0.0.1:8765/api/signin");
  assert.equal(calls[0].init.method, "POST");
  assert.deepEqual(JSON.parse(calls[0].init.body), { code: "ABCD-EFGH" });
  assert.equal(calls[0].init.headers.Authorization, undefined);
});

test("the hub's refusals are said as it said them", async () => {
  const used = answering(410, { error: "bad_code", message: "this sign-in code was used already (ask your supervisor for a new one)" });
  assert.deepEqual(await exchangeCode("http://127.0.0.1:8765", "ABCD-EFGH", used.fetchImpl),
    { ok: false, text: "Not signed in: this sign-in code was used already (ask your supervisor for a new one)." });
  const noToken = answering(200, { agent: { id: "noa" } });
  assert.equal((await exchangeCode("http://127.0.0.1:8765", "ABCD-EFGH", noToken.fetchImpl)).ok, false);
  const down = async () => { throw new TypeError("Failed to fetch"); };
  assert.match((await exchangeCode("http://127.0.0.1:8765", "ABCD-EFGH", down)).text, /Could not reach http:\/\/127\.0\.0\.1:8765: Failed to fetch/);
});

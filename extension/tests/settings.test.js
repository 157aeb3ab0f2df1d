/* The options: validation before saving, and the addresses derived from them. */

import assert from "node:assert/strict";
import { test } from "node:test";
import "./fakes.js";
import { apiUrl, DEFAULTS, HubRefused, legAParam, normaliseHubUrl, normaliseSite, siteIsOff, validateSettings, wsUrl } from "../background/settings.js";

const GOOD = { ...DEFAULTS, token: "demo-token-noa", detectionOffSites: "" };

test("good settings are normalised", () => {
  const { settings, errors } = validateSettings({ ...GOOD, hubUrl: " http://127.0.0.1:8765/ ", legA: "other", legANumber: "054-812-4567",
    defaultCountry: "il", detectionOffSites: "https://Mail.Example.com/inbox\n*.crm.example.org, mail.example.com" });
  assert.equal(errors, undefined);
  assert.equal(settings.hubUrl, "http://127.0.0.1:8765");
  assert.equal(settings.legANumber, "+972548124567");
  assert.equal(settings.defaultCountry, "IL");
  assert.deepEqual(settings.detectionOffSites, ["mail.example.com", "crm.example.org"]);
});

test("each bad field says what is wrong", () => {
  const { errors } = validateSettings({ hubUrl: "ftp://x", token: "", legA: "other", legANumber: "12", defaultCountry: "XX",
    popBehaviour: "blink", detectionOffSites: "not a site!" });
  assert.deepEqual(Object.keys(errors).sort(), ["defaultCountry", "detectionOffSites", "hubUrl", "legANumber", "popBehaviour", "token"]);
  assert.match(errors.hubUrl, /http:\/\/ or https:\/\//);
  assert.match(validateSettings({ ...GOOD, token: "two words" }).errors.token, /without spaces/);
  assert.match(validateSettings({ ...GOOD, legA: "other", legANumber: "" }).errors.legANumber, /Type the number/);
  assert.match(normaliseHubUrl("http://u:p@hub").error, /passwords/);
  assert.match(normaliseHubUrl("http://hub/?x=1").error, /query/);
});

// The token goes to the hub in every request: over plain http only to this machine.
const HUB_ADDRESSES = [
  // [typed, saved as, or null: refused]
  ["http://127.0.0.1:8765", "http://127.0.0.1:8765"],
  ["http://localhost:8765/", "http://localhost:8765"],
  ["http://LOCALHOST", "http://localhost"],
  ["http://[::1]:8765", "http://[::1]:8765"],
  ["http://127.1:8765", "http://127.0.0.1:8765"], // the URL parser's spelling of 127.0.0.1
  ["https://callpop.example.com", "https://callpop.example.com"],
  ["https://10.0.0.5:8443/callpop/", "https://10.0.0.5:8443/callpop"],
  ["https://localhost:8765", "https://localhost:8765"],
  ["http://callpop.example.com", null],
  ["http://10.0.0.5:8765", null],
  ["http://192.168.1.20", null],
  ["http://127.0.0.1.nip.io:8765", null],
  ["http://localhost.example.com", null],
  ["http://[::ffff:7f00:1]", null],
  ["http://0.0.0.0:8765", null],
  ["ws://127.0.0.1:8765", null],
  ["wss://callpop.example.com", null],
  ["file:///etc/passwd", null],
  ["javascript:alert(1)", null],
];

test("a hub on another machine must be https; http only to 127.0.0.1, localhost, [::1]", () => {
  for (const [typed, saved] of HUB_ADDRESSES) {
    const hub = normaliseHubUrl(typed);
    if (saved) {
      assert.deepEqual(hub, { value: saved }, typed);
      assert.equal(validateSettings({ ...GOOD, hubUrl: typed }).settings.hubUrl, saved, typed);
    } else {
      assert.ok(hub.error, `${typed} is refused`);
      assert.ok(validateSettings({ ...GOOD, hubUrl: typed }).errors.hubUrl, typed);
    }
  }
  const why = normaliseHubUrl("http://callpop.example.com").error;
  assert.match(why, /https:\/\//);
  assert.match(why, /token would cross the network in clear/);
});

test("the socket and API URLs refuse such a hub too (a setting saved by an older version)", () => {
  for (const [typed, saved] of HUB_ADDRESSES) {
    if (saved) {
      assert.match(wsUrl(typed), saved.startsWith("https:") ? /^wss:\/\// : /^ws:\/\//, typed);
      assert.ok(apiUrl(typed, "/api/me").startsWith(saved + "/api/me"), typed);
    } else {
      assert.throws(() => wsUrl(typed), HubRefused, typed);
      assert.throws(() => apiUrl(typed, "/api/me"), HubRefused, typed);
    }
  }
  assert.throws(() => wsUrl("http://pbx.example.com:8765"), /Not connecting to http:\/\/pbx\.example\.com:8765: .*in clear/);
});

test("hub addresses give the WebSocket and API URLs, behind a path too", () => {
  assert.equal(wsUrl("http://127.0.0.1:8765"), "ws://127.0.0.1:8765/ws");
  assert.equal(wsUrl("https://pbx.example.com/callpop"), "wss://pbx.example.com/callpop/ws");
  assert.equal(apiUrl("https://pbx.example.com/callpop", "/api/me"), "https://pbx.example.com/callpop/api/me");
});

test("per-site off list matches the site and its subdomains", () => {
  assert.equal(normaliseSite("HTTPS://www.Example.com:8443/x"), "www.example.com");
  assert.equal(normaliseSite("bad site"), null);
  assert.ok(siteIsOff("mail.example.com", ["example.com"]));
  assert.ok(siteIsOff("example.com", ["example.com"]));
  assert.ok(!siteIsOff("notexample.com", ["example.com"]));
});

test("leg A goes to the hub as extension, mobile, home or the number", () => {
  assert.equal(legAParam({ legA: "mobile" }), "mobile");
  assert.equal(legAParam({ legA: "other", legANumber: "+972501234567" }), "+972501234567");
});

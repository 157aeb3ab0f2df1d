/* The options: validation before saving, and the addresses derived from them. */

import assert from "node:assert/strict";
import { test } from "node:test";
import "./fakes.js";
import { apiUrl, DEFAULTS, legAParam, normaliseHubUrl, normaliseSite, siteIsOff, validateSettings, wsUrl } from "../background/settings.js";

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

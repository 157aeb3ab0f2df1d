/* Where settings are kept: the token in local storage only (closed to content scripts), the
 * preferences in sync; an older version's token in sync is moved out of it. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { FakeArea } from "./fakes.js";
import { DEFAULTS, validateSettings } from "../background/settings.js";
import { loadManaged, loadSettings, lockSecrets, migrateSecrets, NOT_MANAGED, PREFERENCES, saveSettings } from "../background/storage.js";

const areas = (sync = {}, local = {}) => ({ sync: new FakeArea(sync), local: new FakeArea(local) });

test("saving puts the token in local only and every preference in sync", async () => {
  const a = areas({ token: "left-by-0.1.0" });
  const { settings } = validateSettings({ ...DEFAULTS, hubUrl: "https://hub.example/callpop", token: "demo-token-noa",
    popBehaviour: "fade" });
  await saveSettings(settings, a);
  assert.deepEqual(a.local.data, { token: "demo-token-noa" });
  assert.ok(!("token" in a.sync.data), "the token is not synced");
  assert.deepEqual(Object.keys(a.sync.data).sort(), Object.keys(DEFAULTS).filter((k) => k !== "token").sort());
  assert.equal(a.sync.data.hubUrl, "https://hub.example/callpop");
  assert.deepEqual(await loadSettings(a), { ...settings });
  assert.ok(!("token" in PREFERENCES));
});

test("loading reads the token from local and ignores one in sync", async () => {
  assert.equal((await loadSettings(areas({ token: "synced" }, {}))).token, "");
  const s = await loadSettings(areas({ popBehaviour: "fade" }, { token: "mine" }));
  assert.deepEqual(s, { ...DEFAULTS, popBehaviour: "fade", token: "mine" });
});

test("start-up moves an older version's token from sync to local", async () => {
  const a = areas({ token: "demo-token-noa", hubUrl: "http://127.0.0.1:8765", popBehaviour: "fade" });
  assert.equal(await migrateSecrets(a), true);
  assert.deepEqual(a.local.data, { token: "demo-token-noa" });
  assert.deepEqual(a.sync.data, { hubUrl: "http://127.0.0.1:8765", popBehaviour: "fade" }, "preferences stay in sync");
  assert.equal((await loadSettings(a)).token, "demo-token-noa");
  assert.equal(await migrateSecrets(a), false, "nothing left to move the next time");
  assert.deepEqual(a.local.data, { token: "demo-token-noa" });
});

test("a token already in local is newer: it is kept, and the synced copy deleted", async () => {
  const a = areas({ token: "old" }, { token: "new" });
  await migrateSecrets(a);
  assert.deepEqual([a.local.data, a.sync.data], [{ token: "new" }, {}]);
  const empty = areas({ token: "" }, {});
  await migrateSecrets(empty);
  assert.deepEqual([empty.local.data, empty.sync.data], [{}, {}], "an empty synced token is only deleted");
});

test("local storage is closed to content scripts", async () => {
  const a = areas();
  await lockSecrets(a);
  assert.equal(a.local.accessLevel, "TRUSTED_CONTEXTS");
  assert.equal(a.sync.accessLevel, null, "sync stays readable by the content script (it reads the marking preferences)");
});

/* The admin's policy (chrome.storage.managed, extension/managed_schema.json) may set the hub address. */
const withPolicy = (policy, sync = {}, local = {}) => ({ ...areas(sync, local), managed: new FakeArea(policy) });

test("a hub address set by policy is locked by default: it wins over the agent's", async () => {
  const a = withPolicy({ hubUrl: "https://callpop.example.com/" }, { hubUrl: "https://mine.example", popBehaviour: "fade" },
    { token: "mine" });
  assert.deepEqual(await loadManaged(a), { hubUrl: "https://callpop.example.com", locked: true });
  assert.deepEqual(await loadSettings(a), { ...DEFAULTS, hubUrl: "https://callpop.example.com", popBehaviour: "fade",
    token: "mine" });
});

test("an unlocked policy address is only where an agent starts", async () => {
  const policy = { hubUrl: "https://callpop.example.com", lockHubUrl: false };
  assert.deepEqual(await loadManaged(withPolicy(policy)), { hubUrl: "https://callpop.example.com", locked: false });
  assert.equal((await loadSettings(withPolicy(policy))).hubUrl, "https://callpop.example.com", "nothing saved yet");
  assert.equal((await loadSettings(withPolicy(policy, { hubUrl: "https://mine.example" }))).hubUrl,
    "https://mine.example", "the agent's own choice stays");
});

test("no policy, or one the extension would refuse, leaves the agent's settings alone", async () => {
  assert.deepEqual(await loadManaged(areas()), NOT_MANAGED, "no managed area at all (node, an older Chrome)");
  assert.deepEqual(await loadManaged(withPolicy({})), NOT_MANAGED);
  assert.deepEqual(await loadManaged(withPolicy({ lockHubUrl: true })), NOT_MANAGED, "a lock without an address");
  const plain = withPolicy({ hubUrl: "http://callpop.example.com" }, { hubUrl: "https://mine.example" });
  assert.deepEqual(await loadManaged(plain), NOT_MANAGED, "http:// to another machine is refused from a policy too");
  assert.equal((await loadSettings(plain)).hubUrl, "https://mine.example");
  const broken = { ...areas(), managed: { get: async () => { throw new Error("managed storage unavailable"); } } };
  assert.deepEqual(await loadManaged(broken), NOT_MANAGED);
});

test("saving never writes to the policy's area", async () => {
  const a = withPolicy({ hubUrl: "https://callpop.example.com" });
  const { settings } = validateSettings({ ...DEFAULTS, hubUrl: "https://callpop.example.com", token: "t" });
  await saveSettings(settings, a);
  assert.deepEqual(a.managed.data, { hubUrl: "https://callpop.example.com" });
});

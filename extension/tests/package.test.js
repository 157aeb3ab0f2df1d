/* make extension-package (tools/package.js): the zip holds what Chrome loads and nothing else, the
 * CRX3 is signed with the admin's key and has the id that key gives, updates.xml points Chrome at it. */

import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { buildPackage, checkedHubUrl, EXTENSION } from "../tools/package.js";

const manifest = JSON.parse(fs.readFileSync(path.join(EXTENSION, "manifest.json"), "utf8"));

function tempKey() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "callpop-package-"));
  const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
  fs.writeFileSync(path.join(dir, "key.pem"), privateKey);
  return { dir, key: path.join(dir, "key.pem"), pem: privateKey };
}

/* Chrome's id of a key: the first 16 bytes of SHA-256 of the public key (DER), as letters a-p. */
function chromeId(pem) {
  const der = crypto.createPublicKey(pem).export({ type: "spki", format: "der" });
  return [...crypto.createHash("sha256").update(der).digest("hex").slice(0, 32)]
    .map((h) => String.fromCharCode(97 + parseInt(h, 16))).join("");
}

test("the package: a zip of the shipped files, the CRX3 signed with the key, updates.xml pointing at it", async () => {
  const { dir, key, pem } = tempKey();
  const out = path.join(dir, "out");
  const built = await buildPackage({ key, hubUrl: "https://callpop.example.com/", out });
  const name = `callpop-${manifest.version}`;
  assert.deepEqual(built.files, [`${name}.zip`, `${name}.crx`, "updates.xml"]);
  assert.equal(built.id, chromeId(pem));
  assert.equal(built.updateUrl, "https://callpop.example.com/extension/updates.xml");

  const zip = fs.readFileSync(path.join(out, `${name}.zip`));
  for (const shipped of ["manifest.json", "managed_schema.json", "background/worker.js", "options/options.html",
    "popup/popup.html", "vendor/libphonenumber-max.js"]) assert.ok(zip.includes(Buffer.from(shipped)), shipped);
  for (const left of ["tests/", "tools/", "package.json", "README.md", ".pem"]) assert.ok(!zip.includes(Buffer.from(left)), left);

  const crx = fs.readFileSync(path.join(out, `${name}.crx`));
  assert.equal(crx.subarray(0, 4).toString(), "Cr24");
  assert.equal(crx.readUInt32LE(4), 3, "CRX version 3");
  const header = crx.readUInt32LE(8);
  assert.ok(crx.subarray(12 + header).equals(zip), "the CRX signs exactly the zip");

  const xml = fs.readFileSync(path.join(out, "updates.xml"), "utf8");
  assert.match(xml, new RegExp(`appid='${built.id}'`));
  assert.match(xml, new RegExp(`codebase='https://callpop.example.com/extension/${name}.crx'`));
  assert.match(xml, new RegExp(`version='${manifest.version}'`));

  const again = await buildPackage({ key, hubUrl: "https://callpop.example.com", out: path.join(dir, "again") });
  assert.equal(again.id, built.id, "the same key keeps the same id");
  fs.rmSync(dir, { recursive: true });
});

test("the hub address Chrome fetches from: https, or http on this machine only", () => {
  assert.equal(checkedHubUrl(" https://callpop.example.com/ "), "https://callpop.example.com");
  assert.equal(checkedHubUrl("http://127.0.0.1:8765"), "http://127.0.0.1:8765");
  assert.throws(() => checkedHubUrl("http://callpop.example.com"), /https/);
  assert.throws(() => checkedHubUrl("https://callpop.example.com/?x=1"), /query/);
  assert.throws(() => checkedHubUrl(""), /public address/);
});

test("the manifest names the managed schema, and the schema what the extension reads", () => {
  assert.equal(manifest.storage.managed_schema, "managed_schema.json");
  const schema = JSON.parse(fs.readFileSync(path.join(EXTENSION, "managed_schema.json"), "utf8"));
  assert.deepEqual(Object.keys(schema.properties).sort(), ["hubUrl", "lockHubUrl"]);
  assert.equal(schema.properties.hubUrl.type, "string");
  assert.equal(schema.properties.lockHubUrl.type, "boolean");
});

/* make extension-package: the extension as the admin ships it to every agent's Chrome.
 *
 *   node extension/tools/package.js --key <admin's PEM> --hub-url https://callpop.example.com [--out dist/extension]
 *
 * writes into --out (the folder CALLPOP_EXTENSION_DIR names on the hub):
 *   callpop-<version>.zip  the files Chrome loads (Chrome Web Store upload, or unzip and "Load unpacked")
 *   callpop-<version>.crx  the same zip signed with the key (CRX3): its id follows from the key
 *   updates.xml            the update manifest Chrome polls: id, version, where the .crx is on the hub
 * and prints the extension id and the ExtensionInstallForcelist entry. The version is manifest.json's.
 * The key stays the admin's (never in the repository): the same key keeps the same id across versions. */

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const require = createRequire(import.meta.url);
const ChromeExtension = require("crx"); // npm "crx": CRX3 signing and the update manifest

export const EXTENSION = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// What Chrome loads; the rest of extension/ (tests, tools, README, package.json) stays behind.
export const SHIPPED = Object.freeze(["manifest.json", "managed_schema.json", "background", "content", "options",
  "popup", "choose", "notes", "icons", "vendor"]);

/* The update manifest's base: the hub's public address (https, or http to this machine for tests). */
export function checkedHubUrl(text) {
  let url;
  try {
    url = new URL(String(text || "").trim());
  } catch {
    throw new Error("--hub-url: the hub's public address, e.g. https://callpop.example.com");
  }
  const local = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && local)) {
    throw new Error(`--hub-url ${url.href}: Chrome fetches the extension from it, so https:// (http:// only on this machine)`);
  }
  if (url.search || url.hash || url.username) throw new Error("--hub-url: an address without ?query, #fragment or user");
  return url.origin + url.pathname.replace(/\/+$/, "");
}

/* Every file under SHIPPED, as paths (crx zips a list of files, not folders). */
export function shippedFiles() {
  return SHIPPED.flatMap((entry) => {
    const full = path.join(EXTENSION, entry);
    if (!fs.statSync(full).isDirectory()) return [full];
    return fs.readdirSync(full, { recursive: true }).map((f) => path.join(full, f))
      .filter((f) => fs.statSync(f).isFile()).sort();
  });
}

export async function buildPackage({ key, hubUrl, out }) {
  const manifest = JSON.parse(fs.readFileSync(path.join(EXTENSION, "manifest.json"), "utf8"));
  const version = manifest.version;
  const missing = SHIPPED.filter((f) => !fs.existsSync(path.join(EXTENSION, f)));
  if (missing.length) throw new Error(`missing in extension/: ${missing.join(", ")} (vendor/: run make extension)`);
  const base = checkedHubUrl(hubUrl);
  const name = `callpop-${version}`;
  const crx = new ChromeExtension({ privateKey: fs.readFileSync(key), codebase: `${base}/extension/${name}.crx` });
  await crx.load(shippedFiles());
  // One archive for both: the zip an admin uploads is exactly what the CRX signs.
  const zip = await crx.loadContents();
  const signed = await crx.pack(zip);
  const id = crx.generateAppId();
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, `${name}.zip`), zip);
  fs.writeFileSync(path.join(out, `${name}.crx`), signed);
  fs.writeFileSync(path.join(out, "updates.xml"), crx.generateUpdateXML());
  return { id, version, updateUrl: `${base}/extension/updates.xml`, files: [`${name}.zip`, `${name}.crx`, "updates.xml"] };
}

async function main() {
  const { values } = parseArgs({ options: { key: { type: "string" }, "hub-url": { type: "string" },
    out: { type: "string", default: "dist/extension" } } });
  if (!values.key) throw new Error("--key: the admin's private key (PEM), e.g. made once with: openssl genrsa -out callpop-extension.pem 2048");
  const built = await buildPackage({ key: values.key, hubUrl: values["hub-url"], out: values.out });
  console.log(`callpop extension ${built.version}, id ${built.id}: ${built.files.map((f) => path.join(values.out, f)).join(", ")}`);
  console.log(`Copy them into the hub's CALLPOP_EXTENSION_DIR; ExtensionInstallForcelist entry: ${built.id};${built.updateUrl}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`extension-package: ${e.message || e}`);
    process.exit(2);
  });
}

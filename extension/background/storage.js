/* Where the settings are kept. An administrator's policy may set the hub address (managed storage,
 * loadManaged); everything else is the agent's. The agent token is a password: it stays in chrome.storage.local
 * (this browser only, never synced) and only the extension's own pages and worker may read it.
 * Preferences (hub address, phones, pops, marking) go in chrome.storage.sync, to follow the agent
 * to other Chromes; content scripts read them there, which is why sync stays readable by
 * untrusted contexts and why the token must never be in it. Shared by the worker and the options page. */

import { DEFAULTS, normaliseHubUrl } from "./settings.js";

export const SECRET_KEYS = Object.freeze(["token"]);
export const PREFERENCES = Object.freeze(Object.fromEntries(Object.entries(DEFAULTS).filter(([k]) => !SECRET_KEYS.includes(k))));

const areas = () => chrome.storage;

/* The settings in force: the agent's, except the hub address when the admin's policy sets it (loadManaged). */
export async function loadSettings(from = areas()) {
  // Keys, not defaults: what the agent saved must be told from what they never set.
  const [prefs, secrets, policy] = await Promise.all([from.sync.get(Object.keys(PREFERENCES)),
    from.local.get(SECRET_KEYS), loadManaged(from)]);
  const settings = { ...DEFAULTS, ...prefs, ...secrets };
  if (policy.hubUrl && (policy.locked || !("hubUrl" in prefs))) settings.hubUrl = policy.hubUrl;
  return settings;
}

export const NOT_MANAGED = Object.freeze({ hubUrl: "", locked: false });

/* What the admin's policy sets (chrome.storage.managed, read-only, shaped by managed_schema.json):
 * the hub address, locked unless the policy says lockHubUrl: false (then it is only where an agent
 * starts). NOT_MANAGED without a policy, or for an address the extension would refuse anyway
 * (http:// to another machine). */
export async function loadManaged({ managed } = areas()) {
  if (!managed) return NOT_MANAGED;
  let policy;
  try {
    policy = await managed.get(["hubUrl", "lockHubUrl"]);
  } catch (e) { // a browser without managed storage for extensions
    console.warn("callpop: managed storage", e);
    return NOT_MANAGED;
  }
  if (!policy.hubUrl) return NOT_MANAGED;
  const hub = normaliseHubUrl(policy.hubUrl);
  if (hub.error) {
    console.warn(`callpop: the hub address of the policy is ignored: ${hub.error}`);
    return NOT_MANAGED;
  }
  return { hubUrl: hub.value, locked: policy.lockHubUrl !== false };
}

/* Save what validateSettings returned: the token to local, the rest to sync. */
export async function saveSettings(settings, { sync, local } = areas()) {
  const secrets = Object.fromEntries(SECRET_KEYS.map((k) => [k, settings[k]]));
  const prefs = Object.fromEntries(Object.keys(PREFERENCES).map((k) => [k, settings[k]]));
  await local.set(secrets);
  await sync.set(prefs);
  await sync.remove(SECRET_KEYS); // in case an older version's copy is still there
}

/* Local storage is open to content scripts unless told otherwise (only session is closed by
 * default): close it. Worker only (the call is refused elsewhere); Chrome keeps the level. */
export function lockSecrets({ local } = areas()) {
  return local.setAccessLevel({ accessLevel: "TRUSTED_CONTEXTS" });
}

/* Versions up to 0.1.0 kept the token in sync: move it to local (a token already in local is newer,
 * it wins) and delete it from sync, which also deletes it from the agent's other Chromes.
 * Returns whether a token was found in sync. */
export async function migrateSecrets({ sync, local } = areas()) {
  const old = await sync.get(SECRET_KEYS);
  const found = SECRET_KEYS.filter((k) => k in old);
  if (!found.length) return false;
  const current = await local.get(found);
  const moving = Object.fromEntries(found.filter((k) => !current[k] && old[k]).map((k) => [k, old[k]]));
  if (Object.keys(moving).length) await local.set(moving);
  await sync.remove(found);
  return true;
}

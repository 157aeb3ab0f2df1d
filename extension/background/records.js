/* Small keyed records kept in chrome.storage.session, so that what a bubble or a dial is about
 * survives the service worker being stopped and started again (session storage lives as long
 * as the browser, stays in memory, and is not readable by content scripts). */

export class Records {
  constructor(area, key, { limit = 200 } = {}) {
    this.area = area;
    this.key = key;
    this.limit = limit;
    this.cache = null;
    this.writing = Promise.resolve();
  }

  async all() {
    if (this.cache === null) {
      const stored = await this.area.get(this.key);
      this.cache = (stored && stored[this.key]) || {};
    }
    return this.cache;
  }

  async get(id) {
    return (await this.all())[id];
  }

  async put(id, record) {
    const all = await this.all();
    all[id] = record;
    const ids = Object.keys(all);
    // Oldest first (insertion order); keep the newest `limit`.
    for (const old of ids.slice(0, Math.max(0, ids.length - this.limit))) delete all[old];
    return this.save();
  }

  async update(id, changes) {
    const current = (await this.get(id)) || {};
    const next = { ...current, ...changes };
    await this.put(id, next);
    return next;
  }

  save() {
    const snapshot = { [this.key]: this.cache };
    this.writing = this.writing.then(() => this.area.set(snapshot)).catch(() => {});
    return this.writing;
  }
}

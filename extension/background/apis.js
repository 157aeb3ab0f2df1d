/* The chrome.* calls the worker makes, as promises. Callback forms work on every Chrome from
 * minimum_chrome_version (116) on; each failure is turned into a rejected promise or, where the
 * caller cannot act on it, swallowed with a log line. */

function call(fn, ...args) {
  return new Promise((resolve, reject) => {
    fn(...args, (result) => {
      const error = chrome.runtime.lastError;
      if (error) reject(new Error(error.message));
      else resolve(result);
    });
  });
}

export const notifications = {
  create: (id, options) => call(chrome.notifications.create.bind(chrome.notifications), id, options),
  update: (id, options) => call(chrome.notifications.update.bind(chrome.notifications), id, options),
  clear: (id) => call(chrome.notifications.clear.bind(chrome.notifications), id),
  getAll: () => call(chrome.notifications.getAll.bind(chrome.notifications)),
};

export const contextMenus = {
  create: (props) => call(chrome.contextMenus.create.bind(chrome.contextMenus), props),
  update: (id, props) => call(chrome.contextMenus.update.bind(chrome.contextMenus), id, props),
  removeAll: () => call(chrome.contextMenus.removeAll.bind(chrome.contextMenus)),
};

export const tabs = {
  create: (props) => call(chrome.tabs.create.bind(chrome.tabs), props),
};

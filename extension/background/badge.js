/* The toolbar badge: whether pops can reach this browser right now. */

const LOOK = {
  connected: { text: "on", color: "#188038", title: (d) => `callpop: connected as ${d}` },
  connecting: { text: "…", color: "#5f6368", title: () => "callpop: connecting to the hub" },
  disconnected: { text: "off", color: "#e37400", title: (d) => `callpop: not connected to the hub. ${d}` },
  signed_out: { text: "!", color: "#d93025", title: (d) => `callpop: signed out (${d}). Click to open the options.` },
};

/* {text, color, title} for a connection state. */
export function badgeFor(state, detail = "") {
  const look = LOOK[state] || LOOK.disconnected;
  return { text: look.text, color: look.color, title: look.title(detail) };
}

export function showBadge(action, state, detail) {
  const b = badgeFor(state, detail);
  return Promise.all([
    action.setBadgeText({ text: b.text }),
    action.setBadgeBackgroundColor({ color: b.color }),
    action.setTitle({ title: b.title }),
  ]).catch(() => {});
}

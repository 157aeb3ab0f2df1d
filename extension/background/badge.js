/* The toolbar badge: whether pops can reach this browser right now, and how many missed calls
 * wait in the inbox. Connected with missed calls, the count is the badge (red); otherwise the
 * connection's state is, and the title says both. */

const LOOK = {
  connected: { text: "on", color: "#188038", title: (d) => `callpop: connected as ${d}` },
  connecting: { text: "…", color: "#5f6368", title: () => "callpop: connecting to the hub" },
  disconnected: { text: "off", color: "#e37400", title: (d) => `callpop: not connected to the hub. ${d}` },
  signed_out: { text: "!", color: "#d93025", title: (d) => `callpop: signed out (${d}). Click to open callpop, then its options.` },
};

const MISSED_COLOR = "#d93025";

/* {text, color, title} for a connection state and the inbox's count. */
export function badgeFor(state, detail = "", missed = 0) {
  const look = LOOK[state] || LOOK.disconnected;
  const n = Number.isInteger(missed) && missed > 0 ? missed : 0;
  const title = look.title(detail) + (n ? `\n${n} missed call${n === 1 ? "" : "s"} in the inbox` : "");
  if (n && state === "connected") return { text: n > 99 ? "99+" : String(n), color: MISSED_COLOR, title };
  return { text: look.text, color: look.color, title };
}

export function showBadge(action, state, detail, missed = 0) {
  const b = badgeFor(state, detail, missed);
  return Promise.all([
    action.setBadgeText({ text: b.text }),
    action.setBadgeBackgroundColor({ color: b.color }),
    action.setTitle({ title: b.title }),
  ]).catch(() => {});
}

/* What the worker does with each message from the hub. The keys are the protocol's `type` names,
 * the same as HUB_TYPES in pipelines/events.py (a test reads that file and compares). */

export const HUB_HANDLERS = Object.freeze({
  welcome: (m, app) => app.welcomed(m.agent || null),
  pop: (m, app, receivedAt) => app.popups.show(m, receivedAt),
  call: (m, app) => app.popups.callState(m),
  dial: (m, app) => app.dialing.progress(m),
  inbox: (m, app) => app.inbox.update(m),
  call_log: (m, app) => app.popups.logged(m),
  // Any message is a sign of life to the connection; these carry nothing else.
  pong: () => undefined,
  heartbeat: () => undefined,
  error: (m, app) => app.log(`hub error ${m.code}: ${m.message}`),
});

/* Run the handler for one hub message; unknown types are logged and ignored (a newer hub). */
export function dispatch(message, app, receivedAt = Date.now()) {
  const type = message && message.type;
  const handler = typeof type === "string" && Object.hasOwn(HUB_HANDLERS, type) ? HUB_HANDLERS[type] : null;
  if (!handler) {
    app.log(`ignored hub message of type ${JSON.stringify(type)}`);
    return undefined;
  }
  return handler(message, app, receivedAt);
}

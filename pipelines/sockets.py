"""The ``/ws`` WebSocket (docs/PROTOCOL.md): a browser signs in with its hello, then gets its pops
and dial progress on its ``Session``; what it sends (acks, pings) is answered here."""

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket

from .agents import token_digest
from .events import ACK_EVENTS, msg_error
from .hub import Hub
from .sessions import CLOSE_UNAUTHORIZED, Session
from .settings import Settings

log = logging.getLogger("callpop.api")


def router(hub: Hub, settings: Settings) -> APIRouter:
    """The ``/ws`` route on ``hub``."""
    r = APIRouter()

    @r.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        agent, why = None, "no hello"
        try:
            async with asyncio.timeout(settings.ws_hello_timeout_s):
                first = await websocket.receive()
            hello = _json(first)
            if isinstance(hello, dict) and hello.get("type") == "hello":
                agent, why = hub.agents.authenticate(hello.get("token") if isinstance(hello.get("token"), str) else None)
            else:
                why = "the first message must be {\"type\":\"hello\",\"token\":...}"
        except TimeoutError:
            why = "no hello in time"
        if agent is None:
            hub.reject("/ws", "unauthorized", why)
            with contextlib.suppress(Exception):
                await websocket.close(CLOSE_UNAUTHORIZED, why[:120])
            return
        session = Session(agent, websocket.send_text, websocket.close, queue_size=settings.ws_send_queue,
                          send_timeout_s=settings.ws_send_timeout_s, heartbeat_s=settings.ws_heartbeat_s,
                          client=str(hello.get("client", ""))[:20])
        session.token_digest = token_digest(hello["token"])  # a replaced token's sockets are closed
        session.start()
        hub.welcome(session)
        try:
            while not session.closed:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                reply = handle_client_message(hub, session, _json(message))
                if reply is not None:
                    session.offer_message(reply)
        except Exception:  # noqa: BLE001 - a broken socket ends its own session only
            log.debug("socket %s ended", session.id, exc_info=True)
        finally:
            hub.sessions.remove(session)
            session.detach()

    return r


_BAD = object()


def _json(message: dict) -> Any:
    if message.get("type") == "websocket.disconnect":
        return _BAD
    text = message.get("text")
    if text is None:
        return _BAD
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested past what the parser follows
        return _BAD


def handle_client_message(hub: Hub, session: Session, message: Any) -> dict | None:
    """One message from a browser; returns the reply, if any. Keys are the protocol's types."""
    if message is _BAD or not isinstance(message, dict):
        return msg_error("bad_message", "messages are JSON objects with a \"type\"")
    kind = message.get("type")
    handler = CLIENT_HANDLERS.get(kind) if isinstance(kind, str) else None
    if handler is None:
        return msg_error("unknown_type", f"unknown message type {str(kind)[:40]!r}; known: {', '.join(CLIENT_HANDLERS)}")
    return handler(hub, session, message)


def _on_ack(hub: Hub, session: Session, message: dict) -> dict | None:
    call_id, event = message.get("call_id"), message.get("event")
    if not isinstance(call_id, str) or event not in ACK_EVENTS:
        return msg_error("bad_ack", f"ack needs a call_id and an event ({', '.join(ACK_EVENTS)})")
    chosen = "chosen" in message  # a click on one of the pop's contacts (docs/PROTOCOL.md)
    if chosen and event != "clicked":
        return msg_error("bad_choice", "chosen goes with the event 'clicked'")
    problem = hub.popper.ack(session.agent, call_id, event)
    if problem:
        return msg_error("unknown_call", problem)
    problem = hub.popper.choose(session.agent, call_id, message["chosen"]) if chosen else None
    return msg_error("bad_choice", problem) if problem else None


CLIENT_HANDLERS = {
    "hello": lambda hub, session, m: msg_error("already_signed_in", "this socket is already signed in"),
    "ack": _on_ack,
    "ping": lambda hub, session, m: {"type": "pong"},
}

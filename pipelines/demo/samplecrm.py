"""The sample CRM: the lookup contract served over data/contacts.csv, for the demo and tests.

``GET /crm/lookup?phone=`` answers exactly as docs/crm-contract.md says a customer's CRM should; the
pages it links to (a contact, a list of matches, a "new contact" form) are small HTML pages.
``POST /crm/log`` takes the hub's call log (the demo sets CALLPOP_CRM_LOG_URL to it) and the
contact's page lists the calls logged for its number, latest revision of each (kept in memory).
"""

from __future__ import annotations

import html
from urllib.parse import quote

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from ..contacts import Contact, Contacts
from ..crm_contract import CONTACTS_CAP


def lookup_answer(contacts: Contacts, phone: str, base_url: str) -> dict:
    """The contract JSON for one number."""
    found = contacts.by_phone(phone)
    if not found:
        return {"STATUS": "OK", "URL": f"{base_url}/crm/new?phone={quote(phone)}", "CLIENTNAME": "",
                "TOTAL": "0", "COMPANY": ""}
    if len(found) == 1:
        c = found[0]
        return {"STATUS": "OK", "URL": f"{base_url}/crm/contacts/{c.id}", "CLIENTNAME": c.name,
                "TOTAL": "1", "COMPANY": c.company}
    companies = sorted({c.company for c in found if c.company})
    return {"STATUS": "OK", "URL": f"{base_url}/crm/search?phone={quote(phone)}",
            "CLIENTNAME": " / ".join(c.name for c in found[:3]) + (" …" if len(found) > 3 else ""),
            "TOTAL": str(len(found)), "COMPANY": companies[0] if len(companies) == 1 else "",
            # The contract's optional candidates, so the agent picks the right one in the bubble.
            "CONTACTS": [{"NAME": c.name, "COMPANY": c.company, "URL": f"{base_url}/crm/contacts/{c.id}"}
                         for c in found[:CONTACTS_CAP]]}


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font:16px system-ui;margin:2rem;max-width:40rem}td{padding:.2rem .8rem}</style>"
        f"</head><body><p><small>callpop sample CRM</small></p><h1 dir='auto'>{html.escape(title)}</h1>"
        f"{body}</body></html>")


def _card(c: Contact) -> str:
    rows = "".join(f"<tr><th>{k}</th><td dir='auto'>{html.escape(v)}</td></tr>"
                   for k, v in (("Company", c.company), ("Phone", c.phone), ("Email", c.email)) if v)
    return f"<table>{rows}</table>"


class LoggedCall(BaseModel):
    """A call log entry (docs/crm-contract.md, "Call log"): the fields the page shows; others are kept."""
    model_config = ConfigDict(extra="allow")
    call_id: str = Field(min_length=1, max_length=200)
    e164: str = Field(default="", max_length=20)
    started_at: str | None = Field(default=None, max_length=40)
    status: str = Field(default="", max_length=40)
    agent_name: str = Field(default="", max_length=200)
    disposition: str = Field(default="", max_length=100)
    notes: str = Field(default="", max_length=60_000)


KEPT = 1000  # logged calls the sample CRM remembers


def _logged(entries: list[dict]) -> str:
    if not entries:
        return "<p>No calls logged yet.</p>"
    rows = "".join(f"<tr><td>{html.escape(e.get('started_at') or '')}</td><td>{html.escape(e.get('status', ''))}</td>"
                   f"<td dir='auto'>{html.escape(e.get('agent_name', ''))}</td>"
                   f"<td>{html.escape(e.get('disposition', ''))}</td><td dir='auto'>{html.escape(e.get('notes', ''))}</td></tr>"
                   for e in entries)
    return ("<h2>Calls logged by callpop</h2><table><tr><th>Started</th><th>Status</th><th>Agent</th>"
            f"<th>Disposition</th><th>Notes</th></tr>{rows}</table>")


def router(contacts_of, base_url: str) -> APIRouter:
    """``contacts_of(request)`` gives the Contacts to serve (the hub's, so imports show up);
    ``base_url`` is the hub's from its settings (never the request's Host, which a caller picks)."""
    r = APIRouter(prefix="/crm", tags=["sample CRM"])
    calls: dict[str, tuple[int, dict]] = {}  # call id -> (revision, entry): the latest revision wins

    @r.post("/log", summary="Call log receiver (the contract): keeps the latest revision of each call")
    async def log_call(entry: LoggedCall, idempotency_key: str = Header("", max_length=240)) -> dict:
        _, _, revision = idempotency_key.rpartition(":")
        number = int(revision) if revision.isdigit() else 0
        if number >= calls.get(entry.call_id, (-1, {}))[0]:
            calls.pop(entry.call_id, None)
            calls[entry.call_id] = (number, entry.model_dump())
            while len(calls) > KEPT:
                calls.pop(next(iter(calls)))
        return {"STATUS": "OK", "URL": f"{base_url}/crm/calls/{quote(entry.call_id, safe='')}"}

    @r.get("/calls/{call_id}", response_class=HTMLResponse, include_in_schema=False)
    async def logged_call(call_id: str):
        if call_id not in calls:
            raise HTTPException(404, "no such call logged")
        return _page(f"Call {call_id}", _logged([calls[call_id][1]]))

    @r.get("/lookup", summary="CRM lookup (the contract)")
    async def lookup(request: Request, phone: str = Query(..., max_length=64)) -> dict:
        return lookup_answer(contacts_of(request), phone, base_url)

    @r.get("/contacts/{contact_id}", response_class=HTMLResponse, include_in_schema=False)
    async def contact(request: Request, contact_id: str):
        for c in contacts_of(request).all():
            if c.id == contact_id:
                mine = [e for _, e in reversed(calls.values()) if c.e164 and e.get("e164") == c.e164]
                return _page(c.name, _card(c) + _logged(mine))
        raise HTTPException(404, "no such contact")

    @r.get("/search", response_class=HTMLResponse, include_in_schema=False)
    async def search(request: Request, phone: str = Query("", max_length=64)):
        found = contacts_of(request).by_phone(phone)
        items = "".join(f"<li><a href='contacts/{html.escape(c.id)}' dir='auto'>{html.escape(c.name)}</a>"
                        f" — {html.escape(c.company)}</li>" for c in found)
        return _page(f"{len(found)} contacts with {phone}", f"<ul>{items}</ul>")

    @r.get("/new", response_class=HTMLResponse, include_in_schema=False)
    async def new(phone: str = Query("", max_length=64)):
        return _page("New contact", f"<form><label>Name <input name='name'></label> "
                                    f"<label>Phone <input name='phone' value='{html.escape(phone)}'></label>"
                                    "<button>Save</button></form>")

    return r

"""The sample CRM: the lookup contract served over data/contacts.csv, for the demo and tests.

``GET /crm/lookup?phone=`` answers exactly as docs/crm-contract.md says a customer's CRM should; the
pages it links to (a contact, a list of matches, a "new contact" form) are small HTML pages.
"""

from __future__ import annotations

import html
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

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


def router(contacts_of, base_url: str) -> APIRouter:
    """``contacts_of(request)`` gives the Contacts to serve (the hub's, so imports show up);
    ``base_url`` is the hub's from its settings (never the request's Host, which a caller picks)."""
    r = APIRouter(prefix="/crm", tags=["sample CRM"])

    @r.get("/lookup", summary="CRM lookup (the contract)")
    async def lookup(request: Request, phone: str = Query(..., max_length=64)) -> dict:
        return lookup_answer(contacts_of(request), phone, base_url)

    @r.get("/contacts/{contact_id}", response_class=HTMLResponse, include_in_schema=False)
    async def contact(request: Request, contact_id: str):
        for c in contacts_of(request).all():
            if c.id == contact_id:
                return _page(c.name, _card(c))
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

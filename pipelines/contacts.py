"""Contacts: the sample CRM's records and the console's dialling grid.

An in-memory index over a CSV (``id,name,company,phone,email``): exact match by number for the
CRM lookup, and substring search over name, company and any way of writing the number.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

from . import phone as phones

COLUMNS = ("id", "name", "company", "phone", "email")


@dataclasses.dataclass(frozen=True)
class Contact:
    id: str
    name: str
    company: str
    phone: str
    email: str = ""
    e164: str = ""

    def public(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str


class Contacts:
    def __init__(self, region: str, contacts: list[Contact] | None = None):
        self.region = region
        self._rows: list[Contact] = []
        self._by_key: dict[str, list[Contact]] = {}
        self._haystack: list[str] = []
        for c in contacts or []:
            self.add(c)

    def __len__(self) -> int:
        return len(self._rows)

    def all(self) -> list[Contact]:
        return list(self._rows)

    def add(self, contact: Contact) -> Contact:
        key = phones.match_key(contact.phone, self.region)
        contact = dataclasses.replace(contact, e164=key if key.startswith("+") else "")
        self._rows.append(contact)
        self._by_key.setdefault(key, []).append(contact)
        digits = {phones.normalise(contact.phone, self.region).digits, key.lstrip("+")}
        national = phones.normalise(contact.phone, self.region).national
        digits.add("".join(ch for ch in national if ch.isdigit()))
        self._haystack.append(" ".join([contact.name.casefold(), contact.company.casefold(),
                                        contact.email.casefold(), *digits]))
        return contact

    def by_phone(self, raw: str) -> list[Contact]:
        """Every contact whose number is this number, however either was written."""
        return list(self._by_key.get(phones.match_key(raw, self.region), []))

    def search(self, query: str, limit: int = 50) -> list[Contact]:
        """Contacts whose name, company, email or number contains the query (case-insensitive;
        a number matches in any spelling: 054-123, 972541, +972 54 ...)."""
        query = (query or "").strip()
        if not query:
            return self._rows[:limit]
        words = query.casefold().split()
        numeric = phones.search_keys(query, self.region) if any(ch.isdigit() for ch in query) else set()
        out = []
        for contact, hay in zip(self._rows, self._haystack):
            if all(w in hay for w in words) or any(k in hay for k in numeric):
                out.append(contact)
                if len(out) >= limit:
                    break
        return out

    @classmethod
    def from_csv(cls, path: Path | str, region: str) -> "Contacts":
        with Path(path).open(newline="", encoding="utf-8-sig") as f:
            contacts, problems = parse_csv(f.read(), region)
        if problems:
            first = problems[0]
            raise ValueError(f"{path} line {first.line}: {first.reason}")
        return cls(region, contacts)


def parse_csv(text: str, region: str) -> tuple[list[Contact], list[RowProblem]]:
    """Contacts from CSV text, and the rows that were refused with why (for imports)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "name" not in fields or "phone" not in fields:
        return [], [RowProblem(1, "the header must have at least the columns name and phone")]
    contacts, problems = [], []
    for n, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("name"):
            problems.append(RowProblem(n, "name is empty"))
            continue
        number = phones.normalise(row.get("phone", ""), region)
        if not number.valid:
            problems.append(RowProblem(n, f"{row.get('phone', '')!r} is not a valid phone number"))
            continue
        contacts.append(Contact(id=row.get("id") or f"row{n}", name=row["name"],
                                company=row.get("company", ""), phone=row["phone"],
                                email=row.get("email", "")))
    return contacts, problems

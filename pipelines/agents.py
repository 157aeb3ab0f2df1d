"""Agents: who may sign in, with which token, and which phones are theirs.

Loaded from a CSV (``id,name,token,extension,mobile,home`` plus optional ``role``,
``expires_at``, ``disabled``). Tokens are compared in constant time and never appear in
``repr``, logs or API answers: ``Agent.public()`` is what leaves the hub.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import hmac
from datetime import datetime, timezone
from pathlib import Path

REQUIRED = ("id", "name", "token", "extension", "mobile", "home")


@dataclasses.dataclass(frozen=True)
class Agent:
    id: str
    name: str
    token: str = dataclasses.field(repr=False)
    extension: str = ""
    mobile: str = ""
    home: str = ""
    role: str = "agent"  # agent | supervisor (a supervisor sees every live call)
    expires_at: datetime | None = None
    disabled: bool = False

    def public(self) -> dict:
        return {"id": self.id, "name": self.name, "extension": self.extension,
                "mobile": self.mobile, "home": self.home, "role": self.role}

    def usable(self, now: datetime) -> str | None:
        """None when the token may be used now, else why not."""
        if self.disabled:
            return "token revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "token expired"
        return None


class AgentsError(ValueError):
    pass


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Agents:
    """The directory: by token (for sign-in), by extension (for routing), by id."""

    def __init__(self, agents: list[Agent]):
        self._by_id = {a.id: a for a in agents}
        self._by_digest = {_digest(a.token): a for a in agents if a.token}
        self._by_extension: dict[str, list[Agent]] = {}
        for a in agents:
            if a.extension:
                self._by_extension.setdefault(a.extension, []).append(a)

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, agent_id: str) -> Agent | None:
        return self._by_id.get(agent_id)

    def by_extension(self, extension: str) -> list[Agent]:
        return self._by_extension.get(str(extension).strip(), [])

    def authenticate(self, token: str | None, now: datetime | None = None) -> tuple[Agent | None, str]:
        """(agent, "") for a good token, else (None, reason). Reasons never echo the token."""
        if not token:
            return None, "missing token"
        # Look up by digest so the dict comparison does not leak timing on the token itself.
        agent = self._by_digest.get(_digest(token))
        if agent is None or not hmac.compare_digest(_digest(agent.token), _digest(token)):
            return None, "invalid token"
        problem = agent.usable(now or datetime.now(timezone.utc))
        return (None, problem) if problem else (agent, "")

    @classmethod
    def from_csv(cls, path: Path | str) -> "Agents":
        path = Path(path)
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise AgentsError(f"{path}: missing columns {', '.join(missing)}")
            agents, seen_tokens = [], set()
            for n, row in enumerate(reader, start=2):
                row = {k: (v or "").strip() for k, v in row.items() if k}
                if not row["id"] or not row["token"]:
                    raise AgentsError(f"{path} line {n}: id and token are required")
                if row["token"] in seen_tokens:
                    raise AgentsError(f"{path} line {n}: token shared with another agent")
                seen_tokens.add(row["token"])
                expires = None
                if row.get("expires_at"):
                    try:
                        expires = datetime.fromisoformat(row["expires_at"])
                    except ValueError:
                        raise AgentsError(f"{path} line {n}: expires_at is not an ISO date") from None
                    if expires.tzinfo is None:
                        expires = expires.replace(tzinfo=timezone.utc)
                agents.append(Agent(
                    id=row["id"], name=row["name"] or row["id"], token=row["token"],
                    extension=row["extension"], mobile=row["mobile"], home=row["home"],
                    role=row.get("role") or "agent", expires_at=expires,
                    disabled=(row.get("disabled") or "").lower() in ("1", "true", "yes"),
                ))
        return cls(agents)

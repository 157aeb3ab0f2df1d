"""Agents: who may sign in, with which token, and which phones are theirs.

Loaded from a CSV (``id,name,token,extension,mobile,home`` plus optional ``role``,
``expires_at``, ``disabled``, ``voicenter_user``, ``pop_on``). The ``token`` column holds the
token's SHA-256 digest (``sha256:<hex>``, written by ``python -m pipelines agents token``), or several
separated by spaces (one per device signed in with a one-time code); a plaintext token still loads,
with a warning. The hub keeps only digests and compares them in constant time; tokens
never appear in ``repr``, logs or API answers: ``Agent.public()`` is what leaves the hub.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

log = logging.getLogger("callpop.agents")
REQUIRED = ("id", "name", "token", "extension", "mobile", "home")
ROLES = ("agent", "supervisor")  # pipelines/access.py says what each may do
POP_ON = ("ring", "answer", "off")  # when the agent's pop is sent: pipelines/hub.py honours it
DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
DEMO_PREFIX = "demo-"  # the demo's tokens are public (data/agents.csv): never on a reachable hub


def digest_text(token: str) -> str:
    """What the agents file holds for a token."""
    return "sha256:" + _digest(token).hex()


def token_digest(token: str) -> bytes:
    """The key a token is known by (what a socket remembers of the token it signed in with)."""
    return _digest(token)


@dataclasses.dataclass(frozen=True)
class Agent:
    id: str
    name: str
    token: str = dataclasses.field(repr=False)  # as the file has it: sha256:<hex> (space-separated), or plaintext
    extension: str = ""
    mobile: str = ""
    home: str = ""
    role: str = "agent"  # one of ROLES
    expires_at: datetime | None = None
    disabled: bool = False
    voicenter_user: str = ""  # the agent's Voicenter extension user (Voicenter's extenUser), if any
    pop_on: str = "ring"  # one of POP_ON: when the ringing call, at the answer, or never (inbox only)

    @property
    def digests(self) -> tuple[bytes, ...]:
        """One per token the agent holds (the file's column may list several)."""
        return tuple(_key(part) for part in self.token.split())

    @property
    def demo_token(self) -> bool:
        return any(part.startswith(DEMO_PREFIX) for part in self.token.split())

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


def _key(part: str) -> bytes:
    found = DIGEST.match(part)
    return bytes.fromhex(found.group(1)) if found else _digest(part)


class Agents:
    """The directory: by token (for sign-in), by extension (for routing), by id."""

    def __init__(self, agents: list[Agent]):
        self._by_id = {a.id: a for a in agents}
        self._by_digest = {d: a for a in agents for d in a.digests}
        self._by_extension: dict[str, list[Agent]] = {}
        for a in agents:
            if a.extension:
                self._by_extension.setdefault(a.extension, []).append(a)

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def with_demo_tokens(self) -> list[str]:
        """Ids of agents whose token is one of the demo's public ones."""
        return [a.id for a in self if a.demo_token]

    def get(self, agent_id: str) -> Agent | None:
        return self._by_id.get(agent_id)

    def by_digest(self, digest: bytes) -> Agent | None:
        """The agent holding the token of this digest (``token_digest``), whatever its state."""
        return self._by_digest.get(digest)

    def by_extension(self, extension: str) -> list[Agent]:
        return self._by_extension.get(str(extension).strip(), [])

    def authenticate(self, token: str | None, now: datetime | None = None) -> tuple[Agent | None, str]:
        """(agent, "") for a good token, else (None, reason). Reasons never echo the token."""
        if not token:
            return None, "missing token"
        # Looked up by digest, so the dict comparison does not leak timing on the token itself.
        given = _digest(token)
        agent = self._by_digest.get(given)
        if agent is None or not any(hmac.compare_digest(d, given) for d in agent.digests):
            return None, "invalid token"
        problem = agent.usable(now or datetime.now(timezone.utc))
        return (None, problem) if problem else (agent, "")

    @classmethod
    def from_csv(cls, path: Path | str, label: str | None = None) -> "Agents":
        """``label``: the file's name in messages (a temporary file checked before it replaces it)."""
        path = Path(path)
        name = label or str(path)
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise AgentsError(f"{name}: missing columns {', '.join(missing)}")
            agents, seen_tokens, seen_ids, plaintext = [], set(), set(), 0
            for n, row in enumerate(reader, start=2):
                row = {k: (v or "").strip() for k, v in row.items() if k}
                if not row["id"] or not row["token"]:
                    raise AgentsError(f"{name} line {n}: id and token are required")
                if row["id"] in seen_ids:  # the second would silently replace the first
                    raise AgentsError(f"{name} line {n}: agent id {row['id'][:40]!r} is already used")
                seen_ids.add(row["id"])
                for part in row["token"].split():
                    if (key := _key(part)) in seen_tokens:
                        raise AgentsError(f"{name} line {n}: token shared with another agent")
                    seen_tokens.add(key)
                    plaintext += not DIGEST.match(part) and not part.startswith(DEMO_PREFIX)
                expires = None
                if row.get("expires_at"):
                    try:
                        expires = datetime.fromisoformat(row["expires_at"])
                    except ValueError:
                        raise AgentsError(f"{name} line {n}: expires_at is not an ISO date") from None
                    if expires.tzinfo is None:
                        expires = expires.replace(tzinfo=timezone.utc)
                role = (row.get("role") or "agent").lower()
                if role not in ROLES:  # a typo must not quietly make a supervisor an agent (or back)
                    raise AgentsError(f"{name} line {n}: role {row['role'][:20]!r} is not one of {', '.join(ROLES)}")
                pop_on = (row.get("pop_on") or "ring").lower()
                if pop_on not in POP_ON:
                    raise AgentsError(f"{name} line {n}: pop_on {row['pop_on'][:20]!r} is not one of "
                                      f"{', '.join(POP_ON)}")
                agents.append(Agent(
                    id=row["id"], name=row["name"] or row["id"], token=row["token"],
                    extension=row["extension"], mobile=row["mobile"], home=row["home"],
                    role=role, expires_at=expires,
                    disabled=(row.get("disabled") or "").lower() in ("1", "true", "yes"),
                    voicenter_user=row.get("voicenter_user") or "", pop_on=pop_on,
                ))
        if plaintext:
            log.warning("%s holds %d plaintext token(s): store digests instead with "
                        "'callpop agents hash --file %s' (the tokens stay the same)", name, plaintext, name)
        return cls(agents)


def rewrite(path: Path | str, change: Callable[[list[str], list[dict]], list[dict]]) -> None:
    """Rewrite the agents file through ``change(fields, rows) -> rows`` (``fields`` may be
    appended to), atomically: the new text goes to a temporary file in the same folder, synced,
    checked to load (AgentsError otherwise, the file untouched), then renamed over the old one, so
    a reader or a crash sees the old file or the new one, never half of one."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), [dict(row) for row in reader]
    rows = change(fields, rows)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            out.flush()
            os.fsync(out.fileno())
        Agents.from_csv(tmp, label=path.name)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _each_row(change: Callable[[dict], dict]) -> Callable[[list[str], list[dict]], list[dict]]:
    return lambda fields, rows: [change(row) for row in rows]


def issue_token(path: Path | str, agent_id: str) -> str:
    """A new token for ``agent_id``: its digest replaces the agent's tokens in the file (the old
    ones stop working once the hub reads the file again); the token itself is returned, to be
    shown once."""
    path, token = Path(path), secrets.token_urlsafe(32)
    if Agents.from_csv(path).get(agent_id) is None:  # also: never rewrite a file that does not load
        raise AgentsError(f"{path}: no agent with id {agent_id!r}")

    def change(row: dict) -> dict:
        if (row.get("id") or "").strip() == agent_id:
            row["token"] = digest_text(token)
        return row
    rewrite(path, _each_row(change))
    return token


def hash_tokens(path: Path | str) -> int:
    """Replace every plaintext token of the file by its digest; returns how many were."""
    path, changed = Path(path), []

    def change(row: dict) -> dict:
        parts = (row.get("token") or "").split()
        if any(not DIGEST.match(part) for part in parts):
            changed.extend(part for part in parts if not DIGEST.match(part))
            row["token"] = " ".join(part if DIGEST.match(part) else digest_text(part) for part in parts)
        return row
    Agents.from_csv(path)
    rewrite(path, _each_row(change))
    return len(changed)

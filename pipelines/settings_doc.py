"""The settings as people read them: ``callpop settings`` and the text of ``.env.example``, made
from the one table (``pipelines/settings.py``) and its help texts."""

from __future__ import annotations

import re
from typing import Any

from pydantic import SecretStr

from .settings import ENV_FILE_VAR, Settings, _choices, _shown, env_name


def described() -> list[tuple[str, str, Any, tuple[str, ...], bool]]:
    """(environment name, help, default as written in .env, choices, secret) for every setting."""
    out = []
    for name, field in Settings.model_fields.items():
        default = field.default
        secret = isinstance(default, SecretStr)
        out.append((env_name(name), field.description or "", "" if secret else _shown(default),
                    _choices(field.annotation), secret))
    return out


def env_example() -> str:
    """The text of .env.example: every setting, its help and its default."""
    out = ["# callpop settings: copy to .env and edit. Every line is optional;",
           "# the value shown is the default. The environment overrides this file.",
           f"# Another file than ./.env: {ENV_FILE_VAR}=/path in the environment, or callpop --env-file /path",
           "# (under systemd give it explicitly: the unit's WorkingDirectory decides where ./.env is).", ""]
    for env, help_text, default, choices, _ in described():
        out.append(f"# {help_text}")
        if choices:
            out.append(f"# one of: {', '.join(choices)}")
        out.append(f"{env}={_quoted(default)}")
        out.append("")
    return "\n".join(out)


def _quoted(value: str) -> str:
    """A value as a .env line must hold it: single quotes when it has spaces, quotes or '#'."""
    if re.search(r"[\s'\"#\\]", value):
        return "'" + value.replace("'", "\\'") + "'"
    return value

"""Which providers there are: the built-ins, and any a package adds through the entry-point group
``callpop.providers``.

An entry point names a factory ``(settings: Settings, host: ProviderHost) -> Provider``; its
name is what ``CALLPOP_PROVIDER`` says. The built-ins are listed here as well, so a source
checkout runs without being installed; an installed package's entry point of the same name
replaces a built-in. Factories are loaded only when chosen: running one provider never imports
the others (nor their libraries).
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from ..settings import SettingsError
from .base import Provider, ProviderHost

if TYPE_CHECKING:
    from ..settings import Settings

GROUP = "callpop.providers"
BUILTINS = {
    "sim": "pipelines.providers.sim:create",
    "webhook": "pipelines.providers.webhook:create",
    "voicenter": "pipelines.providers.voicenter.provider:create",
    "asterisk": "pipelines.providers.asterisk.provider:create",
}


def available() -> dict[str, EntryPoint]:
    """Provider name -> its factory's entry point."""
    found = {name: EntryPoint(name, value, GROUP) for name, value in BUILTINS.items()}
    found |= {ep.name: ep for ep in installed()}
    return found


@functools.cache
def installed() -> tuple[EntryPoint, ...]:
    """The providers installed packages add (read once per process: it scans the metadata of every
    installed package, tens of milliseconds, and settings are checked against it each time)."""
    return tuple(entry_points(group=GROUP))


def make_provider(settings: "Settings", host: ProviderHost) -> Provider:
    """The provider the settings name; SettingsError when no provider has that name."""
    name = settings.provider
    entry = available().get(name)
    if entry is None:
        raise SettingsError(f"CALLPOP_PROVIDER={name}: no such provider (available: {', '.join(sorted(available()))})")
    provider = entry.load()(settings, host)
    if not isinstance(provider, Provider):
        raise SettingsError(f"CALLPOP_PROVIDER={name}: {entry.value} made a {type(provider).__name__}, not a Provider")
    return provider

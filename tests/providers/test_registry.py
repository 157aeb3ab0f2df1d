"""Providers are found by name: the built-ins without installing anything, others through the
``callpop.providers`` entry-point group."""

from importlib.metadata import EntryPoint
from types import SimpleNamespace

import pytest

from pipelines.providers import registry
from pipelines.providers.base import Provider
from pipelines.settings import SettingsError


class FakeProvider(Provider):
    name = "fake"

    def __init__(self, settings, host):
        self.settings, self.made_with = settings, host

    async def originate(self, plan):
        pass


def make_fake(settings, host):
    return FakeProvider(settings, host)


def make_nothing(settings, host):
    return object()


@pytest.fixture
def installed(monkeypatch):
    """Pretend these entry points are installed."""
    def install(**names):
        eps = [EntryPoint(name, value, registry.GROUP) for name, value in names.items()]
        monkeypatch.setattr(registry, "installed", lambda: tuple(eps))
    return install


def test_the_builtins_need_no_installation(installed):
    installed()
    assert {"sim", "webhook", "voicenter", "asterisk"} <= set(registry.available())


def test_an_entry_point_adds_a_provider_made_with_settings_and_host(installed):
    installed(fake=f"{__name__}:make_fake")
    settings, host = SimpleNamespace(provider="fake"), object()
    provider = registry.make_provider(settings, host)
    assert isinstance(provider, FakeProvider)
    assert (provider.settings, provider.made_with) == (settings, host)
    assert provider.routes() is None  # no URLs of its own unless it says so


def test_an_unknown_name_is_a_settings_error_naming_the_available_ones(installed):
    installed(fake=f"{__name__}:make_fake")
    with pytest.raises(SettingsError, match=r"skype.*asterisk, fake, sim, voicenter, webhook"):
        registry.make_provider(SimpleNamespace(provider="skype"), object())


def test_a_factory_must_make_a_provider(installed):
    installed(odd=f"{__name__}:make_nothing")
    with pytest.raises(SettingsError, match="not a Provider"):
        registry.make_provider(SimpleNamespace(provider="odd"), object())

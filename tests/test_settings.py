"""The one settings table, .env.example and loading."""

from pathlib import Path

import pytest

from pipelines import settings as s

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_lists_every_setting_with_its_help_and_default():
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == s.env_example(), \
        "regenerate: python -m pipelines settings --example > .env.example"
    listed = {line.split("=", 1)[0] for line in s.env_example().splitlines() if line.startswith("CALLPOP_")}
    assert listed == {x.env for x in s.TABLE}


def test_every_setting_has_help_and_the_names_outside_checks_use():
    assert all(x.help.strip() for x in s.TABLE)
    for name in ("CALLPOP_HOST", "CALLPOP_PORT", "CALLPOP_DB_PATH", "CALLPOP_CRM_URL", "CALLPOP_INGEST_TOKEN",
                 "CALLPOP_AGENTS_CSV", "CALLPOP_PROVIDER", "CALLPOP_DEFAULT_REGION"):
        assert name in {x.env for x in s.TABLE}


def test_environment_beats_env_file_beats_default(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nCALLPOP_PORT=9000\nCALLPOP_CRM_URL='https://crm.example.com/x'\n"
                        "export CALLPOP_DEFAULT_REGION=US\n")
    loaded = s.load(environ={"CALLPOP_PORT": "9100"}, env_file=env_file)
    assert loaded.port == 9100 and loaded.crm_url == "https://crm.example.com/x"
    assert loaded.default_region == "US" and loaded.host == "127.0.0.1"


@pytest.mark.parametrize("env, message", [({"CALLPOP_PORT": "eighty"}, "CALLPOP_PORT"),
                                          ({"CALLPOP_PROVIDER": "skype"}, "one of"),
                                          ({"CALLPOP_STORE_PROCESS": "ture"}, "CALLPOP_STORE_PROCESS.*true/false")])
def test_bad_values_are_refused_with_the_setting_named(env, message):
    with pytest.raises(s.SettingsError, match=message):
        s.load(environ=env, env_file=None)


def test_secrets_are_redacted():
    loaded = s.load(environ={"CALLPOP_INGEST_TOKEN": "t0p-s3cret", "CALLPOP_CRM_AUTH_HEADER": "X-Key: k"},
                    env_file=None)
    shown = str(loaded.redacted())
    assert "t0p-s3cret" not in shown and "X-Key" not in shown and "(set)" in shown

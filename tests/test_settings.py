"""The one settings table, .env.example, and loading .env as people write it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import settings as s, settings_doc

ROOT = Path(__file__).resolve().parent.parent


def test_env_example_lists_every_setting_with_its_help_and_default():
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == settings_doc.env_example(), \
        "regenerate: python -m pipelines settings --example > .env.example"
    listed = {line.split("=", 1)[0] for line in settings_doc.env_example().splitlines() if line.startswith("CALLPOP_")}
    assert listed == {env for env, *_ in settings_doc.described()}


def test_env_example_read_back_gives_the_defaults(tmp_path):
    example = tmp_path / ".env"
    example.write_text(settings_doc.env_example(), encoding="utf-8")
    assert s.load(env_file=example) == s.load(env_file=None)


def test_every_setting_has_help_and_the_names_outside_checks_use():
    rows = settings_doc.described()
    assert all(help_text.strip() for _, help_text, *_ in rows)
    for name in ("CALLPOP_HOST", "CALLPOP_PORT", "CALLPOP_DB_PATH", "CALLPOP_CRM_URL", "CALLPOP_INGEST_TOKEN",
                 "CALLPOP_AGENTS_CSV", "CALLPOP_PROVIDER", "CALLPOP_DEFAULT_REGION", "CALLPOP_AMI_HOST",
                 "CALLPOP_AMI_PORT", "CALLPOP_AMI_USERNAME", "CALLPOP_AMI_SECRET"):
        assert name in {env for env, *_ in rows}


def test_environment_beats_env_file_beats_default(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nCALLPOP_PORT=9000\nCALLPOP_CRM_URL='https://crm.example.com/x'\n"
                        "export CALLPOP_DEFAULT_REGION=US\n")
    monkeypatch.setenv("CALLPOP_PORT", "9100")
    loaded = s.load(env_file=env_file)
    assert loaded.port == 9100 and loaded.crm_url == "https://crm.example.com/x"
    assert loaded.default_region == "US" and loaded.host == "127.0.0.1"


def readme_snippet_lines() -> str:
    """The CALLPOP_ lines of README's sh blocks, trailing comments and all."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    return "\n".join(line for block in blocks for line in block.splitlines() if line.startswith("CALLPOP_"))


def test_the_readme_snippets_pasted_into_env_give_the_values_meant(tmp_path):
    lines = readme_snippet_lines()
    assert "CALLPOP_CRM_AUTH_HEADER=" in lines and "# " in lines  # the snippets do carry comments
    env_file = tmp_path / ".env"
    env_file.write_text(lines.replace("<key>", "k3y").replace("<openssl rand -hex 16>", "abc123")
                        .replace("<the secret>", "amisecret").replace("<Click2Call API token from Voicenter's "
                                                                      "back office>", "vc-code"), encoding="utf-8")
    loaded = s.load(env_file=env_file)
    assert loaded.crm_auth_header.get_secret_value() == "Authorization: Bearer k3y"
    assert loaded.crm_phone_format == "national" and loaded.crm_deadline_ms == 1500
    assert loaded.host == "0.0.0.0" and loaded.voicenter_secret.get_secret_value() == "abc123"
    assert loaded.ami_leg_a_extension == "PJSIP/{extension}" and loaded.ami_context == "from-internal"
    assert loaded.ami_secret.get_secret_value() == "amisecret"


@pytest.mark.parametrize("overrides, message", [
    ({"port": "eighty"}, "CALLPOP_PORT"),
    ({"provider": "skype"}, "CALLPOP_PROVIDER.*one of sim, webhook"),
    ({"crm_deadline_ms": -5}, "CALLPOP_CRM_DEADLINE_MS.*greater than or equal to 50"),
    ({"crm_url": "javascript:alert(1)"}, "CALLPOP_CRM_URL.*not an absolute http"),
    ({"crm_auth_header": "X-Key: a\r\nX-Evil: b"}, "CALLPOP_CRM_AUTH_HEADER.*one line"),
    ({"crm_deadline_ms": 5000, "crm_late_timeout_ms": 2000}, "LATE_TIMEOUT_MS.*DEADLINE_MS"),
    ({"host": "0.0.0.0 # all interfaces"}, "CALLPOP_HOST"),
    ({"ws_heartbeat_s": 40}, "CALLPOP_WS_HEARTBEAT_S"),
])
def test_bad_values_are_refused_with_the_setting_named(overrides, message):
    with pytest.raises(s.SettingsError, match=message):
        s.load(env_file=None, **overrides)


def test_a_refused_secret_is_never_echoed():
    with pytest.raises(s.SettingsError) as refused:
        s.load(env_file=None, crm_auth_header="X-Key: hunter2\nX-Evil: b")
    assert "hunter2" not in str(refused.value)


def test_a_negative_deadline_stops_serve_at_once_with_a_clear_message(tmp_path):
    (tmp_path / ".env").write_text("CALLPOP_CRM_DEADLINE_MS=-1500   # oops\n")
    done = subprocess.run([sys.executable, "-m", "pipelines", "serve"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "CALLPOP_CRM_DEADLINE_MS='-1500'" in done.stderr and "Traceback" not in done.stderr


def test_an_unknown_name_in_env_is_pointed_out(tmp_path, caplog):
    (tmp_path / ".env").write_text("CALLPOP_CRM_ULR=https://crm.example.com/x\n")
    with caplog.at_level("WARNING"):
        s.load(env_file=tmp_path / ".env")
    assert "CALLPOP_CRM_ULR" in caplog.text and "CALLPOP_CRM_URL" in caplog.text


def test_secrets_are_redacted_everywhere_they_could_show():
    loaded = s.load(env_file=None, ingest_token="t0p-s3cret", crm_auth_header="X-Key: k3y")
    shown = str(loaded.redacted()) + repr(loaded) + str(loaded)
    assert "t0p-s3cret" not in shown and "k3y" not in shown and "(set)" in shown


def test_the_settings_command_prints_values_with_secrets_masked(tmp_path):
    (tmp_path / ".env").write_text("CALLPOP_INGEST_TOKEN=t0p-s3cret\nCALLPOP_PORT=9001\n")
    done = subprocess.run([sys.executable, "-m", "pipelines", "settings"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert re.search(r"CALLPOP_PORT\s+9001", done.stdout) and re.search(r"CALLPOP_INGEST_TOKEN\s+\(set\)", done.stdout)
    assert "t0p-s3cret" not in done.stdout + done.stderr

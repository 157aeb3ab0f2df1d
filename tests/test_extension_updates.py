"""The packed extension served for Chrome's force-install policy (pipelines/extension_updates.py):
updates.xml and callpop-<version>.crx from CALLPOP_EXTENSION_DIR, to anyone, nothing else."""

from __future__ import annotations

from tests.support.hub import TOKENS, api


def test_not_configured_is_a_json_404(hub):
    r = api(hub, "GET", "/extension/updates.xml")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert "CALLPOP_EXTENSION_DIR" in r.json()["message"]


def test_the_manifest_and_the_package_are_served_without_a_token_and_nothing_else(start_hub, tmp_path):
    folder = tmp_path / "extension"
    folder.mkdir()
    (folder / "updates.xml").write_text("<gupdate/>")
    (folder / "callpop-1.2.3.crx").write_bytes(b"Cr24\x03\x00\x00\x00signed")
    for other in ("callpop-1.2.3.zip", "key.pem", "notes.txt"):
        (folder / other).write_text("not for Chrome")
    (tmp_path / "secret.crx").write_text("outside the folder")
    hub = start_hub(extension_dir=str(folder))

    xml = api(hub, "GET", "/extension/updates.xml")
    assert xml.status_code == 200 and xml.text == "<gupdate/>"
    assert xml.headers["content-type"].startswith("application/xml") and xml.headers["cache-control"] == "no-cache"
    crx = api(hub, "GET", "/extension/callpop-1.2.3.crx", TOKENS["noa"])  # a token changes nothing
    assert crx.status_code == 200 and crx.content == b"Cr24\x03\x00\x00\x00signed"
    assert crx.headers["content-type"] == "application/x-chrome-extension"
    for name in ("callpop-1.2.3.zip", "key.pem", "notes.txt", "callpop-9.9.crx", "..%2Fsecret.crx", "%2e%2e"):
        r = api(hub, "GET", f"/extension/{name}")
        assert r.status_code == 404 and r.json()["error"] in ("not_found", "http_404"), (name, r.text)
    assert api(hub, "POST", "/extension/updates.xml").status_code == 405

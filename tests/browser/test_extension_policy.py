"""The packed extension with the hub address set by the admin's policy, in Debian's chromium: the
zip `make extension-package` builds, unpacked with its key (so it has the id the CRX and updates.xml
have), and a policy file in chromium's managed policy folder for that id (``3rdparty.extensions``,
shaped by extension/managed_schema.json). The options page shows the address locked; the worker
connects to it whatever the agent saved."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support import ROOT, unavailable, wait_until
from tests.support import browser as chromium
from tests.support.hub import TOKENS

pytestmark = pytest.mark.browser
POLICIES = Path("/etc/chromium/policies/managed")  # where Debian's chromium reads mandatory policies


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """The package built with a key made for this test: (unpacked folder, the id it reported)."""
    if reason := chromium.missing():
        unavailable(reason)
    tmp = tmp_path_factory.mktemp("packed")
    key = tmp / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    built = subprocess.run(["node", str(ROOT / "extension" / "tools" / "package.js"), "--key", str(key),
                            "--hub-url", "https://callpop.example.com", "--out", str(tmp / "out")],
                           check=True, capture_output=True, text=True).stdout
    extension_id = re.search(r"id ([a-p]{32})", built).group(1)
    version = json.loads((ROOT / "extension" / "manifest.json").read_text())["version"]
    unpacked = tmp / "unpacked"
    with zipfile.ZipFile(tmp / "out" / f"callpop-{version}.zip") as z:
        z.extractall(unpacked)
    # Chrome gives an unpacked extension the id of the manifest's key: the admin's public key.
    public = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                            capture_output=True).stdout
    manifest = json.loads((unpacked / "manifest.json").read_text())
    (unpacked / "manifest.json").write_text(json.dumps({**manifest, "key": base64.b64encode(public).decode()}))
    return unpacked, extension_id


@pytest.fixture(scope="module")
def policy(packed, module_hubs):
    """A policy file that sets (and by default locks) the hub address for this extension id only;
    removed afterwards. Other chromium instances are untouched: no other extension has this id."""
    _, extension_id = packed
    hub = module_hubs()
    path = POLICIES / f"callpop-test-{extension_id}.json"
    created = not POLICIES.is_dir()
    try:
        POLICIES.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"3rdparty": {"extensions": {extension_id: {"hubUrl": hub.url}}}}))
    except PermissionError:
        unavailable(f"cannot write {path}: chromium's policy folder needs root")
    yield hub
    path.unlink(missing_ok=True)
    if created:
        POLICIES.rmdir()


@pytest.fixture(scope="module")
def managed_browser(packed, policy, playwright, tmp_path_factory):
    unpacked, _ = packed
    ctx = chromium.launch(playwright.chromium, tmp_path_factory.mktemp("profile"), unpacked)
    yield chromium.ExtensionBrowser(ctx)
    ctx.close()


def test_the_packed_extension_has_the_id_the_package_reported(managed_browser, packed):
    assert managed_browser.extension_id == packed[1]


def test_the_policy_sets_the_hub_address_and_the_options_page_shows_it_locked(managed_browser, policy):
    hub = policy
    assert wait_until(lambda: managed_browser.evaluate("chrome.storage.managed.get(null)"), 20,
                      what="the policy in managed storage") == {"hubUrl": hub.url}
    # What the agent saved says otherwise: the policy's address wins.
    managed_browser.configure(hubUrl="http://127.0.0.1:1", token=TOKENS["noa"])
    managed_browser.wait_connected(hub)
    assert managed_browser.evaluate("self.callpop.settings()")["hubUrl"] == hub.url

    page = managed_browser.ctx.new_page()
    try:
        page.goto(f"chrome-extension://{managed_browser.extension_id}/options/options.html")
        page.locator("#hubUrl-managed").wait_for(state="visible")
        assert page.input_value("#hubUrl") == hub.url
        assert page.eval_on_selector("#hubUrl", "el => el.readOnly") is True
        assert "administrator" in page.inner_text("#hubUrl-managed")
        page.fill("#token", TOKENS["noa"])
        page.click("#save")
        page.locator("#saved", has_text="Saved.").wait_for()
        assert managed_browser.stored()["sync"]["hubUrl"] == hub.url
    finally:
        page.close()

"""Logging in to AMI without the secret on the wire, and AMI over TLS: the real hub against the
test AMI server (MD5 challenge, plaintext only when Challenge is refused, TLS with a private CA)."""

import logging
import shutil
import ssl
import subprocess
import threading

import pytest

from tests.providers.amiserver import AmiServer


def until(predicate, timeout=5.0):
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        threading.Event().wait(0.02)
    raise AssertionError("condition not met in time")


def start_asterisk(start_hub, ami, **overrides):
    return start_hub(provider="asterisk", ami_port=ami.port, ami_reconnect_max_s=0.3, **overrides)


def state(hub):
    return hub.hub.provider.status()


def logins(ami):
    return [a for a in ami.actions if a.get("Action").lower() == "login"]


def test_md5_challenge_login_keeps_the_secret_off_the_wire(start_hub):
    with AmiServer(secret="s3cret-on-the-pbx") as ami:
        hub = start_asterisk(start_hub, ami, ami_secret="s3cret-on-the-pbx")
        ami.wait_logins(1)
        until(lambda: state(hub)["state"] == "connected")
        assert ami.login_auth == ["md5"] and "MD5 login" in state(hub)["detail"]
        assert [a.get("Action") for a in ami.actions][:2] == ["Challenge", "Login"]
        assert not any("s3cret-on-the-pbx" in a.text() for a in ami.actions)


def test_a_wrong_secret_gives_a_wrong_key_and_the_provider_stays_down(start_hub):
    with AmiServer(secret="s3cret-on-the-pbx") as ami:
        hub = start_asterisk(start_hub, ami, ami_secret="not-the-secret")
        until(lambda: state(hub)["state"] == "down")
        assert "login refused" in state(hub)["detail"] and ami.logins == 0
        assert logins(ami)[0].get("AuthType") == "MD5" and "Secret" not in logins(ami)[0]


def test_plaintext_only_when_challenge_is_refused_and_said_once(start_hub, caplog):
    with AmiServer(challenge=False) as ami, caplog.at_level(logging.WARNING, logger="callpop.ami"):
        hub = start_asterisk(start_hub, ami, ami_secret="s3cret")
        ami.wait_logins(1)
        ami.drop()
        ami.wait_logins(2)
        until(lambda: state(hub)["state"] == "connected")
        assert ami.login_auth == ["plain", "plain"] and "plaintext login" in state(hub)["detail"]
    warned = [r for r in caplog.records if "refused the MD5 challenge" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING and "s3cret" not in warned[0].getMessage()


def test_a_pbx_that_took_md5_and_then_refuses_it_never_gets_the_secret_in_plain_text(start_hub):
    # A refused challenge from a server that answered it before is what a man in the middle would send.
    with AmiServer() as ami:
        hub = start_asterisk(start_hub, ami, ami_secret="s3cret")
        ami.wait_logins(1)
        ami.challenge = False
        ami.drop()
        until(lambda: state(hub)["state"] == "down" and "MD5" in state(hub)["detail"])
        assert "not sent in plain text" in state(hub)["detail"]
        assert all("Secret" not in a for a in logins(ami)) and ami.logins == 1


# --- TLS
def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def server_cert(d, ca: str, name: str, san: str) -> ssl.SSLContext:
    """A server certificate for ``san`` signed by the CA ``ca`` (files ca.pem/ca.key in d)."""
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                                   "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(d / f"{name}.pem", d / f"{name}.key")
    return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA and servers' TLS contexts: 'pbx' (127.0.0.1, by that CA), 'elsewhere' (another
    name, by that CA) and 'rogue' (127.0.0.1, by a CA nobody trusts). Returns (contexts, CA PEM)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test server's certificates")
    d = tmp_path_factory.mktemp("ami-tls")
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days",
                "2", "-subj", f"/CN=callpop test {ca}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                cwd=d)
    contexts = {"pbx": server_cert(d, "ca", "pbx", "IP:127.0.0.1,DNS:localhost"),
                "elsewhere": server_cert(d, "ca", "elsewhere", "DNS:pbx.example.com"),
                "rogue": server_cert(d, "rogue-ca", "rogue", "IP:127.0.0.1")}
    return contexts, d / "ca.pem"


def test_ami_over_tls_with_a_private_ca(start_hub, pki):
    contexts, ca = pki
    with AmiServer(tls=contexts["pbx"]) as ami:
        hub = start_asterisk(start_hub, ami, ami_secret="s3cret", ami_tls=True, ca_bundle=str(ca))
        ami.wait_logins(1)
        until(lambda: state(hub)["state"] == "connected")
        assert "TLS, MD5 login" in state(hub)["detail"] and ami.login_auth == ["md5"]


@pytest.mark.parametrize("server, ca_bundle, why", [
    ("pbx", False, "unable to get local issuer certificate"),      # the system does not know our CA
    ("rogue", True, "unable to get local issuer certificate"),     # signed by another CA
    ("elsewhere", True, "mismatch"),                               # our CA, but not for 127.0.0.1
])
def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(start_hub, pki, server, ca_bundle, why):
    contexts, ca = pki
    with AmiServer(tls=contexts[server]) as ami:
        extra = {"ca_bundle": str(ca)} if ca_bundle else {}
        hub = start_asterisk(start_hub, ami, ami_secret="s3cret", ami_tls=True, **extra)
        until(lambda: state(hub)["state"] == "down")
        detail = state(hub)["detail"]
        assert "certificate is not trusted" in detail and why in detail and "CALLPOP_CA_BUNDLE" in detail
        assert ami.actions == [] and ami.logins == 0


def test_tls_to_a_plain_ami_port_says_which_port_to_use(start_hub):
    with AmiServer() as ami:
        hub = start_asterisk(start_hub, ami, ami_secret="s3cret", ami_tls=True, ami_timeout_s=1)
        until(lambda: state(hub)["state"] == "down")
        assert "TLS handshake failed" in state(hub)["detail"] and "5039" in state(hub)["detail"]

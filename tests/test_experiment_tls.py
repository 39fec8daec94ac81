"""`ferjax experiment serve --certfile --keyfile` serves HTTPS, with a self-signed certificate made here.

Over TLS the participant cookie is Secure (and HttpOnly, SameSite=Lax), the admin view answers, plain
HTTP to the port gets nothing, and Chromium runs the study link in a secure context. A certificate that
does not load is a one-line error before anything is served.
"""

import datetime as dt
import ipaddress
import json
import ssl
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from test_experiment_browser import (
    _browser_installed,  # noqa: F401
    wait,
)
from test_experiment_online import chromium

from ferjax.cli.experiment import experiment
from ferjax.people.experiment.demo import make_stimuli
from ferjax.people.experiment.loadcheck import ADMIN, free_port, start_server, stop


def self_signed(folder):
    """An EC P-256 certificate for 127.0.0.1 and localhost, valid for a day -> (certfile, keyfile)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


@pytest.fixture
def tls_server(tmp_path):
    stim = tmp_path / "stim"
    tpath = make_stimuli(stim)
    certfile, keyfile = self_signed(tmp_path)
    (tmp_path / "consent.md").write_text("Consent over HTTPS.\n")
    port = free_port()
    proc = start_server(stim, tpath, tmp_path / "exp.sqlite", port, "--certfile", certfile, "--keyfile", keyfile,
                        "--study", "tls", "--consent", tmp_path / "consent.md", "--practice", 0, cafile=certfile)
    yield f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=str(certfile))
    stop(proc)


def test_https_with_a_self_signed_certificate(tls_server):
    base, trust = tls_server
    req = urllib.request.Request(f"{base}/api/s/tls/consent", data=json.dumps({"decision": "agree", "pid": "p1"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=trust) as r:
        cookie = r.headers["Set-Cookie"].lower()
        token = json.loads(r.read())["token"]
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    req = urllib.request.Request(f"{base}/api/admin/participants", headers={"Authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(req, context=trust) as r:
        assert json.loads(r.read())["counts"]["started"] == 1
    with urllib.request.urlopen(f"{base}/api/p/{token}/state", context=trust) as r:
        assert json.loads(r.read())["phase"] == "instructions"
    with pytest.raises(urllib.error.URLError):  # the certificate is checked: without trusting it, refused
        urllib.request.urlopen(f"{base}/admin", context=ssl.create_default_context())
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP to the TLS port: nothing
        urllib.request.urlopen(base.replace("https", "http") + "/admin", timeout=5)


def test_chromium_runs_the_study_link_over_https(tls_server, tmp_path):
    base, _ = tls_server
    d = chromium(tmp_path, accept_insecure=True)
    try:
        d.get(f"{base}/s/tls?pid=browser1")
        wait(d, "return document.getElementById('agree') !== null")
        d.find_element("id", "agree").click()
        wait(d, "return document.body.dataset.screen === 'message'", 60)
        assert d.execute_script("return [location.protocol, window.isSecureContext]") == ["https:", True]
        cookies = d.execute_cdp_cmd("Network.getCookies", {"urls": [base]})["cookies"]
        (c,) = [c for c in cookies if c["name"] == "ferjax_participant"]
        assert c["secure"] and c["httpOnly"] and c["sameSite"] == "Lax"
        assert d.execute_script("return document.cookie") == ""  # out of scripts' reach
    finally:
        d.quit()


def test_a_bad_certificate_is_a_one_line_error(tmp_path):
    tpath = make_stimuli(tmp_path / "stim")
    certfile, keyfile = self_signed(tmp_path)
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    args = ["serve", "--stimuli", str(tmp_path / "stim"), "--trials", str(tpath), "--db", str(tmp_path / "e.sqlite"),
            "--admin-token", ADMIN]
    for extra, fragment in [(["--certfile", str(tmp_path / "bad.pem"), "--keyfile", str(keyfile)], "bad.pem"),
                            (["--certfile", str(certfile)], "--keyfile"),
                            (["--study", "x"], "--consent FILE")]:
        r = CliRunner().invoke(experiment, args + extra)
        errors = [line for line in r.output.splitlines() if line.startswith("error:")]
        assert r.exit_code == 2 and len(errors) == 1 and fragment in errors[0], r.output
    assert not (tmp_path / "e.sqlite").exists()

"""`serve --tls-cert --tls-key`: HTTPS with rustls, checked by Python's own TLS stack
against a certificate made by the openssl tool, with HSTS on every response."""
import os
import subprocess

import requests

from conftest import Server


def test_https_with_hsts(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    s = Server().start("--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert s.base.startswith("https://")
        r = requests.get(s.base + "/healthz", verify=str(cert), timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert r.headers["strict-transport-security"].startswith("max-age=")
        assert r.headers["x-frame-options"] == "DENY"
        r = requests.get(s.base + "/login", verify=str(cert), timeout=10)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        # Plain HTTP on the TLS port gets no page.
        plain = s.base.replace("https://", "http://")
        try:
            r = requests.get(plain + "/healthz", timeout=5)
            assert r.status_code != 200
        except requests.exceptions.RequestException:
            pass
    finally:
        s.stop()

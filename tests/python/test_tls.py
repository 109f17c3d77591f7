"""`serve --tls-cert --tls-key`: HTTPS with rustls, checked by Python's own TLS stack
against a certificate made by the openssl tool, with HSTS on every response; and
`--mllp-tls`: HL7 v2 over MLLP inside TLS with the same certificate."""
import os
import socket
import ssl
import subprocess

import requests

from conftest import Server


def make_cert(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def test_https_with_hsts(tmp_path):
    cert, key = make_cert(tmp_path)
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


def read_frame(sock):
    got = b""
    while not got.endswith(b"\x1c\x0d"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def test_mllp_over_tls(tmp_path):
    cert, key = make_cert(tmp_path)
    s = Server().start("--tls-cert", str(cert), "--tls-key", str(key),
                       "--mllp-listen", "127.0.0.1:0", "--mllp-tls", "--mllp-campus", "campus-east")
    try:
        line = s.proc.stdout.readline()
        assert line.startswith("HL7 v2 (MLLP+TLS) is listening on"), line
        host, port = line.split()[6].rsplit(":", 1)
        message = ("MSH|^~\\&|HIS|EAST|LIANYI|GROUP|20261122080000||ADT^A04|TLS0001|P|2.5.1||||||UNICODE UTF-8\r"
                   "PID|1||T100001^^^EAST^MR||王^五||19800101|F\r").encode("utf-8")
        ctx = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                tls.sendall(b"\x0b" + message + b"\x1c\x0d")
                ack = read_frame(tls).decode("utf-8")
        assert "MSA|AA|TLS0001" in ack, ack
        # Plain MLLP on the TLS port is not answered.
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(b"\x0b" + message.replace(b"TLS0001", b"TLS0002") + b"\x1c\x0d")
            try:
                assert b"MSA|" not in read_frame(raw)
            except (ConnectionResetError, socket.timeout):
                pass
    finally:
        s.stop()

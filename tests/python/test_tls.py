"""`serve --tls-cert --tls-key`: HTTPS with rustls, checked by Python's own TLS stack
against a certificate made by the openssl tool, with HSTS on every response; and
`--mllp-tls`: HL7 v2 over MLLP inside TLS with the same certificate; and a webhook
channel delivering to an HTTPS receiver whose certificate the server verifies."""
import hashlib
import hmac
import http.server
import json
import os
import pathlib
import socket
import ssl
import subprocess
import threading
import time

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


def test_dicom_over_tls(tmp_path):
    """`--dicom-tls`: DCMTK's echoscu and storescu over TLS (anonymous client, the
    server's certificate checked against the file), and a plain association refused."""
    import pydicom
    from pydicom.data import get_testdata_file

    cert, key = make_cert(tmp_path)
    s = Server()
    creds = json.loads(s.cli("client", "add", "tls-dicom", "--scope", "system/*.cruds", "--campus", "campus-east"))
    s.start("--tls-cert", str(cert), "--tls-key", str(key), "--dicom-listen", "127.0.0.1:0", "--dicom-tls")
    try:
        line = s.proc.stdout.readline()
        assert line.startswith("DICOM over TLS is listening on"), line
        host, port = line.split()[6].rsplit(":", 1)
        token = requests.post(s.base + "/oauth/token", verify=str(cert), data={
            "grant_type": "client_credentials", "client_id": creds["client_id"],
            "client_secret": creds["client_secret"]}).json()["access_token"]
        org = {"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]}
        r = requests.put(s.base + "/fhir/Organization/campus-east", json=org, verify=str(cert),
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
        assert r.ok, r.text
        s.cli("ae", "put", "TLS-CT", "--campus", "campus-east", "--host", "127.0.0.1")
        tls = ["+tla", "+cf", str(cert)]
        deadline = time.time() + 30
        while True:  # the running node reads the AE table every few seconds
            echo = subprocess.run(["echoscu", *tls, "-aet", "TLS-CT", "-aec", "LIANYI", host, port],
                                  capture_output=True, text=True, timeout=30)
            if echo.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert echo.returncode == 0, echo.stderr
        ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        path = tmp_path / "ct.dcm"
        ct.save_as(path)
        store = subprocess.run(["storescu", *tls, "-aet", "TLS-CT", "-aec", "LIANYI", host, port, str(path)],
                               capture_output=True, text=True, timeout=30)
        assert store.returncode == 0 and "Store Failed" not in store.stderr, store.stderr
        kept = list(pathlib.Path(s.data_dir, "imaging").rglob("*.dcm"))
        assert [p.name for p in kept] == [f"{ct.SOPInstanceUID}.dcm"], kept
        # A plain association on the TLS port is not accepted.
        plain = subprocess.run(["echoscu", "-to", "5", "-aet", "TLS-CT", "-aec", "LIANYI", host, port],
                               capture_output=True, text=True, timeout=30)
        assert plain.returncode != 0
    finally:
        s.stop()


def make_ca_and_leaf(tmp_path):
    """A CA and a server certificate it signs (webpki, unlike Python's ssl, refuses a
    self-signed CA certificate as a server's)."""
    ca_key, ca_cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    key, csr, cert, ext = tmp_path / "leaf.key", tmp_path / "leaf.csr", tmp_path / "leaf.pem", tmp_path / "leaf.ext"
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert),
        "-days", "2", "-subj", "/CN=Lianyi test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext.write_text("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca_cert, cert, key


def test_webhook_over_https_verifies_the_receiver(tmp_path):
    ca, cert, key = make_ca_and_leaf(tmp_path)
    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers.get("Idempotency-Key"), self.headers.get("X-Lianyi-Signature"), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    def https_receiver(cert, key):
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd

    httpd = https_receiver(cert, key)
    port = httpd.server_address[1]
    # A receiver whose certificate nobody vouches for.
    untrusted_dir = tmp_path / "untrusted"
    untrusted_dir.mkdir()
    impostor = https_receiver(*make_cert(untrusted_dir))

    s = Server()
    creds = json.loads(s.cli("client", "add", "hook-check", "--scope", "system/*.cruds"))
    out = s.cli("channel", "add", "secure-feed", "--kind", "webhook",
                "--endpoint", f"https://localhost:{port}/events", "--criteria", "Patient")
    secret = out.strip().splitlines()[-1]
    s.cli("channel", "add", "impostor-feed", "--kind", "webhook", "--max-attempts", "2", "--backoff-ms", "50",
          "--endpoint", f"https://localhost:{impostor.server_address[1]}/events", "--criteria", "Patient")
    # The receiver's CA is trusted through the standard variable.
    s.env["SSL_CERT_FILE"] = str(ca)
    s.start()
    try:
        token = requests.post(s.base + "/oauth/token", data={"grant_type": "client_credentials",
                              "client_id": creds["client_id"], "client_secret": creds["client_secret"]},
                              timeout=10).json()["access_token"]
        r = requests.post(s.base + "/fhir/Patient", timeout=10,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
                          data=json.dumps({"resourceType": "Patient", "name": [{"family": "Secure"}]}))
        assert r.status_code == 201
        for _ in range(150):
            if received:
                break
            time.sleep(0.1)
        assert len(received) == 1, received
        key_header, signature, body = received[0]
        assert key_header.startswith("secure-feed-")
        assert signature == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        event = json.loads(body)
        assert event["type"] == "create" and event["resource"]["name"][0]["family"] == "Secure"
        # Nothing goes to the impostor: its delivery is a dead letter naming the certificate.
        for _ in range(100):
            listed = s.cli("messages", "list", "--channel", "impostor-feed", "--status", "dead")
            if "impostor-feed-" in listed:
                break
            time.sleep(0.1)
        assert "invalid peer certificate" in listed, listed
        assert len(received) == 1
    finally:
        s.stop()
        httpd.shutdown()
        impostor.shutdown()

"""`lianyi demo` as a newcomer runs it: it prints the MLLP address and a ready
`mllp_send` line; sending that lab result with python-hl7's `mllp_send` gets AA, and
the result reads back through the FHIR API with the printed demo client."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
import requests

from conftest import ROOT


@pytest.mark.skipif(
    bool(os.environ.get("LIANYI_PYTEST_DATABASE")), reason="the demo runs on its own SQLite database; once is enough"
)
def test_demo_prints_a_working_mllp_send_line():
    binary = os.environ.get("LIANYI_BIN", os.path.join(ROOT, "target", "debug", "lianyi"))
    data_dir = tempfile.mkdtemp(prefix="lianyi-demo-test-")
    proc = subprocess.Popen(
        [binary, "demo", "--listen", "127.0.0.1:0", "--mllp-listen", "127.0.0.1:0", "--dicom-listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, LIANYI_LOG="warn"),
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "privacy.officer" in line:  # the last line the demo prints
                break
        text = "\n".join(lines)
        base = re.search(r"FHIR R4 API\s+(http://\S+)/fhir", text).group(1)
        assert re.search(r"HL7 v2 \(MLLP\) 127\.0\.0\.1:\d+", text), text
        send = next(l.strip() for l in lines if l.strip().startswith("mllp_send "))
        admin = text.split("demo-admin", 1)[1]
        client_id = re.search(r"client_id\s+(\S+)", admin).group(1)
        client_secret = re.search(r"client_secret\s+(\S+)", admin).group(1)
        query = re.search(r"'http://[^/]+/fhir/(Observation\?[^']+)'", text).group(1)

        mllp_send = os.path.join(os.path.dirname(sys.executable), "mllp_send")
        out = subprocess.run([mllp_send, *send.split()[1:]], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr.decode()
        assert b"MSA|AA|" in out.stdout, out.stdout

        token = requests.post(
            base + "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
            timeout=10,
        ).json()["access_token"]
        found = requests.get(f"{base}/fhir/{query}", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        values = [e["resource"]["valueQuantity"]["value"] for e in found.get("entry", [])]
        assert 4.1 in values, found
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)

"""HL7 v2 over MLLP with a real third-party sender: python-hl7's `mllp_send`.

A file of ADT and ORU messages (LF-separated, as such files usually are, hence
`--loose`) goes to the listener; every message must be answered AA, and the
Patient, Encounter, Observation and DiagnosticReport must read back through FHIR
with the right values and units.
"""
import json
import os
import subprocess
import sys

import requests

from conftest import ROOT, Server

HL7_DIR = os.path.join(ROOT, "tests", "hl7")


def oru(n, potassium):
    return (
        f"MSH|^~\\&|LIS|EAST|LIANYI|GROUP|20261122100{n}00||ORU^R01^ORU_R01|PY-ORU-{n}|P|2.5.1\n"
        f"PID|1||PY{n:05d}^^^EAST^MR||王^{n}号||19800101|F\n"
        f"OBR|1|PLC{n}|FIL{n}|24320-4^Basic metabolic panel^LN|||202611221000\n"
        f"OBX|1|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||{potassium}|mmol/L^mmol/L^UCUM|3.5-5.3|"
        f"{'HH' if potassium > 6 else 'N'}|||F\n"
    )


def test_mllp_send_file_is_acknowledged_and_readable(tmp_path):
    s = Server()
    creds = json.loads(s.cli("client", "add", "mllp-check", "--scope", "system/*.rs"))
    s.start("--mllp-listen", "127.0.0.1:0", "--mllp-campus", "campus-east")
    try:
        line = s.proc.stdout.readline()
        assert line.startswith("HL7 v2 (MLLP) is listening on"), line
        host, port = line.split()[6].rsplit(":", 1)

        messages = []
        for name in ("adt_a01.hl7", "oru_r01.hl7"):
            with open(os.path.join(HL7_DIR, name), encoding="utf-8") as f:
                messages.append(f.read().replace("\r", "\n"))
        messages += [oru(i, k) for i, k in [(1, 4.2), (2, 6.9), (3, 3.9)]]
        path = tmp_path / "messages.hl7"
        path.write_text("\n".join(messages), encoding="utf-8")

        mllp_send = os.path.join(os.path.dirname(sys.executable), "mllp_send")
        out = subprocess.run(
            [mllp_send, "--loose", "--port", port, "--file", str(path), host],
            capture_output=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr.decode()
        acks = [a.strip(b"\x0b\r\n") for a in out.stdout.split(b"\x1c\r") if a.strip()]
        assert len(acks) == 5, out.stdout
        for ack in acks:
            segments = ack.decode("utf-8").split("\r")
            msa = next(seg for seg in segments if seg.startswith("MSA|"))
            assert msa.split("|")[1] == "AA", ack

        token = requests.post(
            s.base + "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": creds["client_id"], "client_secret": creds["client_secret"]},
        ).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}

        def get(q):
            r = requests.get(f"{s.base}/fhir/{q}", headers=h)
            r.raise_for_status()
            return r.json()

        patients = get("Patient?identifier=urn:lianyi:sid:mrn:campus-east|E100234")
        assert patients["total"] == 1
        patient = patients["entry"][0]["resource"]
        assert patient["name"][0]["text"] == "张三" and patient["gender"] == "male"
        pid = patient["id"]
        enc = get(f"Encounter?subject=Patient/{pid}")["entry"][0]["resource"]
        assert enc["class"]["code"] == "IMP" and enc["identifier"][0]["value"] == "V0001"
        obs = get(f"Observation?subject=Patient/{pid}&code=http://loinc.org|2823-3")["entry"][0]["resource"]
        assert obs["valueQuantity"] == {"value": 6.8, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}
        assert obs["referenceRange"][0]["low"]["value"] == 3.5 and obs["referenceRange"][0]["high"]["value"] == 5.3
        assert obs["interpretation"][0]["coding"][0]["code"] == "HH"
        report = get(f"DiagnosticReport?subject=Patient/{pid}")["entry"][0]["resource"]
        assert report["code"]["coding"][0]["code"] == "24320-4" and len(report["result"]) == 2
        critical = get("Observation?code-value-quantity=http://loinc.org|2823-3$gt6")
        assert critical["total"] == 2  # 6.8 and 6.9
        assert get("Patient?identifier=urn:lianyi:sid:mrn:campus-east|PY00002")["entry"][0]["resource"]["name"][0]["text"] == "王2号"
    finally:
        s.stop()

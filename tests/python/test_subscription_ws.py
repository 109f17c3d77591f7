"""FHIR R4 websocket Subscriptions with a third-party websocket client
(`websocket-client`): the server activates the Subscription, the client binds with
`bind <id>` and gets `ping <id>` for a matching change and nothing for others."""
import json
import time

import requests
import websocket

from conftest import Server


def test_websocket_subscription_pings_on_matching_changes():
    s = Server()
    creds = json.loads(s.cli("client", "add", "ws-check", "--scope", "system/*.cruds lianyi:integration"))
    s.start()
    try:
        r = requests.post(s.base + "/oauth/token", data={"grant_type": "client_credentials",
                          "client_id": creds["client_id"], "client_secret": creds["client_secret"]}, timeout=10)
        token = r.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        meta = requests.get(s.base + "/fhir/metadata", headers=auth, timeout=10).json()
        ws_url = next(e["valueUri"] for e in meta["rest"][0]["extension"]
                      if e["url"].endswith("capabilitystatement-websocket"))
        assert ws_url.startswith("ws://") and ws_url.endswith("/websocket")

        sub = {"resourceType": "Subscription", "status": "requested", "reason": "ward board",
               "criteria": "Observation?code=http://loinc.org|2823-3", "channel": {"type": "websocket"}}
        r = requests.post(s.base + "/fhir/Subscription", headers=auth, data=json.dumps(sub), timeout=10)
        assert r.status_code == 201, r.text
        sub_id = r.json()["id"]
        for _ in range(100):
            if requests.get(f"{s.base}/fhir/Subscription/{sub_id}", headers=auth, timeout=10).json()["status"] == "active":
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the subscription was not activated")

        # Without a token the upgrade is refused.
        try:
            websocket.create_connection(ws_url, timeout=5)
            raise AssertionError("connected without a token")
        except websocket.WebSocketBadStatusException as e:
            assert e.status_code == 401

        ws = websocket.create_connection(ws_url, header=[f"Authorization: Bearer {token}"], timeout=10)
        ws.send("bind nonexistent")
        assert ws.recv().startswith("error nonexistent")
        ws.send(f"bind {sub_id}")
        assert ws.recv() == f"bound {sub_id}"

        patient = requests.post(s.base + "/fhir/Patient", headers=auth,
                                data=json.dumps({"resourceType": "Patient", "name": [{"family": "WS"}]}), timeout=10).json()

        def observation(code, value):
            return json.dumps({"resourceType": "Observation", "status": "final",
                               "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                               "subject": {"reference": f"Patient/{patient['id']}"},
                               "valueQuantity": {"value": value, "unit": "mmol/L"}})

        requests.post(s.base + "/fhir/Observation", headers=auth, data=observation("2951-2", 140), timeout=10)
        requests.post(s.base + "/fhir/Observation", headers=auth, data=observation("2823-3", 6.5), timeout=10)
        assert ws.recv() == f"ping {sub_id}"
        # Only the potassium matched: no second ping.
        ws.settimeout(1.5)
        try:
            extra = ws.recv()
            raise AssertionError(f"unexpected message {extra!r}")
        except websocket.WebSocketTimeoutException:
            pass
        ws.close()
    finally:
        s.stop()

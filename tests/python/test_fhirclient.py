"""The server driven by PyPI `fhirclient` (SMART on FHIR), whose R4 4.0.1 models are
strict: every resource and Bundle the server returns is parsed with strict=True, so
any element the R4 schema does not allow fails the test."""
import json

import requests
from fhirclient import client
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.observation import Observation
from fhirclient.models.operationoutcome import OperationOutcome
from fhirclient.models.patient import Patient
import pytest


@pytest.fixture(scope="module")
def smart(base_url, token):
    c = client.FHIRClient(settings={"app_id": "lianyi-tests", "api_base": base_url + "/fhir/"})
    c.server.session.headers["Authorization"] = f"Bearer {token}"
    return c


def test_capability_statement_is_strict_r4(smart):
    cs = CapabilityStatement(smart.server.request_json("metadata"), strict=True)
    assert cs.fhirVersion == "4.0.1"
    types = {r.type for r in cs.rest[0].resource}
    assert {"Patient", "Observation", "Encounter"} <= types


def new_patient(family, given, birth):
    return Patient(
        {
            "resourceType": "Patient",
            "name": [{"family": family, "given": [given], "text": family + given}],
            "gender": "female",
            "birthDate": birth,
            "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": f"PY-{family}-{given}"}],
            "telecom": [{"system": "phone", "value": "13900000000", "use": "mobile"}],
        },
        strict=True,
    )


def test_create_read_and_search_patients(smart):
    created = []
    for given, birth in [("晓", "1980-01-02"), ("雪", "1991-06-07"), ("雨", "2001-11-12")]:
        ret = new_patient("司马", given, birth).create(smart.server)
        p = Patient(ret, strict=True)
        assert p.id and p.meta.versionId == "1"
        created.append(p.id)

    back = Patient.read(created[1], smart.server)
    assert back.name[0].given == ["雪"]
    assert back.birthDate.isostring == "1991-06-07"

    found = list(Patient.where({"family": "司马"}).perform_resources_iter(smart.server))
    assert sorted(p.id for p in found) == sorted(created)

    born_90s = list(Patient.where({"family": "司马", "birthdate": "ge1990"}).perform_resources_iter(smart.server))
    assert sorted(p.id for p in born_90s) == sorted(created[1:])

    by_id = list(
        Patient.where({"identifier": "urn:lianyi:sid:mrn:campus-east|PY-司马-晓"}).perform_resources_iter(smart.server)
    )
    assert [p.id for p in by_id] == [created[0]]

    back.active = True
    updated = Patient(back.update(smart.server), strict=True)
    assert updated.meta.versionId == "2"


def test_observations_with_units_and_paging(smart):
    pid = Patient(new_patient("欧阳", "峰", "1970-05-05").create(smart.server), strict=True).id
    ids = []
    for i, value in enumerate([5.1, 6.8, 7.9, 4.6, 9.3]):
        obs = Observation(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "laboratory",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "葡萄糖"},
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": f"2025-0{i + 1}-15T08:00:00+08:00",
                "valueQuantity": {"value": value, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
                "referenceRange": [
                    {
                        "low": {"value": 3.9, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
                        "high": {"value": 6.1, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
                    }
                ],
            },
            strict=True,
        )
        ids.append(Observation(obs.create(smart.server), strict=True).id)

    read = Observation.read(ids[2], smart.server)
    assert read.valueQuantity.value == 7.9 and read.valueQuantity.code == "mmol/L"
    assert read.referenceRange[0].high.value == 6.1

    # Two per page: the client follows `next` links through three strict Bundles.
    search = Observation.where({"patient": f"Patient/{pid}", "code": "http://loinc.org|2345-7", "_count": "2"})
    pages = list(search.perform_iter(smart.server))
    assert len(pages) == 3
    assert all(isinstance(b, Bundle) and b.total == 5 for b in pages)
    got = [e.resource.id for b in pages for e in (b.entry or [])]
    assert got == ids

    spring = list(
        Observation.where({"patient": pid, "date": "ge2025-02-01", "_count": "10"}).perform_resources_iter(smart.server)
    )
    spring_ids = [o.id for o in spring]
    assert spring_ids == [i for i in ids if ids.index(i) >= 1]


def test_errors_are_strict_operation_outcomes(base_url, token):
    auth = {"Authorization": f"Bearer {token}"}
    r = requests.get(base_url + "/fhir/Patient")
    assert r.status_code == 401
    assert OperationOutcome(r.json(), strict=True).issue[0].code == "security"
    r = requests.post(
        base_url + "/fhir/Patient",
        data='{"resourceType":"Patient","birthDate":"not-a-date"}',
        headers={"Content-Type": "application/fhir+json", **auth},
    )
    assert r.status_code == 400
    oo = OperationOutcome(r.json(), strict=True)
    assert oo.issue[0].expression == ["Patient.birthDate"]
    r = requests.get(base_url + "/fhir/Patient?birthdate=not-a-date", headers=auth)
    assert r.status_code == 400
    assert OperationOutcome(r.json(), strict=True).issue[0].expression == ["birthdate"]


def test_transaction_bundle_round_trip(smart):
    from fhirclient.models.bundle import Bundle as FhirBundle

    tx = FhirBundle(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:2f1b5a3e-8d0c-4c39-9e7b-1d2c3b4a5f60",
                    "resource": {"resourceType": "Patient", "name": [{"family": "事务", "given": ["测试"]}]},
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                        "subject": {"reference": "urn:uuid:2f1b5a3e-8d0c-4c39-9e7b-1d2c3b4a5f60"},
                        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
                    },
                    "request": {"method": "POST", "url": "Observation"},
                },
            ],
        },
        strict=True,
    )
    response = FhirBundle(smart.server.post_json("", tx.as_json()).json(), strict=True)
    assert response.type == "transaction-response"
    statuses = [e.response.status for e in response.entry]
    assert statuses == ["201 Created", "201 Created"]
    patient_ref = response.entry[0].response.location.split("/_history")[0]
    obs = Observation(response.entry[1].resource.as_json(), strict=True)
    assert obs.subject.reference == patient_ref


def test_chained_search_and_include_with_strict_models(smart):
    from fhirclient.models.encounter import Encounter

    pid = Patient(new_patient("链式", "查询", "1966-06-06").create(smart.server), strict=True).id
    enc = Encounter(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{pid}"},
            "period": {"start": "2025-03-01T08:00:00+08:00"},
        },
        strict=True,
    )
    eid = Encounter(enc.create(smart.server), strict=True).id
    # Chained: encounters whose patient has this family name.
    found = list(Encounter.where({"subject:Patient.family": "链式"}).perform_resources_iter(smart.server))
    assert [e.id for e in found] == [eid]
    # _include: the bundle carries the patient, marked as included; every entry parses strictly.
    bundle = Bundle(smart.server.request_json(f"Encounter?_id={eid}&_include=Encounter:subject"), strict=True)
    modes = sorted((e.resource.resource_type, e.search.mode) for e in bundle.entry)
    assert modes == [("Encounter", "match"), ("Patient", "include")]
    # Reverse chain.
    has = Bundle(smart.server.request_json("Patient?_has:Encounter:patient:date=ge2025-03-01&_count=1000"), strict=True)
    assert pid in [e.resource.id for e in has.entry]


def test_bulk_export_round_trip(base_url, token):
    """$export kick-off, status polling and NDJSON download; every exported line is a
    strictly valid R4 resource."""
    import time

    from fhirclient.models import fhirelementfactory

    auth = {"Authorization": f"Bearer {token}"}
    r = requests.get(base_url + "/fhir/$export?_type=Patient,Observation", headers={**auth, "Prefer": "respond-async"})
    assert r.status_code == 202
    status = r.headers["Content-Location"]
    for _ in range(100):
        s = requests.get(status, headers=auth)
        if s.status_code == 200:
            break
        assert s.status_code == 202
        time.sleep(0.1)
    manifest = s.json()
    assert {o["type"] for o in manifest["output"]} <= {"Patient", "Observation"}
    total = 0
    for out in manifest["output"]:
        text = requests.get(out["url"], headers=auth).text
        for line in text.splitlines():
            res = json.loads(line)
            fhirelementfactory.FHIRElementFactory.instantiate(res["resourceType"], res)
            total += 1
        assert total > 0
    assert requests.delete(status, headers=auth).status_code == 202


def test_patient_match_answers_a_strict_searchset(smart, base_url, token):
    """`Patient/$match` (FHIR R4 §8.1.15.1) with a Parameters body built from fhirclient's
    strict models; the answer parses as a strict R4 Bundle whose entries carry the score and
    the match grade."""
    from fhirclient.models.parameters import Parameters

    stored = Patient(new_patient("东方", "既白", "1977-07-07").create(smart.server), strict=True)
    typed = Patient(
        {"resourceType": "Patient", "name": [{"family": "东方", "given": ["既白"], "text": "东方既白"}],
         "birthDate": "1977-07-07", "gender": "female"},
        strict=True,
    )
    params = Parameters(
        {"resourceType": "Parameters",
         "parameter": [{"name": "resource", "resource": typed.as_json()}, {"name": "count", "valueInteger": 5}]},
        strict=True,
    )
    r = requests.post(
        base_url + "/fhir/Patient/$match",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        data=json.dumps(params.as_json()),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    bundle = Bundle(r.json(), strict=True)
    assert bundle.type == "searchset"
    first = bundle.entry[0]
    assert Patient(first.resource.as_json(), strict=True).id == stored.id
    assert first.search.mode == "match"
    assert 0.5 <= first.search.score <= 1.0
    grade = [e.valueCode for e in first.search.extension if e.url.endswith("match-grade")]
    assert grade in (["possible"], ["probable"])

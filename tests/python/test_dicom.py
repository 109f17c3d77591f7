"""The DICOM node driven by real, independent clients: DCMTK's echoscu and storescu
(a folder of pydicom's own test files) and pynetdicom (C-ECHO, C-STORE of a compressed
instance as encoded, a truncated file, an unknown caller). Instances whose PatientID is
an MRN of the sending AE's campus appear as ImagingStudy resources in the patient's
record."""
import os
import shutil
import subprocess
import tempfile
import time

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from conftest import Server

CT_MRN = "E-PY-0001"
# Uncompressed test files of several modalities and encodings, as a modality's
# export folder would hold them.
FOLDER = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
          "rtplan.dcm", "rtstruct.dcm", "rtdose.dcm", "SC_rgb_small_odd.dcm", "liver_1frame.dcm"]


@pytest.fixture(scope="module")
def node():
    s = Server()
    creds = s.cli("client", "add", "py-dicom", "--scope", "system/*.cruds", "--campus", "campus-east")
    import json

    creds = json.loads(creds)
    s.start("--dicom-listen", "127.0.0.1:0")
    dicom = None
    for _ in range(5):
        line = s.proc.stdout.readline()
        if line.startswith("DICOM is listening on "):
            host, _, port = line.split()[4].rpartition(":")
            dicom = (host, int(port))
            break
    assert dicom, "the DICOM line was not printed"
    token = requests.post(s.base + "/oauth/token", data={"grant_type": "client_credentials",
                          "client_id": creds["client_id"], "client_secret": creds["client_secret"]}).json()["access_token"]
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    for body in [
        {"resourceType": "Organization", "id": "campus-east", "name": "东院区", "alias": ["East Campus"]},
        {"resourceType": "Patient", "id": "py-ct", "name": [{"text": "李四"}],
         "identifier": [{"system": "urn:lianyi:sid:mrn:campus-east", "value": CT_MRN}]},
    ]:
        r = requests.put(f"{s.base}/fhir/{body['resourceType']}/{body['id']}", json=body, headers=h)
        assert r.ok, r.text
    # The AE table is kept from the command line while the node runs.
    s.cli("ae", "put", "PY-CT", "--campus", "campus-east", "--host", "127.0.0.1", "--description", "pytest modality")
    yield {"server": s, "dicom": dicom, "headers": h}
    s.stop()


def echo(node, aet):
    host, port = node["dicom"]
    return subprocess.run(["echoscu", "-aet", aet, "-aec", "LIANYI", host, str(port)], capture_output=True, text=True)


def wait_for_echo(node):
    deadline = time.time() + 30
    while time.time() < deadline:
        if echo(node, "PY-CT").returncode == 0:
            return
        time.sleep(0.5)
    pytest.fail("the AE added from the command line was never admitted")


def studies_of(node, patient, expect):
    deadline = time.time() + 30
    while True:
        b = requests.get(f"{node['server'].base}/fhir/ImagingStudy?subject=Patient/{patient}", headers=node["headers"]).json()
        found = [e["resource"] for e in b.get("entry", [])]
        if len(found) >= expect or time.time() > deadline:
            return found
        time.sleep(0.5)


def test_dcmtk_echo_and_a_folder_of_pydicom_files(node):
    wait_for_echo(node)
    refused = echo(node, "NOT-IN-TABLE")
    assert refused.returncode != 0 and "Calling AE Title Not Recognized" in refused.stderr
    folder = tempfile.mkdtemp(prefix="lianyi-dcm-")
    try:
        for name in FOLDER:
            shutil.copy(get_testdata_file(name), folder)
        # One of them is the East patient's: its PatientID is their East MRN.
        ct = pydicom.dcmread(os.path.join(folder, "CT_small.dcm"))
        ct.PatientID = CT_MRN
        ct.save_as(os.path.join(folder, "CT_small.dcm"))
        host, port = node["dicom"]
        out = subprocess.run(["storescu", "-R", "-aet", "PY-CT", "-aec", "LIANYI", "+sd", "+r", host, str(port), folder],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "Store Failed" not in out.stderr, out.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    found = studies_of(node, "py-ct", 1)
    assert len(found) == 1, found
    assert found[0]["identifier"][0]["value"] == f"urn:oid:{ct.StudyInstanceUID}"
    assert found[0]["numberOfInstances"] == 1
    assert found[0]["modality"][0]["code"] == "CT"


def test_pynetdicom_echo_compressed_store_and_refusals(node):
    wait_for_echo(node)
    host, port = node["dicom"]
    ae = AE(ae_title="PY-CT")
    ae.add_requested_context(Verification)
    jpeg2000 = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    jpeg2000.PatientID = CT_MRN
    ae.add_requested_context(jpeg2000.SOPClassUID, jpeg2000.file_meta.TransferSyntaxUID)
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ae.add_requested_context(mr.SOPClassUID, mr.file_meta.TransferSyntaxUID)
    assoc = ae.associate(host, port, ae_title="LIANYI")
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0x0000
        # Kept in its JPEG 2000 encoding (pynetdicom sends it as encoded).
        assert assoc.send_c_store(jpeg2000).Status == 0x0000
        # A truncated file, sent as it is on disk: refused, saying why.
        truncated = get_testdata_file("MR_truncated.dcm")
        status = assoc.send_c_store(truncated)
        assert status.Status == 0xA900, status
        assert "truncated" in status.get("ErrorComment", ""), status
    finally:
        assoc.release()
    found = studies_of(node, "py-ct", 2)
    assert len(found) == 2, found
    # An AE that is not in the table cannot open an association.
    stranger = AE(ae_title="STRANGER")
    stranger.add_requested_context(Verification)
    rejected = stranger.associate(host, port, ae_title="LIANYI")
    assert rejected.is_rejected


def test_dicomweb_client_searches_retrieves_and_stores(node):
    wait_for_echo(node)
    base = node["server"].base
    token = node["headers"]["Authorization"]
    client = DICOMwebClient(url=f"{base}/dicomweb", headers={"Authorization": token})
    # STOW-RS: an instance of the East patient, and one of an unknown SOP class.
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mr.PatientID = CT_MRN
    mr.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.77"
    mr.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.77.1"
    mr.SOPInstanceUID = mr.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.77.1.1"
    stored = client.store_instances([mr])
    assert "00081199" in stored and "00081198" not in stored, stored
    odd = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    odd.SOPClassUID = odd.file_meta.MediaStorageSOPClassUID = "1.2.3.4.5.6.7"
    odd.SOPInstanceUID = odd.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.78"
    with pytest.raises(Exception):
        client.store_instances([odd])
    # A malformed body is refused, saying why.
    r = requests.post(f"{base}/dicomweb/studies", data=b"not multipart",
                      headers={"Authorization": token, "Content-Type": 'multipart/related; type="application/dicom"; boundary=B'})
    assert r.status_code == 400 and "boundary never appears" in r.text, r.text
    # QIDO-RS at each level, with a wildcard.
    studies = client.search_for_studies(search_filters={"PatientID": CT_MRN})
    uids = {s["0020000D"]["Value"][0] for s in studies}
    assert "1.2.826.0.1.3680043.8.498.77" in uids, studies
    series = client.search_for_series(study_instance_uid="1.2.826.0.1.3680043.8.498.77")
    assert len(series) == 1 and series[0]["00080060"]["Value"] == ["MR"]
    instances = client.search_for_instances(study_instance_uid="1.2.826.0.1.3680043.8.498.77",
                                            series_instance_uid=mr.SeriesInstanceUID)
    assert [i["00080018"]["Value"][0] for i in instances] == [mr.SOPInstanceUID]
    assert client.search_for_studies(search_filters={"PatientID": "NO-SUCH-*"}) == []
    # WADO-RS: metadata kept at ingest, and the instance as stored.
    meta = client.retrieve_study_metadata("1.2.826.0.1.3680043.8.498.77")
    assert meta[0]["00100020"]["Value"] == [CT_MRN] and "7FE00010" not in meta[0]
    back = client.retrieve_instance("1.2.826.0.1.3680043.8.498.77", mr.SeriesInstanceUID, mr.SOPInstanceUID)
    assert back.SOPInstanceUID == mr.SOPInstanceUID and back.PixelData == mr.PixelData
    # Without a token: 401.
    assert requests.get(f"{base}/dicomweb/studies").status_code == 401


def test_dicomweb_client_frames_and_rendered_images_of_pydicom_files(node):
    """WADO-RS frames (native samples, decoded from RLE and JPEG where stored so) and
    rendered images, read by dicomweb-client and checked with pydicom and Pillow."""
    import io

    from PIL import Image

    base = node["server"].base
    client = DICOMwebClient(url=f"{base}/dicomweb", headers={"Authorization": node["headers"]["Authorization"]})
    study = "1.2.826.0.1.3680043.8.498.90"
    names = ["CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle_2frame.dcm",
             "MR_small_jp2klossless.dcm", "test-SR.dcm"]
    kept = {}
    for n, name in enumerate(names, start=1):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.PatientID = CT_MRN
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = f"{study}.{n}"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{study}.{n}.1"
        kept[name] = ds
    stored = client.store_instances(list(kept.values()))
    assert "00081198" not in stored, stored

    def uids(name):
        ds = kept[name]
        return study, ds.SeriesInstanceUID, ds.SOPInstanceUID

    # Frames: native samples as stored, and RLE decoded to the same samples as the
    # uncompressed MR_small.
    [ct] = client.retrieve_instance_frames(*uids("CT_small.dcm"), frame_numbers=[1])
    assert ct == kept["CT_small.dcm"].PixelData
    [mr] = client.retrieve_instance_frames(*uids("MR_small_RLE.dcm"), frame_numbers=[1])
    assert mr == pydicom.dcmread(get_testdata_file("MR_small.dcm")).PixelData
    two = client.retrieve_instance_frames(*uids("SC_rgb_rle_2frame.dcm"), frame_numbers=[2, 1])
    rgb = kept["SC_rgb_rle_2frame.dcm"]
    assert [len(f) for f in two] == [rgb.Rows * rgb.Columns * 3] * 2 and two[0] != two[1]

    # Rendered: the size of the image, grey for CT, colour from the JPEG.
    png = client.retrieve_instance_rendered(*uids("CT_small.dcm"), media_types=("image/png",),
                                            params={"window": "40,400"})
    img = Image.open(io.BytesIO(png))
    assert (img.format, img.mode, img.size) == ("PNG", "L", (128, 128))
    assert len(set(img.tobytes())) > 10, "a CT slice in a soft-tissue window has many greys"
    jpeg = client.retrieve_instance_rendered(*uids("SC_rgb_jpeg_dcmtk.dcm"), media_types=("image/jpeg",))
    img = Image.open(io.BytesIO(jpeg))
    assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (100, 100))
    px = img.tobytes()
    assert any(px[i] > 200 and px[i + 1] < 60 and px[i + 2] < 60 for i in range(0, len(px), 3)), "its red band"
    small = client.retrieve_instance_frames_rendered(*uids("SC_rgb_rle_2frame.dcm"), frame_numbers=[2],
                                                    media_types=("image/png",), params={"viewport": "50,50"})
    assert Image.open(io.BytesIO(small)).size == (50, 50)

    # What cannot be answered is refused, saying why.
    h = {"Authorization": node["headers"]["Authorization"]}
    _, series, sop = uids("MR_small_jp2klossless.dcm")
    r = requests.get(f"{base}/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered", headers=h)
    assert r.status_code == 406 and "cannot be decoded" in r.text, r.text
    _, series, sop = uids("test-SR.dcm")
    r = requests.get(f"{base}/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1", headers=h)
    assert r.status_code == 400 and "no pixel data" in r.text, r.text

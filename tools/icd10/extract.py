"""Builds crates/clinical/data/icd10cm.tsv from the CDC's ICD-10-CM tabular list.

Source: ICD-10-CM April 2026 release, National Center for Health Statistics (CDC),
https://www.cdc.gov/nchs/icd/icd-10-cm/files.html — a work of the U.S. government, in
the public domain. The file is taken from the PyPI package simple-icd-10-cm 1.5.0
(MIT), which ships it unchanged:

    pip download simple-icd-10-cm==1.5.0 --no-deps -d /tmp/icd && unzip -o /tmp/icd/*.whl -d /tmp/icd
    python3 tools/icd10/extract.py /tmp/icd/simple_icd_10_cm/data/icd10c-tabular-April-1-2026.xml

Kept: the three-character categories and the four-character subcategories (A00,
A00.0 …), the level at which WHO ICD-10 (and the Chinese national clinical edition
built on it) is coded; the finer ICD-10-CM codes are left out. One line per code:
`code<TAB>English title`.
"""
import sys
import xml.etree.ElementTree as ET

def main(path, out="crates/clinical/data/icd10cm.tsv"):
    rows = []
    for diag in ET.parse(path).iter("diag"):
        name = diag.findtext("name")
        desc = diag.findtext("desc")
        if not name or not desc:
            continue
        if len(name.replace(".", "")) <= 4:
            rows.append((name, " ".join(desc.split())))
    rows.sort()
    with open(out, "w", encoding="utf-8") as f:
        f.write("# ICD-10-CM April 2026 (CDC/NCHS, public domain): categories and subcategories. Built by tools/icd10/extract.py\n")
        for code, desc in rows:
            f.write(f"{code}\t{desc}\n")
    print(f"{len(rows)} codes written to {out}")

if __name__ == "__main__":
    main(*sys.argv[1:])

#!/usr/bin/env python3
"""Derive Lianyi's compiled-in FHIR tables from the official R4 definitions.

Why: the engine validates and indexes every resource on the ingest hot path, so it
uses small, pre-digested tables instead of walking the 3.5 MB JSON Schema or
interpreting FHIRPath at run time. This script is the only place that reads the
official files; its output is committed so the build never needs them.

Usage: tools/gen_fhir_tables.py [DEFINITIONS_DIR]   (default ../shared/fhir-r4)

Writes crates/fhir/src/generated/{schema,search_params,compartment}.json (minified).

schema.json:
  {"primitives": {name: {"json": "string"|"number"|"boolean", "pattern": re|null}},
   "types": {name: {"props": {prop: [kind, arg, is_array]}, "required": [...]}},
   "resources": [names...]}
  kind: "t" (arg = type name), "e" (arg = allowed codes), "c" (arg = constant),
        "p" (arg = [json type, pattern]: an inline primitive), "x" (xhtml / any string)
compartment.json:
  {resource type: [search parameter codes linking it to the Patient compartment]}
search_params.json:
  [{"code", "type", "resource", "paths": [{"steps": [[field, filter|null]...], "target": type}],
    "targets": [...], "description"}]
  filter: {"ref": Type} (Reference must point to Type) or {"eq": [field, value]}.
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fhir-r4")
OUT = os.path.join(ROOT, "crates", "fhir", "src", "generated")

schema = json.load(open(os.path.join(SRC, "fhir.schema.json"), encoding="utf-8"))
defs = schema["definitions"]

REF = "#/definitions/"


def ref_name(ref):
    name = ref[len(REF):]
    # Known defects of the shipped schema (see shared/fhir-r4/README.md).
    if name == "Resource":
        return "ResourceList"
    if name == "integer64":
        return "integer"
    return name


primitives = {}
types = {}
resources = []
for name, d in defs.items():
    if name == "ResourceList":
        resources = [ref_name(x["$ref"]) for x in d["oneOf"]]
        continue
    if "properties" not in d:
        if name == "xhtml":
            primitives[name] = {"json": "string", "pattern": None}
        else:
            primitives[name] = {"json": d.get("type", "string"), "pattern": d.get("pattern")}
        continue
    props = {}
    for pname, p in d["properties"].items():
        is_array = p.get("type") == "array"
        item = p["items"] if is_array else p
        if "$ref" in item:
            t = ref_name(item["$ref"])
            kind = ("x", None) if t == "xhtml" else ("t", t)
        elif "enum" in item:
            kind = ("e", item["enum"])
        elif "const" in item:
            kind = ("c", item["const"])
        elif "pattern" in item:
            kind = ("p", [item.get("type", "string"), item["pattern"]])
        else:
            raise SystemExit(f"unknown property shape {name}.{pname}: {item}")
        props[pname] = [kind[0], kind[1], is_array]
    types[name] = {"props": props, "required": d.get("required", [])}

# The boolean pattern in the official schema is "^true|false$" (an alternation
# without grouping); booleans are checked by JSON type instead.
primitives["boolean"]["pattern"] = None


def prop_type(type_name, field):
    """The schema type name of `field` on `type_name`, or None."""
    t = types.get(type_name)
    if not t or field not in t["props"]:
        return None
    kind, arg, _ = t["props"][field]
    if kind == "t":
        return arg
    if kind in ("e",):
        return "code"
    if kind == "p":
        # inline primitive: find the named primitive with the same pattern
        for pn, pd in primitives.items():
            if pd["pattern"] == arg[1]:
                return pn
        return "string"
    if kind == "x":
        return "xhtml"
    return None


def choice_keys(type_name, field):
    """Concrete JSON keys of a choice element such as value[x]."""
    t = types.get(type_name)
    if not t:
        return []
    out = []
    for k in t["props"]:
        if k.startswith(field) and len(k) > len(field) and k[len(field)].isupper():
            out.append((k, k[len(field):]))
    return out


def upper_first(s):
    return s[0].upper() + s[1:]


TOKEN_RE = re.compile(r"\.?([A-Za-z]+)|\.where\(resolve\(\) is ([A-Za-z]+)\)|\.where\(([a-z]+)='([^']*)'\)|\.ofType\(([A-Za-z]+)\)")


def compile_path(expr, resource, start=None):
    """Compile one FHIRPath union member into concrete paths, or None if unsupported.
    `start` is the type the walk begins at (default: the resource itself); composite
    components are compiled relative to their root element's type this way."""
    expr = expr.strip()
    m = re.fullmatch(r"\((.*)\)(\.[a-z][A-Za-z]*)?", expr)
    trailing = None
    if m and m.group(1).count("(") == m.group(1).count(")") and " | " not in m.group(1):
        expr, trailing = m.group(1), m.group(2)
    if trailing:
        expr = expr + trailing
    if not (expr.startswith(resource + ".") or expr.startswith("Resource.")):
        return None
    rest = expr[expr.index("."):]
    # tokenize
    toks = []
    pos = 0
    while pos < len(rest):
        m = re.compile(r"\.where\(resolve\(\) is ([A-Za-z]+)\)").match(rest, pos)
        if m:
            toks.append(("ref", m.group(1)))
            pos = m.end()
            continue
        m = re.compile(r"\.where\(([a-z]+)='([^']*)'\)").match(rest, pos)
        if m:
            toks.append(("eq", [m.group(1), m.group(2)]))
            pos = m.end()
            continue
        m = re.compile(r"\.ofType\(([A-Za-z]+)\)").match(rest, pos)
        if m:
            toks.append(("of", m.group(1)))
            pos = m.end()
            continue
        m = re.compile(r"\.([A-Za-z]+)").match(rest, pos)
        if m:
            toks.append(("f", m.group(1)))
            pos = m.end()
            continue
        return None
    # walk the schema, expanding choices
    # Resource-level parameters (_tag, _profile, ...) walk the common resource header.
    paths = [([], start or ("Patient" if resource == "Resource" else resource))]  # (steps, current type)
    i = 0
    while i < len(toks):
        kind, arg = toks[i]
        new = []
        if kind == "f":
            nxt_of = toks[i + 1][1] if i + 1 < len(toks) and toks[i + 1][0] == "of" else None
            for steps, cur in paths:
                t = prop_type(cur, arg)
                if t is not None:
                    new.append((steps + [[arg, None]], t))
                    continue
                for key, suffix in choice_keys(cur, arg):
                    if nxt_of and suffix.lower() != nxt_of.lower():
                        continue
                    kt = prop_type(cur, key)
                    if kt:
                        new.append((steps + [[key, None]], kt))
            if nxt_of:
                i += 1
        elif kind == "of":
            for steps, cur in paths:
                if cur.lower() == arg.lower():
                    new.append((steps, cur))
        elif kind in ("ref", "eq"):
            for steps, cur in paths:
                if not steps:
                    return None
                filt = {"ref": arg} if kind == "ref" else {"eq": arg}
                steps = steps[:-1] + [[steps[-1][0], filt]]
                new.append((steps, cur))
        paths = new
        i += 1
    return [{"steps": s, "target": t} for s, t in paths]


bundle = json.load(open(os.path.join(SRC, "search-parameters.json"), encoding="utf-8"))
by_url = {e["resource"]["url"]: e["resource"] for e in bundle["entry"]}
params = []
skipped = []


def compile_composite(sp, base):
    """A two-part composite (a token, then a token, quantity, date or string): its root elements and, per root, each part's paths relative to it.
    None when the definition does not fit that shape."""
    comps = sp.get("component", [])
    if len(comps) != 2:
        return None
    kinds = []
    for c in comps:
        d = by_url.get(c["definition"])
        if d is None:
            return None
        kinds.append(d["type"])
    if kinds[0] != "token" or kinds[1] not in ("token", "quantity", "date", "string"):
        return None
    roots = []
    for mem in [m.strip() for m in re.split(r"\s\|\s", sp["expression"])]:
        if mem == base:
            root_paths = [{"steps": [], "target": base}]
        elif mem.startswith(base + "."):
            root_paths = compile_path(mem, base)
            if not root_paths:
                return None
        else:
            continue
        for rp in root_paths:
            parts = []
            for c, kind in zip(comps, kinds):
                paths = []
                for cm in [m.strip() for m in re.split(r"\s\|\s", c["expression"])]:
                    compiled = compile_path(rp["target"] + "." + cm, rp["target"], rp["target"])
                    if compiled is None:
                        return None
                    paths.extend(compiled)
                if not paths:
                    return None
                parts.append({"type": kind, "paths": paths})
            roots.append({"root": rp, "parts": parts})
    return roots or None


for e in bundle["entry"]:
    sp = e["resource"]
    ptype = sp.get("type")
    if ptype == "composite":
        for base in sp.get("base", []):
            roots = compile_composite(sp, base)
            if roots is None:
                skipped.append(f"{base}.{sp['code']}: composite of this shape")
                continue
            params.append({
                "code": sp["code"],
                "type": "composite",
                "resource": base,
                "paths": [r["root"] for r in roots],
                "composite": roots,
                "targets": [],
                "description": sp.get("description", "").split("\n")[0][:200],
            })
        continue
    if ptype not in ("token", "string", "reference", "date", "number", "quantity", "uri"):
        continue
    expr = sp.get("expression")
    if not expr:
        continue
    bases = sp.get("base", [])
    if bases == ["Resource"]:
        bases = ["Resource"]
    members = [m.strip() for m in re.split(r"\s\|\s", expr)]
    for base in bases:
        paths = []
        ok = False
        for mem in members:
            prefix = mem.lstrip("(")
            if not (prefix.startswith(base + ".") or (base == "Resource" and prefix.startswith("Resource."))):
                continue
            compiled = compile_path(mem, base)
            if compiled is None:
                skipped.append(f"{base}.{sp['code']}: {mem}")
                continue
            ok = True
            paths.extend(compiled)
        if ok and paths:
            params.append({
                "code": sp["code"],
                "type": ptype,
                "resource": base,
                "paths": paths,
                "targets": sp.get("target", []),
                "description": sp.get("description", "").split("\n")[0][:200],
            })

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "schema.json"), "w", encoding="utf-8") as f:
    json.dump({"primitives": primitives, "types": types, "resources": resources}, f,
              separators=(",", ":"), ensure_ascii=False, sort_keys=True)
with open(os.path.join(OUT, "search_params.json"), "w", encoding="utf-8") as f:
    json.dump(params, f, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
compartment = json.load(open(os.path.join(SRC, "compartmentdefinition-patient.json"), encoding="utf-8"))
patient_compartment = {r["code"]: r["param"] for r in compartment["resource"] if r.get("param")}
with open(os.path.join(OUT, "compartment.json"), "w", encoding="utf-8") as f:
    json.dump(patient_compartment, f, separators=(",", ":"), ensure_ascii=False, sort_keys=True)

print(f"{len(types)} complex types, {len(primitives)} primitives, {len(resources)} resources, "
      f"{len(params)} search parameters ({len(skipped)} expressions skipped)")
for s in skipped:
    print("  skipped", s)

#!/usr/bin/env python3
"""Validates answers of a running nexthop API against its own /v1/openapi.json, with the
`jsonschema` package (Debian's python3-jsonschema; JSON Schema draft 2020-12, what OpenAPI 3.1
uses). Usage:

    validate_openapi.py OPENAPI.json METHOD PATH ANSWER.json [METHOD PATH ANSWER.json ...]

PATH is the document's path template (e.g. /v1/lb/{name}). Every component schema is checked
as a schema first. Prints one line per answer; exits 1 if any answer does not validate.
"""
import json
import sys

from jsonschema import Draft202012Validator


def main():
    doc = json.load(open(sys.argv[1]))
    if doc.get("openapi", "").split(".")[0] != "3":
        sys.exit("not an OpenAPI 3 document")
    schemas = doc["components"]["schemas"]

    def inline(s):
        # The types of the API are not recursive: every reference can be inlined.
        if isinstance(s, dict):
            if "$ref" in s:
                name = s["$ref"].rsplit("/", 1)[1]
                rest = {k: v for k, v in s.items() if k != "$ref"}
                return inline({**schemas[name], **rest})
            return {k: inline(v) for k, v in s.items()}
        if isinstance(s, list):
            return [inline(x) for x in s]
        return s

    for name, s in schemas.items():
        Draft202012Validator.check_schema(inline(s))
    failed = 0
    args = sys.argv[2:]
    for i in range(0, len(args), 3):
        method, path, file = args[i : i + 3]
        op = doc["paths"][path][method]
        schema = inline(op["responses"]["200"]["content"]["application/json"]["schema"])
        answer = json.load(open(file))
        errors = sorted(Draft202012Validator(schema).iter_errors(answer), key=str)
        if errors:
            failed += 1
            print("INVALID %s %s: %s" % (method.upper(), path, errors[0].message))
        else:
            print("ok %s %s" % (method.upper(), path))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

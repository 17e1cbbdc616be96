"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS=hooks by run.py).

Nothing may leave the machine: before every call, each string in the body, the query or the
path that is a URL in the document's form gets the host `hook.schemathesis.invalid` (the
`.invalid` top-level domain never resolves, RFC 6761), keeping its scheme, path and query.
That covers webhook_url, url and every future URL field, in every phase (examples, coverage,
fuzzing, stateful), without writing a test-only rule into the public document.
"""

import os
import re

import schemathesis

HOST = "hook.schemathesis.invalid"
# The document's form of a customer URL (WebhookRequest.url): only such a URL can be stored,
# so only such a URL is rewritten. Any other string is left as generated: the server refuses
# it, and a case meant to be invalid stays invalid.
URL = re.compile(
    r"^([Hh][Tt][Tt][Pp][Ss]?://)([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?"
    r"([/?#][A-Za-z0-9._~!$&'()*+,;=:@%/?#-]*)?$"
)


def contain(value):
    if isinstance(value, str):
        m = URL.match(value)
        return m.group(1) + HOST + (m.group(4) or "") if m else value
    if isinstance(value, list):
        return [contain(v) for v in value]
    if isinstance(value, dict):
        return {k: contain(v) for k, v in value.items()}
    return value


# The admin run works on a spare account, never on its own (it could demote itself once
# schemathesis made another administrator, and every later call would be a 403) nor on the
# customer's, which the customer run uses at the same time (suspended, debited to zero or
# demoted, it would see refusals no valid request deserves). run.py names the ids.
# Likewise the run's own API key is never revoked: DELETE /api/v1/keys/{id} of its id revokes a
# key made for the purpose just before (so the answer is the 204 a real key gets; a made-up id
# would answer 404, which schemathesis' stateful checks read as "a resource created a step
# before is not available"), and every other key may go.
PROTECTED = set(filter(None, os.environ.get("OTPBOX_SCHEMATHESIS_PROTECTED", "").split(",")))
SPARE = os.environ.get("OTPBOX_SCHEMATHESIS_SPARE")
OWN_KEY = os.environ.get("OTPBOX_SCHEMATHESIS_KEY_ID")
BASE_URL = os.environ.get("OTPBOX_SCHEMATHESIS_BASE_URL")
CREDENTIAL = os.environ.get("OTPBOX_SCHEMATHESIS_KEY")


def _spare_key_id():
    """A new API key of the run's account, made to be revoked in place of the run's own."""
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        BASE_URL + "/api/v1/keys", data=b'{"name": "revoked by schemathesis"}', method="POST",
        headers={"Authorization": f"Bearer {CREDENTIAL}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["id"]
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise
    # At the limit of live keys: one the run made before goes instead.
    req = urllib.request.Request(BASE_URL + "/api/v1/keys",
                                 headers={"Authorization": f"Bearer {CREDENTIAL}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        keys = json.loads(r.read())["keys"]
    return next(k["id"] for k in keys if str(k["id"]) != OWN_KEY)


# `GET /api/v1/activations/{id}?wait=N` holds the answer up to N seconds (30 at most) when
# nothing changes: a valid wait above 1 is sent as 1, so the run is not spent waiting.
def _short_wait(query):
    wait = (query or {}).get("wait")
    try:
        if int(str(wait)) > 1:
            return {**query, "wait": 1}
    except ValueError:
        pass
    return query


@schemathesis.hook
def before_call(ctx, case, kwargs):
    shortened = _short_wait(case.query)
    if shortened is not case.query:
        case.query = shortened
    if (
        SPARE
        and case.path.startswith("/api/v1/admin/users/{id}/")
        and str((case.path_parameters or {}).get("id")) in PROTECTED
    ):
        case.path_parameters = {**case.path_parameters, "id": int(SPARE)}
    if (
        OWN_KEY
        and case.method == "DELETE"
        and case.path == "/api/v1/keys/{id}"
        and str((case.path_parameters or {}).get("id")) == OWN_KEY
    ):
        case.path_parameters = {**case.path_parameters, "id": _spare_key_id()}
    for part in ("body", "query", "path_parameters"):
        value = getattr(case, part, None)
        if value is None:
            continue
        contained = contain(value)
        # Assigning marks the part as changed and makes schemathesis re-validate it (a query's
        # integers arrive as strings and would read as invalid): only when a URL was replaced.
        if contained != value:
            setattr(case, part, contained)


# A case generated as "negative" whose data conforms to the document all the same is not
# negative: schemathesis' schema mutations sometimes draw a value the original schema
# accepts (seen: `{"enabled": false}` and an existing path id after "Schema mutated"), and
# the negative_data_rejection check would then blame the server for accepting valid input.
# Such cases are dropped before they are sent; every case that really breaks the document
# is still sent and must be refused.


def _deref(doc, node):
    """The node with every $ref replaced by its target; OpenAPI's `nullable` as a JSON
    Schema type union."""
    if isinstance(node, list):
        return [_deref(doc, n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return _deref(doc, target)
    out = {k: _deref(doc, v) for k, v in node.items() if k not in ("example", "examples")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _conforms(schema, value):
    import jsonschema

    return jsonschema.Draft4Validator(schema).is_valid(value)


def _as_typed(schema, text):
    if not isinstance(text, str):
        return text
    ty = schema.get("type")
    if ty == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    return text


def conforms_to_document(case):
    op = case.operation
    doc = op.schema.raw_schema
    definition = _deref(doc, op.definition.raw)
    params = definition.get("parameters", [])
    for place, values in (("path", case.path_parameters), ("query", case.query)):
        values = dict(values or {})
        declared = {p["name"]: p for p in params if p.get("in") == place}
        if any(name not in declared for name in values):
            return False
        for name, p in declared.items():
            if name not in values:
                if p.get("required"):
                    return False
                continue
            schema = p.get("schema", {})
            if not _conforms(schema, _as_typed(schema, values[name])):
                return False
    body = definition.get("requestBody")
    if body is not None:
        schema = body.get("content", {}).get("application/json", {}).get("schema", {})
        value = case.body
        if value is None or type(value).__name__ == "NotSet":
            return not body.get("required")
        if not _conforms(schema, value):
            return False
    return True


@schemathesis.hook
def filter_case(ctx, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return True
    try:
        return not conforms_to_document(case)
    except Exception:
        return True

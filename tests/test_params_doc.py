"""docs/params.md is what the generator makes from the params model, and it covers every key."""

from __future__ import annotations

import subprocess
import sys

from vpclink_runbooks import params_doc
from vpclink_runbooks.params import HOST_PORT_RULE, Params


def _keys(model, prefix=""):
    for name, field in model.model_fields.items():
        yield f"{prefix}{name}"
        sub = params_doc._model_of(field.annotation)
        if sub is not None:
            yield from _keys(sub, f"{prefix}{name}[]." if "list[" in str(field.annotation) else f"{prefix}{name}.")


def test_docs_params_md_is_generated_and_current():
    generated = subprocess.run([sys.executable, "-m", "vpclink_runbooks.params_doc"], check=True,
                               capture_output=True, text=True).stdout
    assert params_doc.DOC.read_text() == generated, \
        "docs/params.md is stale: run python -m vpclink_runbooks.params_doc --write"


def test_every_key_and_the_rules_are_documented():
    text = params_doc.render()
    for key in _keys(Params):
        assert f"| `{key}` |" in text, key
    for needed in (HOST_PORT_RULE, "role_arn", "aws_profile", "boto3's standard chain", "drop the leading",
                   "--confirm ENV@ACCOUNT", "ip_local_port_range"):
        assert needed in text, needed

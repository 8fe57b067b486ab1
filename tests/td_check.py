"""Checks a document against the official W3C TD 1.1 JSON Schema, independently of iotas'
own validator (the same schema file, a plain jsonschema Draft 7 validator)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema


@cache
def _validator() -> jsonschema.Draft7Validator:
    text = resources.files("iotas.domain").joinpath("schemas/td-1.1-validation.json").read_text()
    return jsonschema.Draft7Validator(json.loads(text))


def assert_valid_td(doc: Any) -> None:
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]

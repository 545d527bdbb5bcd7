"""The JSON Schema of a portfolio *file*, as editors and CI validate it.

Any file may be included by another one, so no top-level key is required in a single file; ``include``,
``allow_includes_outside`` and ``x-*`` template keys are file-level keys the loader consumes before the merged
portfolio is validated by the pydantic models (``flexopt schema --merged`` prints that stricter schema).
"""

from __future__ import annotations

import copy

from flexopt.config.plugins import load_plugins
from flexopt.config.portfolio import Portfolio
from flexopt.config.quantities import RANGE_KEY

REQUIRED_AFTER_MERGE = ("portfolio", "tariff", "sites")


def merged_schema() -> dict:
    """The schema of a whole portfolio after includes are merged (the pydantic models), every number's range
    in its description. Installed plug-ins (asset types, protocols) are part of it."""
    load_plugins()
    schema = Portfolio.model_json_schema()
    _describe_ranges(schema)
    return schema


def _describe_ranges(node: object) -> None:
    """Move each number's range (quantities.RANGE_KEY) into the description editors show."""
    if isinstance(node, list):
        for item in node:
            _describe_ranges(item)
    elif isinstance(node, dict):
        for holder in [node, *node.get("anyOf", [])]:  # a field's own description first, before its branches
            if isinstance(holder, dict) and RANGE_KEY in holder:
                text = holder.pop(RANGE_KEY)
                base = node.get("description", "")
                node["description"] = f"{base}; {text}" if base else text[0].upper() + text[1:]
        for value in node.values():
            _describe_ranges(value)


def portfolio_file_schema() -> dict:
    """The schema every portfolio file (main or included) satisfies."""
    schema = copy.deepcopy(merged_schema())
    schema.pop("required", None)
    schema["properties"]["sites"].pop("minItems", None)  # a file may leave all sites to its includes
    schema["properties"]["include"] = {
        "description": "other portfolio files merged into this one (relative to this file, inside its folder tree "
                       "unless allow_includes_outside): sites and congestion_points concatenated, data_sources "
                       "merged, other keys taken from the including file first",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    schema["properties"]["allow_includes_outside"] = {
        "type": "boolean", "default": False,
        "description": "main file only: allow include paths outside the folder of the main portfolio file",
    }
    schema["patternProperties"] = {"^x-": {"description": "extension field for YAML anchors/templates; ignored"}}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "flexopt portfolio file"
    schema["description"] = ("A flexopt portfolio file. After includes are merged, "
                             f"{', '.join(REQUIRED_AFTER_MERGE)} are required.")
    return schema

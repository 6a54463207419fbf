"""Every report validates against the schema its consumers use: JSON against the published
JSON Schema (softmax_cli/schema), JUnit against Jenkins' junit-10.xsd (tests/junit-10.xsd,
vendored from pytest's sources, see tests/junit-10.LICENSE).

Both the golden files and documents rendered from every report builder of
test_render_formats.py are checked; mutated documents must fail, so a schema that accepts
anything cannot pass.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_render_formats import CASES, seed_report

from softmax_cli import check, schema
from softmax_cli.render import OutputFormat, View, render

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
README = HERE.parent / "README.md"
VIEWS = {"listed": View(), "all": View(include_clean=True)}


@pytest.fixture(scope="module")
def junit_xsd() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(HERE / "junit-10.xsd")


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    document = schema.load()
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(
        document, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def errors(validator: jsonschema.Draft202012Validator, document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def closed(node: Any) -> Any:
    """The schema with every object that lists its properties closed to other keys: what
    the renderer writes must all be documented, though the published schema stays open."""
    if isinstance(node, list):
        return [closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    # An ``if`` only tests the document: closing it would change what it matches.
    out = {k: v if k == "if" else closed(v) for k, v in node.items()}
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


# The schema ships inside the package.


def test_the_schema_is_package_data_found_through_importlib_resources() -> None:
    resource = importlib.resources.files("softmax_cli.schema").joinpath(schema.REPORT_V1)
    assert resource.is_file()
    assert json.loads(resource.read_text(encoding="utf-8")) == schema.load()
    assert schema.path().is_file()


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    document = schema.load()
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(document)


# JSON: goldens, every builder, the README's example.


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*/json.json")), ids=lambda p: p.parent.name)
def test_golden_json_validates(validator, path: Path) -> None:
    assert errors(validator, json.loads(path.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("case", list(CASES))
def test_rendered_json_validates_and_uses_only_documented_keys(
    validator, case: str, view: str
) -> None:
    document = json.loads(render(CASES[case][0](), OutputFormat.json, VIEWS[view]))
    assert errors(validator, document) == []
    strict = jsonschema.Draft202012Validator(closed(schema.load()))
    assert errors(strict, document) == []


def test_the_readme_json_example_validates(validator) -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```console\n\$ softmax-check [^\n]*--format json\n(.*?)```", text, re.S)
    assert block is not None
    assert errors(validator, json.loads(block[1])) == []


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=60, deadline=None)
@given(
    logits=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=3), elements=finite_or_not),
    with_targets=st.booleans(),
    fail_on=st.sampled_from(["input,stable", "any", "none", "naive"]),
    include_clean=st.booleans(),
)
def test_json_and_junit_of_any_logits_validate(
    validator, junit_xsd, logits, with_targets, fail_on, include_clean
) -> None:
    targets = np.zeros(logits.shape[:-1], dtype=np.int64) if with_targets else None
    report = check(logits, targets, fail_on=fail_on, logits_name="x.npy")
    view = View(include_clean=include_clean)
    assert errors(validator, json.loads(render(report, OutputFormat.json, view))) == []
    junit_xsd.validate(render(report, OutputFormat.junit, view))


# JSON: the schema rejects what breaks the contract.


def seed_document() -> dict[str, Any]:
    return json.loads(render(seed_report("any"), OutputFormat.json))


def without(document: dict[str, Any], *path: str | int) -> dict[str, Any]:
    document = copy.deepcopy(document)
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return document


def replaced(document: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    document = copy.deepcopy(document)
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


TOP_LEVEL_KEYS = [
    "schema_version",
    "tool",
    "input",
    "compute_dtype",
    "fail_on",
    "passed",
    "summary",
    "samples",
]


@pytest.mark.parametrize("key", TOP_LEVEL_KEYS)
def test_a_document_without_a_top_level_key_fails(validator, key: str) -> None:
    assert errors(validator, without(seed_document(), key))


@pytest.mark.parametrize(
    "path",
    [
        ("tool", "version"),
        ("input", "targets"),
        ("input", "shape"),
        ("summary", "flagged"),
        ("summary", "input", "fully_masked"),
        ("summary", "naive", "breaks"),
        ("samples", 0, "position"),
        ("samples", 0, "input", "nonfinite"),
        ("samples", 0, "stable", "nan_grad"),
        ("samples", 0, "naive", "loss"),
    ],
)
def test_a_document_without_a_nested_key_fails(validator, path: tuple[str | int, ...]) -> None:
    assert errors(validator, without(seed_document(), *path))


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (2, ("schema_version",)),
        ("yes", ("passed",)),
        ("3", ("summary", "samples")),
        (-1, ("summary", "naive", "overflow")),
        (1.5, ("samples", 0, "index")),
        ("Infinity", ("samples", 0, "naive", "loss")),
        (None, ("samples", 0, "max_logit")),
        (0, ("samples", 0, "stable", "overflow")),
        ("float8", ("compute_dtype",)),
        (["sometimes"], ("fail_on",)),
        ({"logits": "x.npy"}, ("input",)),
    ],
)
def test_a_document_with_a_wrong_type_fails(
    validator, value: Any, path: tuple[str | int, ...]
) -> None:
    assert errors(validator, replaced(seed_document(), value, *path))


def test_the_closed_schema_catches_a_key_the_schema_does_not_document() -> None:
    strict = jsonschema.Draft202012Validator(closed(schema.load()))
    document = seed_document()
    document["samples"][0]["naive"]["nan_gard"] = True
    assert errors(strict, document)


def test_extra_keys_are_allowed_as_the_contract_promises(validator) -> None:
    document = replaced(seed_document(), {"anything": [1]}, "added_later")
    document["samples"][0]["added_later"] = True
    assert errors(validator, document) == []


# JSON: the keys 0.2 adds, each optional, each checked when present.


def statistics(value: float) -> dict[str, float]:
    return {"min": value, "p50": value, "p99": value, "max": value, "mean": value}


def document_0_2() -> dict[str, Any]:
    """The seed document with every key the contract adds in 0.2."""
    document = seed_document()
    impl = {"nan_prob": None, "nan_grad": False, "loss": 2000.0, "error": 0.0, "breaks": False}
    for sample in document["samples"]:
        sample["input"]["out_of_range"] = False
        sample.update(headroom=-911.28, entropy=0.0, margin=1000.0, impls={"mine": impl})
    summary = document["summary"]
    summary["input"]["out_of_range"] = 0
    summary["headroom"] = {"min": -911.28, "index": 1, "below": 1}
    summary["health"] = {
        "max_logit": statistics(2.5),
        "logsumexp": statistics(2.6),
        "z_loss": statistics(6.76),
        "entropy": statistics(0.5),
        "margin": {**statistics(1.0), "mean": "inf"},
        "loss": None,
    }
    summary["impls"] = {
        "mine": {
            "nan_prob": 0,
            "nan_grad": 0,
            "inf_loss": 0,
            "nan_loss": 0,
            "inaccurate": 0,
            "breaks": 0,
            "max_error": 1e-7,
        }
    }
    document["sweep"] = [
        {"compute_dtype": dtype, "passed": dtype != "float16", "summary": copy.deepcopy(summary)}
        for dtype in ("float64", "float32", "bfloat16", "float16")
    ]
    change = {"before": 1.0, "after": 2.0, "change": 1.0}
    document["baseline"] = {
        "path": "before.json",
        "new_breaks": {"naive": 1, "stable": 0},
        "fixed": {"naive": 0, "stable": 0},
        "min_headroom": {"before": 80.0, "after": None, "change": None},
        "health": {"max_logit": change, "logsumexp": change},
    }
    return document


def several_files_document() -> dict[str, Any]:
    document = seed_document()
    single = {k: v for k, v in document["input"].items() if k != "class_axis"}
    document["input"] = {
        "files": [
            {**single, "samples": 3, "first_index": 0},
            {**single, "logits": "more.npy", "samples": 3, "first_index": 3},
        ],
        "samples": 6,
        "class_axis": -1,
    }
    for sample in document["samples"]:
        sample["file"] = "seed.npy"
    return document


def test_a_0_2_document_validates_and_uses_only_documented_keys(validator) -> None:
    document = document_0_2()
    assert errors(validator, document) == []
    assert errors(jsonschema.Draft202012Validator(closed(schema.load())), document) == []


def test_a_several_files_document_validates(validator) -> None:
    document = several_files_document()
    assert errors(validator, document) == []
    assert errors(jsonschema.Draft202012Validator(closed(schema.load())), document) == []


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("true", ("samples", 0, "input", "out_of_range")),
        ("nan", ("samples", 0, "headroom")),
        ({"mine": {"loss": 1.0}}, ("samples", 0, "impls")),
        ({"min": 1.0, "index": 1}, ("summary", "headroom")),
        ({"min": 1.0}, ("summary", "health", "entropy")),
        ("1", ("summary", "impls", "mine", "inaccurate")),
        ("float8", ("sweep", 0, "compute_dtype")),
        ({"naive": 1}, ("baseline", "new_breaks")),
    ],
)
def test_a_wrong_0_2_key_fails(validator, value: Any, path: tuple[str | int, ...]) -> None:
    assert errors(validator, replaced(document_0_2(), value, *path))


def test_several_files_need_the_file_of_each_sample(validator) -> None:
    assert errors(validator, without(several_files_document(), "samples", 0, "file"))
    assert errors(validator, without(several_files_document(), "input", "files", 0, "first_index"))


# JUnit: goldens and every builder against Jenkins' schema.


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*/junit.xml")), ids=lambda p: p.parent.name)
def test_golden_junit_validates_against_jenkins_xsd(junit_xsd, path: Path) -> None:
    junit_xsd.validate(str(path))


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("case", list(CASES))
def test_rendered_junit_validates_against_jenkins_xsd(junit_xsd, case: str, view: str) -> None:
    junit_xsd.validate(render(CASES[case][0](), OutputFormat.junit, VIEWS[view]))


@pytest.mark.parametrize("elapsed", [0.0004, 1.5, 12345.678])
def test_junit_with_a_measured_time_validates(junit_xsd, elapsed: float) -> None:
    junit_xsd.validate(
        render(dataclasses.replace(seed_report(), elapsed=elapsed), OutputFormat.junit)
    )


def test_the_xsd_rejects_what_jenkins_rejects(junit_xsd) -> None:
    """The check can fail: a ``skipped`` count on the root (what 0.1 wrote) is invalid."""
    root = ET.fromstring(render(seed_report(), OutputFormat.junit).encode("utf-8"))
    root.set("skipped", "0")
    assert not junit_xsd.is_valid(ET.tostring(root, "unicode"))
    root.attrib.pop("skipped")
    root.set("time", "1.2345")
    assert not junit_xsd.is_valid(ET.tostring(root, "unicode"))

"""The cloud-config serialiser: random documents read back equal, by ruamel and by PyYAML."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from builder.firstboot.yamldump import dump, scalar
from tests.conftest import require_tool

keys = st.one_of(
    st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_-]{0,10}\Z"),
    st.sampled_from(["NO", "yes", "On", "null", "~", "0644", "1", "a: b", "#", "-"]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=8),
)
texts = st.text(st.characters(codec="utf-8"), max_size=40)
lines = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=20),
    min_size=1,
    max_size=5,
).map(lambda ls: "\n".join(ls) + "\n")
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    texts,
    lines,
    st.sampled_from(
        [
            "yes",
            "no",
            "on",
            "0644",
            "10:30",
            "1e3",
            "~",
            "null",
            "-",
            "- x",
            "a: b",
            "#x",
            "@x",
            "*x",
            "&x",
            "!x",
            "%x",
            "'",
            '"',
            "root:root",
            "/etc/hosts",
            "key:",
            " lead",
            "trail ",
        ]
    ),
)
documents = st.recursive(
    st.dictionaries(keys, scalars, max_size=4),
    lambda inner: st.dictionaries(
        keys,
        st.one_of(scalars, inner, st.lists(inner, max_size=3), st.lists(texts, max_size=4)),
        max_size=4,
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_ruamel_reads_back_what_was_written(document: dict[str, Any]) -> None:
    assert YAML(typ="safe", pure=True).load(dump(document)) == (document or None)


def test_pyyaml_of_cloud_init_reads_back_the_same() -> None:
    """cloud-init parses user-data with PyYAML (YAML 1.1): the same documents, one process."""
    python = shutil.which("python3", path="/usr/bin")
    require_tool("cloud-init")
    assert python is not None
    samples: list[dict[str, Any]] = []

    @settings(max_examples=200, deadline=None)
    @given(documents)
    def collect(document: dict[str, Any]) -> None:
        samples.append(document)

    collect()
    texts_in = [dump(document) for document in samples]
    program = (
        "import json, sys, yaml\n"
        "docs = json.load(sys.stdin)\n"
        "print(json.dumps([yaml.safe_load(d) for d in docs]))\n"
    )
    result = subprocess.run(
        [python, "-c", program],
        input=json.dumps(texts_in),
        capture_output=True,
        text=True,
        check=True,
    )
    for document, parsed in zip(samples, json.loads(result.stdout), strict=True):
        assert parsed == (json.loads(json.dumps(document)) or None)


def test_yaml11_words_and_numbers_are_quoted() -> None:
    for word in ["yes", "No", "on", "OFF", "true", "null", "~", "0644", "10:30", "1e3", "-1"]:
        assert scalar(word).startswith('"'), word
    assert scalar("root:root") == "root:root"
    assert scalar("A\n") == '"A\\n"'
    assert dump({"NO": None, "write_files": []}) == '"NO": null\nwrite_files: []\n'
    assert scalar("/etc/mesos/zk") == "/etc/mesos/zk"

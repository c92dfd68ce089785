"""Random and mutated configs: the loader answers with a ConfigError or a model, never a crash."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from builder.config.load import embedded_config_dir, load_config
from builder.errors import ConfigError

FILES = ["os.yaml", "cluster.yaml", "roles/master.yaml", "roles/slave.yaml"]

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=30),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _load(directory: Path) -> None:
    problems = []
    try:
        load_config(directory)
    except ConfigError as exc:
        problems = exc.problems
        if not problems:
            raise AssertionError("a ConfigError without problems") from exc
    for problem in problems:
        assert "\n" not in str(problem), problem


def _copy() -> Path:
    target = Path(tempfile.mkdtemp(prefix="builder-prop-")) / "roles-config"
    shutil.copytree(embedded_config_dir(), target, ignore=shutil.ignore_patterns("__*"))
    return target


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(FILES), text=st.text(max_size=400))
@example(name="os.yaml", text="0\t")  # libyaml: the number 0; the line-keeping parser: an error
@example(name="os.yaml", text="&:")  # libyaml: an error; the line-keeping parser: nothing
def test_arbitrary_text_in_any_file(name: str, text: str) -> None:
    directory = _copy()
    try:
        (directory / name).write_text(text)
        _load(directory)
    finally:
        shutil.rmtree(directory.parent)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(FILES),
    data=st.data(),
)
def test_mutated_default_config(name: str, data: st.DataObject) -> None:
    from ruamel.yaml import YAML

    directory = _copy()
    try:
        path = directory / name
        yaml = YAML(typ="rt", pure=True)
        tree = yaml.load(path.read_text())
        node = tree
        # Walk down a random path, then replace, delete or add a value there.
        while isinstance(node, dict | list) and node and data.draw(st.booleans()):
            key = data.draw(
                st.sampled_from(list(node) if isinstance(node, dict) else range(len(node)))
            )
            child = node[key]
            if not isinstance(child, dict | list):
                break
            node = child
        if isinstance(node, dict):
            action = data.draw(st.sampled_from(["replace", "delete", "add"]))
            key = data.draw(st.sampled_from(list(node))) if node else "x"
            if action == "replace" or not node:
                node[key] = data.draw(yaml_values)
            elif action == "delete":
                del node[key]
            else:
                node[data.draw(st.text(max_size=8))] = data.draw(yaml_values)
        elif isinstance(node, list) and node:
            node[data.draw(st.integers(0, len(node) - 1))] = data.draw(yaml_values)
        with path.open("w") as handle:
            yaml.dump(tree, handle)
        _load(directory)
    finally:
        shutil.rmtree(directory.parent)

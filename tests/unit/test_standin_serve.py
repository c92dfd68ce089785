"""The node stand-in's daemons take their flags from the command line their package's
launcher builds, as the real ones do (tests/fixtures/standin/files/serve.py): Mesos'
flag syntax with stout's `file://` fetch, Marathon's and Chronos' Scallop syntax and
their MESOSPHERE_HTTP_CREDENTIALS. Each is also shown refusing what the real one refuses."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO


def _serve() -> ModuleType:
    path = REPO / "tests" / "fixtures" / "standin" / "files" / "serve.py"
    spec = importlib.util.spec_from_file_location("standin_serve", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serve = _serve()


def test_mesos_flags_fetch_a_file_value_except_for_a_path_flag(tmp_path: Path) -> None:
    url = tmp_path / "zk.url"
    url.write_text("zk://mesos:pw@test166:2181/mesos")
    credentials = tmp_path / "credentials.json"
    flags = serve.mesos_flags(
        [f"--zk=file://{url}", f"--credentials=file://{credentials}", "--quorum=1",
         "--authenticate_agents", "--no-authenticate_http_readwrite"],
        "mesos-master",
        serve.MASTER_PATH_FLAGS,
    )  # fmt: skip
    assert flags == {
        "zk": "zk://mesos:pw@test166:2181/mesos",  # the file's content, every byte
        "credentials": f"file://{credentials}",  # a Path flag keeps its value (stout)
        "quorum": "1",
        "authenticate_agents": "true",
        "authenticate_http_readwrite": "false",
    }


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--quorum=1", "--quorum=2"], "Duplicate flag 'quorum' on command line"),
        (["--zk=file:///nonexistent/zk"], "Error reading file '/nonexistent/zk'"),
        (["quorum=1"], "unexpected argument 'quorum=1'"),
    ],
)
def test_mesos_flags_refused(
    args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        serve.mesos_flags(args, "mesos-master", serve.MASTER_PATH_FLAGS)
    assert error in capsys.readouterr().err


def test_scallop_flags_take_a_value_or_stand_alone() -> None:
    flags = serve.scallop_flags(
        ["--zk", "zk://h:2181/marathon", "--mesos_authentication", "--hostname", "test166"],
        "marathon",
        serve.MARATHON_BOOLEANS,
    )
    assert flags == {
        "zk": "zk://h:2181/marathon",
        "mesos_authentication": "true",
        "hostname": "test166",
    }


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--hostname"], "Option 'hostname' needs one argument"),
        (["--hostname", "--zk", "z"], "Option 'hostname' needs one argument"),
        (["--zk", "a", "b"], "Excess arguments provided: 'b'"),  # a value split on a blank
        (["--zk", "a", "--zk", "b"], "Option 'zk' is given more than once"),
    ],
)
def test_scallop_flags_refused(
    args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        serve.scallop_flags(args, "marathon", serve.MARATHON_BOOLEANS)
    assert error in capsys.readouterr().err

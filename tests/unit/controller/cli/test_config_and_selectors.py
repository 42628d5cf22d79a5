from pathlib import Path

import pytest

from controller.api.errors import InputError
from controller.cli.selectors import parse_selector
from controller.store.client_config import resolve


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    path = tmp_path / "client.yaml"
    path.write_text("endpoints: [https://10.0.0.1:2379]\ncluster: from-file\ntimeout: 2s\n")
    env = {"VIGIL_CONFIG": str(path)}
    cfg = resolve(environ=env)
    assert (cfg.endpoints, cfg.cluster, cfg.timeout) == (("https://10.0.0.1:2379",), "from-file", 2)
    cfg = resolve(environ={**env, "VIGIL_CLUSTER": "from-env"})
    assert cfg.cluster == "from-env"
    cfg = resolve(
        environ={**env, "VIGIL_CLUSTER": "from-env"},
        cluster="from-flag",
        endpoints="http://127.0.0.1:1,http://127.0.0.1:2",
    )
    assert cfg.cluster == "from-flag"
    assert cfg.endpoints == ("http://127.0.0.1:1", "http://127.0.0.1:2")


def test_bad_client_config_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "client.yaml"
    path.write_text("endpoint: [x]\n")
    with pytest.raises(InputError, match=r"client config .*client.yaml: endpoint: unknown field"):
        resolve(config_path=str(path), environ={})
    path.write_text("cluster: [\n")
    with pytest.raises(InputError, match="invalid YAML"):
        resolve(config_path=str(path), environ={})
    with pytest.raises(InputError, match="no such file"):
        resolve(config_path=str(tmp_path / "missing.yaml"), environ={})
    with pytest.raises(InputError, match=r"needs a scheme: http://10.0.0.1:2379"):
        resolve(endpoints="10.0.0.1:2379", environ={"VIGIL_CONFIG": "/dev/null"})
    with pytest.raises(InputError, match="timeout: invalid duration"):
        resolve(timeout="5", environ={"VIGIL_CONFIG": "/dev/null"})


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("app=pg", {"app": "pg"}, True),
        ("app=pg", {"app": "web"}, False),
        ("app!=pg", {}, True),
        ("tier in (db, web)", {"tier": "web"}, True),
        ("tier notin (db,web)", {"tier": "web"}, False),
        ("app,!legacy", {"app": "x"}, True),
        ("app,!legacy", {"app": "x", "legacy": "1"}, False),
        ("app==pg,tier in (db)", {"app": "pg", "tier": "db"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_selector(selector)(labels) is matches


def test_bad_selector_is_explained() -> None:
    with pytest.raises(InputError, match=r"invalid label selector term 'a=b=c'"):
        parse_selector("a=b=c")

"""Configuration: files, then environment, then flags; bad values are ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cuefarm import config
from cuefarm.config import (ConfigError, RqdConfig, SupervisorConfig, config_files, data_dir,
                            load, parse_address)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_without_files_or_environment():
    cfg = load(SupervisorConfig, "supervisor", files=[], environ={})
    assert cfg == SupervisorConfig()
    assert cfg.port == config.DEFAULT_PORT


def test_file_then_environment_then_overrides(tmp_path):
    system = write(tmp_path, "system.toml", "[supervisor]\nport = 1000\nhost_expiry = 5.0\n"
                                            "log_level = 'DEBUG'\n")
    user = write(tmp_path, "user.toml", "[supervisor]\nport = 1100\n[rqd]\nslots = 3\n")
    files = [system, user, tmp_path / "missing.toml"]
    env = {"CUEFARM_SUPERVISOR_PORT": "2000", "CUEFARM_SUPERVISOR_RELEASE_AFTER": "30"}

    assert load(SupervisorConfig, "supervisor", files=[system], environ={}).port == 1000
    assert load(SupervisorConfig, "supervisor", files=files, environ={}).port == 1100
    cfg = load(SupervisorConfig, "supervisor", files=files, environ=env)
    assert (cfg.port, cfg.host_expiry, cfg.release_after, cfg.log_level) == (2000, 5.0, 30.0,
                                                                             "DEBUG")
    cfg = load(SupervisorConfig, "supervisor", {"port": 3000, "db": None}, files=files,
               environ=env)
    assert cfg.port == 3000
    assert cfg.db == ""  # None means "not given" and leaves the lower layers alone
    assert load(RqdConfig, "rqd", files=files, environ={}).slots == 3


def test_environment_values_are_coerced():
    env = {"CUEFARM_RQD_SUPERVISORS": "a:1, b:2,,", "CUEFARM_RQD_SLOTS": "8",
           "CUEFARM_RQD_HEARTBEAT_INTERVAL": "0.5", "CUEFARM_RQD_NAME": "node7"}
    cfg = load(RqdConfig, "rqd", files=[], environ=env)
    assert cfg.supervisors == ["a:1", "b:2"]
    assert (cfg.slots, cfg.heartbeat_interval, cfg.name) == (8, 0.5, "node7")


def test_lists_from_files(tmp_path):
    path = write(tmp_path, "c.toml", "[rqd]\nsupervisors = ['h1:9770', 'h2:9770']\n")
    assert load(RqdConfig, "rqd", files=[path], environ={}).supervisors == ["h1:9770", "h2:9770"]


def test_environment_is_read_from_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("CUEFARM_SUPERVISOR_DISPATCH_BATCH", "17")
    assert load(SupervisorConfig, "supervisor", files=[]).dispatch_batch == 17


@pytest.mark.parametrize("text", [
    "[supervisor]\nportt = 1\n",                 # unknown key
    "[supervisor]\nport = 'many'\n",             # not a number
    "[supervisor]\nport = true\n",               # bool for int
    "[supervisor]\nhost_expiry = 'soon'\n",      # not a float
    "[supervisor\nport = 1\n",                   # not TOML
    "[rqd]\nsupervisors = 5\n",                  # not a list
], ids=["unknown-key", "str-int", "bool-int", "str-float", "bad-toml", "int-list"])
def test_bad_file_values(tmp_path, text):
    path = write(tmp_path, "bad.toml", text)
    section = "rqd" if text.startswith("[rqd]") else "supervisor"
    cls = RqdConfig if section == "rqd" else SupervisorConfig
    with pytest.raises(ConfigError) as info:
        load(cls, section, files=[path], environ={})
    assert str(path) in str(info.value)


def test_undecodable_file_is_a_config_error(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe[supervisor]")
    with pytest.raises(ConfigError):
        load(SupervisorConfig, "supervisor", files=[path], environ={})


@pytest.mark.parametrize("name,value", [
    ("CUEFARM_SUPERVISOR_PORT", "abc"),
    ("CUEFARM_SUPERVISOR_PORT", "1e3"),
    ("CUEFARM_SUPERVISOR_PORT", ""),
    ("CUEFARM_SUPERVISOR_HOST_EXPIRY", "ten"),
])
def test_bad_environment_values(name, value):
    with pytest.raises(ConfigError) as info:
        load(SupervisorConfig, "supervisor", files=[], environ={name: value})
    assert name in str(info.value)


def test_bad_override():
    with pytest.raises(ConfigError) as info:
        load(SupervisorConfig, "supervisor", {"port": "eighty"}, files=[], environ={})
    assert "--port" in str(info.value)


def test_float_for_int_is_refused(tmp_path):
    path = write(tmp_path, "c.toml", "[supervisor]\nport = 9770.5\n")
    with pytest.raises(ConfigError):
        load(SupervisorConfig, "supervisor", files=[path], environ={})


def test_unknown_override_is_a_config_error():
    with pytest.raises(ConfigError):
        load(SupervisorConfig, "supervisor", {"nope": 1}, files=[], environ={})


def test_rqd_resolve_fills_machine_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("CUEFARM_DATA_DIR", str(tmp_path))
    cfg = RqdConfig(name="node1").resolve()
    assert cfg.state_dir == str(tmp_path / "rqd" / "node1")
    assert cfg.log_dir == str(tmp_path / "rqd" / "node1" / "logs")
    assert RqdConfig().resolve().name  # the hostname


def test_data_dir_and_config_files_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CUEFARM_DATA_DIR", str(tmp_path / "data"))
    assert data_dir() == tmp_path / "data"
    monkeypatch.delenv("CUEFARM_DATA_DIR")
    assert data_dir().name == "cuefarm"
    monkeypatch.setenv("CUEFARM_CONFIG", f"{tmp_path / 'a.toml'}:{tmp_path / 'b.toml'}")
    assert config_files() == [tmp_path / "a.toml", tmp_path / "b.toml"]
    monkeypatch.delenv("CUEFARM_CONFIG")
    assert config_files()[-1].name == "cuefarm.toml"


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:9770", ("127.0.0.1", 9770)),
    ("farm.example.com:1234", ("farm.example.com", 1234)),
    ("tcp://host:5", ("host", 5)),
    ("  host:80  ", ("host", 80)),
    ("justahost", ("justahost", config.DEFAULT_PORT)),
    ("[::1]:9770", ("::1", 9770)),
    ("host:65533", ("host", 65533)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", [
    "", "   ", ":9770", "host:", "host:abc", "host:0", "host:-1", "host:65534", "host:99999",
    "host:\u0663", "host:9770x", "tcp://",
])
def test_parse_address_refuses(text):
    with pytest.raises(ConfigError, match="not a supervisor address"):
        parse_address(text)


@pytest.mark.parametrize("given, read", [
    ("postgres://u@db/farm", "postgresql://u@db/farm"),
    ("postgres+psycopg2://u@db/farm", "postgresql+psycopg2://u@db/farm"),
    ("postgresql://u@db/farm", "postgresql://u@db/farm"),
    ("sqlite:////tmp/postgres://x.db", "sqlite:////tmp/postgres://x.db"),
])
def test_database_url_reads_postgres_as_postgresql(given, read):
    assert config.database_url(given) == read


def test_an_rqd_name_or_tag_longer_than_the_supervisor_keeps_is_refused_at_start():
    with pytest.raises(ConfigError, match="name is 257 characters long; at most 256"):
        RqdConfig(name="n" * 257).resolve()
    with pytest.raises(ConfigError, match="tags: 'tttt.*65 characters long"):
        RqdConfig(name="node1", tags=["gpu", "t" * 65]).resolve()
    assert RqdConfig(name="n" * 256, tags=["t" * 64]).resolve().tags == ["t" * 64]

"""A client given several supervisors (sharing one farm) moves on when one does not answer."""

from __future__ import annotations

import pytest

from cuefarm.client import Client, CueFarmError, Unreachable, parse_addresses
from cuefarm.config import ConfigError
from tests.farm import free_port_block, run_cli


def test_addresses_parse_one_or_several():
    assert parse_addresses("a:1") == [("a", 1)]
    assert parse_addresses(" a:1, b:2 ,") == [("a", 1), ("b", 2)]
    with pytest.raises(ConfigError):
        parse_addresses(" , ")
    with pytest.raises(CueFarmError, match="b:nope"):
        Client("a:1,b:nope")


def test_a_supervisor_that_does_not_answer_is_passed_over(sqlite_farm):
    dead = f"127.0.0.1:{free_port_block(1)}"
    c = Client(f"{dead},{sqlite_farm.address}", connect_timeout=0.5)
    try:
        assert c.ping()["version"]
        assert c.current == sqlite_farm.address          # and it stays with the live one
        assert c.jobs() == []
    finally:
        c.close()
    result = run_cli(f"{dead},{sqlite_farm.address}", "jobs")
    assert result.exit_code == 0, result.output


def test_none_answering_says_so_naming_each(tmp_path):
    dead = [f"127.0.0.1:{free_port_block(1)}" for _ in range(2)]
    c = Client(",".join(dead), connect_timeout=0.3)
    with pytest.raises(Unreachable, match="cannot connect to any of the supervisors at") as info:
        c.ping()
    assert all(d in str(info.value) for d in dead)

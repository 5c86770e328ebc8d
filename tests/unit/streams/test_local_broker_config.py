"""``streams.local_broker``: a data directory's ports are reused, bad or busy ones refused."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streams.errors import LocalBrokerError
from streams.local_broker import LocalKafka, _ports, _server_properties, port_free


def test_existing_server_properties_keep_their_ports(tmp_path: Path) -> None:
    (tmp_path / "server.properties").write_text(_server_properties(tmp_path, 41001, 41002))
    broker = LocalKafka(tmp_path)
    broker._config()
    assert (broker.broker_port, broker._controller_port) == (41001, 41002)
    assert broker.bootstrap_servers == "127.0.0.1:41001"
    assert not broker.formatted


def test_a_new_directory_gets_free_ports_written_once(tmp_path: Path) -> None:
    first = LocalKafka(tmp_path)
    first._config()
    again = LocalKafka(tmp_path)
    again._config()
    assert first.broker_port == again.broker_port != 0
    assert _ports(tmp_path / "server.properties") == (first.broker_port, first._controller_port)


def test_a_properties_file_without_listeners_is_refused(tmp_path: Path) -> None:
    (tmp_path / "server.properties").write_text("node.id=1\n")
    with pytest.raises(LocalBrokerError, match="no PLAINTEXT and CONTROLLER listeners"):
        LocalKafka(tmp_path)._config()


def test_a_busy_port_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not port_free(port)
        (tmp_path / "server.properties").write_text(_server_properties(tmp_path, port, port + 1))
        broker = LocalKafka(tmp_path)
        broker._config()
        with pytest.raises(LocalBrokerError, match="already running"):
            broker._check_ports_free()

"""Faults on one node: kill -9 under load, clean restarts, and on-disk corruption (DESIGN.md §6, §7).

- `--fsync always`: every write a client saw acknowledged survives `kill -9` (writer threads record
  each acknowledged key; the node is killed mid-load).
- `--fsync everysec` and `no`: a process crash (not a power cut) loses nothing acknowledged
  either, since the WAL buffer is written to the OS before replies go out (docs/contracts.md).
- SIGTERM exits 0 and a restart keeps everything, including data that went to SSTables and
  tables rewritten by `DEBUG COMPACT`.
- A flipped byte in an SSTable or in the middle of the WAL stops the node (exit status 2 when
  found at startup, resp_kv/node.py) with a log line naming the file, never wrong data; a torn
  WAL tail is truncated and the node serves the prefix before it.

Files are found by their documented names (`*.sst`, `*.log`, resp_kv/storage/format.py) under
the node's data dir.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis

from tests.helpers.harness import HOST, ClusterHarness
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.fault

EXIT_CORRUPTION = 2          # resp_kv/node.py: storage corruption found while opening


def _start_node(tmp_path: Path, fsync: str, extra_args=()) -> ClusterHarness:
    harness = ClusterHarness(tmp_path, size=1, fsync=fsync, extra_args=list(extra_args))
    harness.start_all()
    harness.wait_ready(timeout_s=30)
    return harness


@pytest.fixture
def nodes():
    """Harnesses made by a test; every process is SIGKILLed by pid at teardown."""
    made: list[ClusterHarness] = []
    yield made
    for harness in made:
        harness.kill_all()


def _check_all(client: redis.Redis, expected: dict[bytes, bytes | None]) -> None:
    keys = list(expected)
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        got = client.mget(chunk)
        wrong = [(k, expected[k], g) for k, g in zip(chunk, got) if g != expected[k]]
        assert not wrong, f"{len(wrong)} keys differ, first: {wrong[:3]}"


def _files(root: Path, suffix: str) -> list[Path]:
    return sorted(p for p in root.rglob(f"*{suffix}") if p.is_file())


def _flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def _exit_code_or_ready(harness: ClusterHarness, timeout_s: float) -> int | None:
    """Wait until node 0 either exits (return its code) or answers PING (return None)."""
    node = harness.nodes[0]

    def settled():
        if node.popen.poll() is not None:
            return ("exited", node.popen.returncode)
        with redis.Redis(host=HOST, port=harness.port(), socket_timeout=2, socket_connect_timeout=2) as c:
            return ("ready", None) if c.ping() else None

    state, code = wait_until(settled, timeout_s, "node to exit or answer PING")
    return code if state == "exited" else None


def _write_in_threads(harness: ClusterHarness, threads: int, stop: threading.Event,
                      acked: list[tuple[bytes, bytes]]) -> list[threading.Thread]:
    def writer(tid: int) -> None:
        client = redis.Redis(host=HOST, port=harness.port(), socket_timeout=10, protocol=2)
        i = 0
        try:
            while not stop.is_set():
                key, value = f"t{tid}:{i}".encode(), f"value-{tid}-{i}-".encode() * 8
                if client.set(key, value) is not True:
                    raise AssertionError(f"SET {key!r} not acknowledged")
                acked.append((key, value))              # list.append is atomic under the GIL
                i += 1
        except (redis.ConnectionError, redis.TimeoutError):
            pass                                        # the node was killed under us
        finally:
            client.close()

    workers = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    return workers


@pytest.mark.parametrize("fsync", ["always", "everysec", "no"])
def test_every_acknowledged_write_survives_kill_9(tmp_path: Path, nodes, fsync: str) -> None:
    harness = _start_node(tmp_path, fsync)
    nodes.append(harness)
    acked: list[tuple[bytes, bytes]] = []
    stop = threading.Event()
    workers = _write_in_threads(harness, 4, stop, acked)
    wait_until(lambda: len(acked) >= 2000 or not any(w.is_alive() for w in workers), 120,
               "2000 acknowledged SETs")
    assert len(acked) >= 2000, "writers stopped early"
    harness.kill(0)                                      # SIGKILL mid-load
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    snapshot = dict(acked)

    harness.start(0)
    harness.wait_ready(timeout_s=30)
    client = harness.client(0, protocol=2)
    _check_all(client, snapshot)
    assert client.dbsize() >= len(snapshot)


def test_clean_sigterm_restart_keeps_everything_including_sstables(tmp_path: Path, nodes) -> None:
    harness = _start_node(tmp_path, "everysec", ["--memtable-limit", "1mb"])
    nodes.append(harness)
    client = harness.client(0, protocol=2)
    model: dict[bytes, bytes | None] = {}
    pipe = client.pipeline(transaction=False)
    for i in range(4000):
        key, value = f"key:{i:05d}".encode(), (f"{i}:".encode() * 200)[:1000]
        pipe.set(key, value)
        model[key] = value
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    for i in range(0, 4000, 8):                          # overwrite some, delete some
        key = f"key:{i:05d}".encode()
        client.set(key, b"overwritten")
        model[key] = b"overwritten"
    for i in range(1, 4000, 8):
        key = f"key:{i:05d}".encode()
        assert client.delete(key) == 1
        model[key] = None
    client.set("with-ttl", "t", ex=1000)
    wait_until(lambda: int(client.info("storage")["sstables"]) >= 1, 60, "a memtable flushed to an SSTable")
    assert int(client.info("storage")["flushes"]) >= 1
    live = sum(v is not None for v in model.values()) + 1

    harness.stop(0)                                      # SIGTERM; asserts exit code 0
    assert _files(harness.data_dir(0), ".sst"), "no SSTable on disk after a 4 MB load"
    harness.start(0)
    harness.wait_ready(timeout_s=30)
    client = harness.client(0, protocol=2)
    _check_all(client, model)
    assert client.dbsize() == live
    assert 900 <= client.ttl("with-ttl") <= 1000

    assert client.execute_command("DEBUG", "COMPACT") in (b"OK", "OK", True)   # flush + full compaction
    _check_all(client, model)
    harness.stop(0)                                      # and once more, from compacted tables
    harness.start(0)
    harness.wait_ready(timeout_s=30)
    client = harness.client(0, protocol=2)
    _check_all(client, model)
    assert client.dbsize() == live


def test_corrupted_sstable_stops_the_node_naming_the_file(tmp_path: Path, nodes) -> None:
    harness = _start_node(tmp_path, "everysec", ["--memtable-limit", "1mb"])
    nodes.append(harness)
    client = harness.client(0, protocol=2)
    model = {f"key:{i:05d}".encode(): (f"{i}:".encode() * 200)[:1000] for i in range(3000)}
    for start in range(0, 3000, 500):
        client.mset({k: model[k] for k in list(model)[start:start + 500]})
    # A stop does not wait for frozen memtables (the WAL has them): wait for a flush first.
    wait_until(lambda: int(client.info("storage")["sstables"]) >= 1, 60,
               "a memtable flushed to an SSTable")
    harness.stop(0)
    tables = _files(harness.data_dir(0), ".sst")
    assert tables, f"no .sst file under {harness.data_dir(0)}"
    victim = max(tables, key=lambda p: p.stat().st_size)
    _flip_byte(victim, victim.stat().st_size // 2)      # inside a data block of the biggest table

    harness.start(0)
    code = _exit_code_or_ready(harness, 30)
    wrong = []
    if code is None:
        # The node opened (a data block is only checked when read): reading every key must never
        # return wrong data, and hitting the bad block must stop the node.
        reader = harness.client(0, protocol=2, socket_timeout=5)
        for key, value in model.items():
            if harness.nodes[0].popen.poll() is not None:
                break                                    # it stopped: nothing more to read
            try:
                got = reader.get(key)                    # redis-py reconnects after an error
            except (redis.ResponseError, redis.ConnectionError, redis.TimeoutError):
                continue
            if got != value:
                wrong.append((key, got))
        assert not wrong, f"served wrong data from a corrupted table: {wrong[:3]}"
        wait_until(lambda: harness.nodes[0].popen.poll() is not None, 15,
                   "the node to stop after reading a corrupted block")
        code = harness.nodes[0].popen.returncode
    else:
        assert code == EXIT_CORRUPTION, (
            f"corruption found at startup must stop the node with exit {EXIT_CORRUPTION} and a logged "
            f"message (resp_kv/node.py), got exit {code}:\n{harness.nodes[0].log_tail()}")
    assert code != 0, "the node exited 0 on a corrupted SSTable"
    assert victim.name in harness.log(0), f"no log line names {victim.name}:\n{harness.nodes[0].log_tail()}"


def _write_marked(client: redis.Redis, count: int) -> list[tuple[bytes, bytes]]:
    written = []
    for i in range(count):
        key, value = f"w{i:04d}".encode(), b"MARK%05d" % i + b"x" * 200
        assert client.set(key, value) is True        # one SET at a time: one WAL record each
        written.append((key, value))
    return written


def test_corrupted_wal_middle_stops_the_node_naming_the_file(tmp_path: Path, nodes) -> None:
    harness = _start_node(tmp_path, "always")
    nodes.append(harness)
    _write_marked(harness.client(0, protocol=2), 300)
    harness.kill(0)                                      # the WAL is not replayed into a table yet
    marker = b"MARK%05d" % 150
    logs = [p for p in _files(harness.data_dir(0), ".log") if marker in p.read_bytes()]
    assert logs, f"no WAL segment (*.log) under {harness.data_dir(0)} holds {marker!r}"
    wal = logs[0]
    offset = wal.read_bytes().index(marker) + 50         # a value byte of a record mid-file
    assert offset < wal.stat().st_size - 10_000, "the flipped record must not be near the tail"
    _flip_byte(wal, offset)

    harness.start(0)
    code = _exit_code_or_ready(harness, 30)
    assert code is not None, "the node started and served from a WAL with a bad record mid-file"
    assert code == EXIT_CORRUPTION, f"exit {code}, expected {EXIT_CORRUPTION}:\n{harness.nodes[0].log_tail()}"
    assert wal.name in harness.log(0), f"no log line names {wal.name}:\n{harness.nodes[0].log_tail()}"


def test_torn_wal_tail_is_truncated_and_the_prefix_served(tmp_path: Path, nodes) -> None:
    harness = _start_node(tmp_path, "always")
    nodes.append(harness)
    written = _write_marked(harness.client(0, protocol=2), 300)
    harness.kill(0)
    logs = [p for p in _files(harness.data_dir(0), ".log") if p.stat().st_size > 0]
    assert logs, f"no non-empty WAL segment under {harness.data_dir(0)}"
    wal = max(logs, key=lambda p: p.name)                # the newest segment holds the tail
    assert b"MARK%05d" % 299 in wal.read_bytes()
    with open(wal, "r+b") as f:
        f.truncate(wal.stat().st_size - 7)               # cut into the last record

    harness.start(0)
    assert _exit_code_or_ready(harness, 30) is None, f"node did not start:\n{harness.nodes[0].log_tail()}"
    client = harness.client(0, protocol=2)
    got = client.mget([k for k, _ in written])
    present = [i for i, (value, (_, expected)) in enumerate(zip(got, written)) if value is not None]
    assert present == list(range(len(present))), "what survives a torn tail must be a prefix"
    assert len(present) >= len(written) - 1, f"only {len(present)} of {len(written)} survived"
    assert all(got[i] == written[i][1] for i in present)
    assert client.set("after", "ok") is True and client.get("after") == b"ok"

"""Free loopback TCP ports for test and bench processes.

Ports are picked at random below the kernel's ephemeral range (so an outgoing connection cannot
grab one between our check and the node's bind), checked by binding them, and never handed out
twice in one Python process, so a node's client port can never equal another node's peer port.
"""

from __future__ import annotations

import random
import socket
import threading

_LOW, _HIGH = 20000, 32000          # below Linux's default ip_local_port_range (32768-60999)
_handed_out: set[int] = set()
_lock = threading.Lock()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return `count` distinct ports that are bindable on `host` now and new to this process."""
    high = min(_HIGH, _ephemeral_low())
    rng = random.SystemRandom()
    ports: list[int] = []
    with _lock:
        for _ in range(count * 200):
            if len(ports) == count:
                break
            port = rng.randrange(_LOW, high)
            if port in _handed_out or not _bindable(port, host):
                continue
            _handed_out.add(port)
            ports.append(port)
    if len(ports) < count:
        raise RuntimeError(f"could not find {count} free ports on {host}")
    return ports


def free_port(host: str = "127.0.0.1") -> int:
    """Return one free port (see free_ports)."""
    return free_ports(1, host)[0]

"""A one-shot TCP rendezvous: rank 0 hands a few bytes (the NCCL unique id) to every other rank.

Used when the processes were not started by MPI (torchrun-style launchers that only set
RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT). Every step is bounded by the timeout.
"""

import socket
import struct
import time

from lepton.distributed.work import DistTimeoutError


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("rendezvous: the peer closed the connection")
        data += chunk
    return data


def share_bytes(payload, rank, world_size, addr, port, timeout):
    """Rank 0 passes `payload`; every rank returns rank 0's payload."""
    deadline = time.monotonic() + timeout
    if world_size == 1:
        return payload
    if rank == 0:
        with socket.create_server(("", port), reuse_port=False) as server:
            server.settimeout(timeout)
            waiting = world_size - 1
            while waiting:
                try:
                    conn, _ = server.accept()
                except socket.timeout:
                    raise DistTimeoutError(f"rendezvous: {waiting} of {world_size - 1} ranks did not connect to port "
                                           f"{port} within {timeout:g} s") from None
                with conn:
                    conn.sendall(struct.pack("!I", len(payload)) + payload)
                waiting -= 1
        return payload
    while True:
        try:
            with socket.create_connection((addr, port), timeout=max(0.1, deadline - time.monotonic())) as conn:
                conn.settimeout(max(0.1, deadline - time.monotonic()))
                (n,) = struct.unpack("!I", _recv_exact(conn, 4))
                return _recv_exact(conn, n)
        except (ConnectionRefusedError, socket.timeout, OSError) as e:
            if time.monotonic() > deadline:
                raise DistTimeoutError(f"rendezvous: rank {rank} could not reach rank 0 at {addr}:{port} within "
                                       f"{timeout:g} s ({e})") from None
            time.sleep(0.05)

"""A TLS-terminating SMTP proxy that can lose the server's answer to a message.

Asked to, it forwards a whole message (through the final ".") to the real server, reads the
server's reply, and closes the client's connection without passing the reply on: exactly the
"connection cut after DATA" a sender cannot tell from a lost message.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from typing import BinaryIO


class DropAfterDataProxy:
    def __init__(
        self,
        *,
        upstream_port: int,
        server_context: ssl.SSLContext,
        client_context: ssl.SSLContext,
    ) -> None:
        self.upstream_port = upstream_port
        self.server_context = server_context
        self.client_context = client_context
        self.drops_left = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)

    def drop_next_reply(self) -> None:
        with self._lock:
            self.drops_left += 1

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drops_left:
                self.drops_left -= 1
                self.dropped += 1
                return True
            return False

    def _serve(self) -> None:
        while True:
            try:
                raw, _address = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay_quietly, args=(raw,), daemon=True).start()

    def _relay_quietly(self, raw: socket.socket) -> None:
        try:
            with (
                self.server_context.wrap_socket(raw, server_side=True) as client,
                socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10) as plain,
                self.client_context.wrap_socket(plain, server_hostname="127.0.0.1") as upstream,
                client.makefile("rb") as from_client,
                upstream.makefile("rb") as from_upstream,
            ):
                self._relay(client, from_client, upstream, from_upstream)
        except OSError:
            return

    def _relay(
        self,
        client: ssl.SSLSocket,
        from_client: BinaryIO,
        upstream: ssl.SSLSocket,
        from_upstream: BinaryIO,
    ) -> None:
        client.sendall(_reply(from_upstream))
        in_data = False
        while line := from_client.readline():
            upstream.sendall(line)
            if in_data and line != b".\r\n":
                continue
            reply = _reply(from_upstream)
            if in_data and self._take_drop():
                return  # The message is with the server; its answer is lost.
            client.sendall(reply)
            in_data = line.upper().startswith(b"DATA") and reply.startswith(b"354")


def _reply(source: BinaryIO) -> bytes:
    """One SMTP reply, all its lines ("250-…" continue, "250 …" ends)."""
    lines = b""
    while line := source.readline():
        lines += line
        if line[3:4] != b"-":
            break
    return lines

"""MLLP (HL7's Minimal Lower Layer Protocol over TCP): each message framed as
0x0B <message> 0x1C 0x0D, each answered with its ACK framed the same way.

There is no token on MLLP: a device is known by the identifier it was registered with, found in
MSH-3 (or OBX-18). Run it on a network only monitors and the interface engine can reach.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading

from flask import Flask

from ..extensions import db
from . import services

log = logging.getLogger(__name__)

START, END = b"\x0b", b"\x1c\x0d"
READ_TIMEOUT_S = 60  # an idle connection is closed (monitors reconnect)


def frame(message: str) -> bytes:
    return START + message.encode("utf-8") + END


class FrameTooLarge(Exception):
    pass


class FrameReader:
    """Split a byte stream into MLLP frames; bytes outside a frame are dropped."""

    def __init__(self, sock: socket.socket, limit: int):
        self.sock = sock
        self.limit = limit
        self.buffer = b""

    def next_frame(self) -> bytes | None:
        """The next message's bytes, None at end of stream; FrameTooLarge past the limit."""
        while True:
            start = self.buffer.find(START)
            if start >= 0:
                end = self.buffer.find(END, start)
                if end >= 0:
                    body = self.buffer[start + 1 : end]
                    self.buffer = self.buffer[end + len(END) :]
                    if len(body) > self.limit:
                        raise FrameTooLarge
                    return body
                if len(self.buffer) - start > self.limit + len(END):
                    raise FrameTooLarge
            else:
                self.buffer = b""
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk


def answer(app: Flask, body: bytes) -> str:
    """The ACK for one framed message, in its own app context and transaction."""
    raw = body.decode("utf-8", errors="replace")
    with app.app_context():
        try:
            from . import hl7

            envelope = hl7.read_envelope(raw)
        except hl7.Refused as refused:
            # Unknown sender: nothing is kept, but the raw message is logged.
            log.warning(
                "MLLP: unreadable message from an unknown sender: %s; raw: %r",
                refused.reason,
                raw[:2000],
            )
            return services.refusal(raw, "AR", refused.reason, 400, refused.error_code).ack
        device = services.device_for_identifiers(envelope.identifiers)
        if device is None:
            log.warning("MLLP: no active device has an identifier in %s", envelope.sender)
            reason = (
                f"No active device is registered with an identifier in MSH-3 {envelope.sender}."
            )
            return services.refusal(raw, "AR", reason, 401, "204").ack
        result = services.receive(device, raw, "mllp")
        db.session.commit()  # each message is its own unit of work, refusals kept
        return result.ack


class Handler(socketserver.BaseRequestHandler):
    server: Listener

    def handle(self) -> None:
        self.request.settimeout(READ_TIMEOUT_S)
        limit = services_limit(self.server.app)
        reader = FrameReader(self.request, limit)
        try:
            while True:
                try:
                    body = reader.next_frame()
                except FrameTooLarge:
                    reason = f"The message is larger than {limit} bytes."
                    with self.server.app.app_context():
                        ack = services.refusal("", "AR", reason, 413).ack
                    self.request.sendall(frame(ack))
                    return  # the rest of the stream cannot be trusted to be in step
                if body is None:
                    return
                self.request.sendall(frame(answer(self.server.app, body)))
        except (TimeoutError, ConnectionError):
            return


def services_limit(app: Flask) -> int:
    with app.app_context():
        return services.setting("HL7_MAX_BYTES")


class Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: Flask, host: str, port: int):
        self.app = app
        super().__init__((host, port), Handler)


def start_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0) -> Listener:
    """A listener serving in a background thread (tests, demos); stop with .shutdown()."""
    listener = Listener(app, host, port)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    return listener


def send(host: str, port: int, messages: list[str], timeout: float = 10) -> list[str]:
    """Send messages over one MLLP connection; the ACK of each, in order."""
    acks = []
    with socket.create_connection((host, port), timeout=timeout) as connection:
        reader = FrameReader(connection, 1024 * 1024)
        for message in messages:
            connection.sendall(frame(message))
            body = reader.next_frame()
            if body is None:
                raise ConnectionError("the listener closed the connection")
            acks.append(body.decode("utf-8", errors="replace"))
    return acks

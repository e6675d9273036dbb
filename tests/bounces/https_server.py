"""An https server on loopback, with a certificate the test CA signs: it plays SNS, serving
the signing certificate and answering subscription confirmations, and notes each request."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.bounces.certs import Issued, server_cert


class FakeSns:
    def __init__(self, ca: Issued, directory: Path, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        cert, key = server_cert(ca).write(directory, "sns-server")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                if path == "/confirm":
                    self._answer(200, b"<ConfirmSubscriptionResponse/>")
                elif path in owner.files:
                    self._answer(200, owner.files[path])
                else:
                    self._answer(404, b"not found")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""A minimal TCP server on loopback that records every line a client sends: an SMTP server
that offers exactly the extensions a test asks for, or a server of another protocol."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Sequence

HOST = "127.0.0.1"


class LineServer:
    """Answers like an SMTP server (greeting, EHLO with ``extensions``, 250 to the rest, a
    message after DATA), or only sends ``banner`` and reads, when ``smtp`` is False."""

    def __init__(
        self,
        extensions: Sequence[str] = (),
        *,
        smtp: bool = True,
        banner: bytes = b"",
        tls_context: ssl.SSLContext | None = None,
        inject: bytes = b"",
    ) -> None:
        self.extensions = list(extensions)
        self.tls_context = tls_context  # offers STARTTLS when given
        self.tls_lines: list[str] = []  # what came after STARTTLS
        self.inject = inject  # sent in clear right after STARTTLS's 220, as a MITM would
        self.smtp = smtp
        self.banner = banner
        self.lines: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> LineServer:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self._server = started.result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, HOST, 0)

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def commands(self) -> list[str]:
        """The command words the client sent (EHLO, AUTH, MAIL ...)."""
        return [line.split(" ", 1)[0].upper() for line in self.lines]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not self.smtp:
                writer.write(self.banner)
                await writer.drain()
                while line := await reader.readline():
                    self.lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
                return
            writer.write(b"220 line.test ESMTP\r\n")
            in_data = False
            secure = False
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if secure and not in_data:
                    self.tls_lines.append(text)
                if in_data:
                    if text == ".":
                        in_data = False
                        writer.write(b"250 2.0.0 Ok: queued\r\n")
                    continue
                self.lines.append(text)
                verb = text.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    offer = ["STARTTLS"] if self.tls_context and not secure else []
                    lines = ["line.test", *self.extensions, *offer]
                    reply = "".join(f"250-{x}\r\n" for x in lines[:-1]) + f"250 {lines[-1]}\r\n"
                    writer.write(reply.encode())
                elif verb == "AUTH":
                    writer.write(b"235 2.7.0 Authentication successful\r\n")
                elif verb == "DATA":
                    in_data = True
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                elif verb == "STARTTLS" and self.tls_context is not None:
                    writer.write(b"220 2.0.0 Ready to start TLS\r\n" + self.inject)
                    await writer.drain()
                    await writer.start_tls(self.tls_context)
                    secure = True
                    continue
                elif verb == "QUIT":
                    writer.write(b"221 Bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

"""One clear line, instead of a traceback, when a command cannot listen on its port."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

import click


@dataclass(frozen=True)
class Listen:
    """Where a command listens, and the option or setting that chooses each part."""

    host: str
    port: int
    port_choice: str
    host_choice: str = ""

    def problem(self, error: OSError) -> str | None:
        """What stops listening here, in one line that says what to do; None for errors
        that are not about the address."""
        where = f"{self.host}:{self.port}"
        other_host = f"; choose another host with {self.host_choice}" if self.host_choice else ""
        other_port = f"choose another port with {self.port_choice}"
        if isinstance(error, socket.gaierror):
            return f"cannot listen on {self.host!r}: {error.strerror}{other_host}"
        if error.errno == errno.EADDRINUSE:
            return (
                f"port {self.port} is in use ({where}: address already in use): stop what "
                f"listens there, or {other_port}"
            )
        if error.errno == errno.EACCES:
            return (
                f"no permission to listen on port {self.port} (ports below 1024 need "
                f"privileges): {other_port}"
            )
        if error.errno == errno.EADDRNOTAVAIL:
            return f"cannot listen on {where}: not an address of this machine{other_host}"
        return None

    def failed(self, error: OSError) -> click.ClickException:
        """`error` as the one-line ClickException, or re-raised when it is not about the
        address."""
        problem = self.problem(error)
        if problem is None:
            raise error
        return click.ClickException(problem)

    def check(self) -> None:
        """Bind the address for a moment, as the server will (SO_REUSEADDR, every address
        the host resolves to), so a port in use is one line before a server starts and
        fails with a traceback. Something may still take the port between this check and
        the server's start: a caller that can also turns the server's error into `failed`."""
        try:
            found = socket.getaddrinfo(
                self.host or None, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            for family, kind, proto, _, address in found:
                with socket.socket(family, kind, proto) as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    probe.bind(address)
        except OSError as exc:
            raise self.failed(exc) from exc

"""``serve()``: the reference server (the same one as the ``cliproxy-server`` binary), in-process."""

from __future__ import annotations

from . import _native
from ._client import ConfigSource, load_config


class Server:
    """A running server. It runs on the native runtime's background threads until ``stop()`` (or the end of a
    ``with`` block); losing the handle does not stop it, as with a thread."""

    __slots__ = ("_native",)

    def __init__(self, native: _native.Server) -> None:
        self._native = native

    @property
    def host(self) -> str:
        return self._native.host

    @property
    def port(self) -> int:
        """The port listened on (the one the OS chose when ``port=0`` was asked for)."""
        return self._native.port

    @property
    def url(self) -> str:
        """``http://HOST:PORT``: the Anthropic base URL; OpenAI clients use ``url + "/v1"``."""
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._native.running

    def stop(self, drain: float = 5.0) -> None:
        """Stops accepting, lets open requests finish for up to ``drain`` seconds, then closes the rest."""
        self._native.stop(drain)

    def wait(self) -> None:
        """Blocks until ``stop()`` is called from another thread. Ctrl-C raises ``KeyboardInterrupt``."""
        self._native.wait()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<cliproxy.Server {self.url} {state}>"


def serve(config: ConfigSource, host: str = "127.0.0.1", port: int = 8317) -> Server:
    """Starts the reference server on ``host:port`` (``port=0``: any free port) and returns once it listens.

    ``config`` is what ``Client`` takes; its own ``host``/``port`` keys are not used. Without ``api-keys`` in
    the config the server refuses a non-loopback ``host``. Binding failures raise ``OSError``.
    """
    return Server(_native.serve(load_config(config, stacklevel=2), host, port))

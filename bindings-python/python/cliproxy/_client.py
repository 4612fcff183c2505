"""``Client`` and ``AsyncClient``: the core client of cliproxy, in-process.

Requests and answers are plain dicts in the shapes of the OpenAI Chat Completions and Anthropic Messages HTTP
APIs (what ``json.loads`` of the HTTP body gives). The native module moves JSON text and waits without holding
the GIL; everything Python-shaped happens here.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Type, TypeVar, Union

from . import _native
from ._errors import ConfigWarning

ConfigSource = Union[Mapping[str, Any], str, "os.PathLike[str]"]
"""A dict with the ``config.yaml`` keys, or the path of a YAML file."""

Headers = Optional[Mapping[str, str]]

_C = TypeVar("_C", bound="_Base")


def _json_default(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _warn(config: _native.Config, stacklevel: int) -> _native.Config:
    for message in config.warnings:
        warnings.warn(message, ConfigWarning, stacklevel=stacklevel + 1)
    return config


def load_config(config: Union[ConfigSource, _native.Config], stacklevel: int = 1) -> _native.Config:
    """Parses a config dict or YAML file; its warnings go to ``warnings`` as ``ConfigWarning``."""
    if isinstance(config, _native.Config):
        return config
    if isinstance(config, Mapping):
        return _warn(_native.Config.from_json(_dumps(dict(config))), stacklevel + 1)
    if isinstance(config, (str, bytes, os.PathLike)):
        return _warn(_native.Config.from_file(os.fsdecode(config)), stacklevel + 1)
    raise TypeError(f"config must be a dict or a path to a YAML file, not {type(config).__name__}")


def _request(fixed: Dict[str, Any], params: Dict[str, Any], extra_headers: Headers) -> Tuple[str, List[Tuple[str, str]]]:
    body = dict(fixed)
    body.update(params)
    headers = [(str(k), str(v)) for k, v in extra_headers.items()] if extra_headers else []
    return _dumps(body), headers


class _StreamBase:
    """What both stream kinds share: closing and the facts about the stream."""

    __slots__ = ("_native", "__weakref__")

    def __init__(self, native: _native.Stream) -> None:
        self._native = native

    def close(self) -> None:
        """Stops reading and cancels the upstream request. Idempotent."""
        self._native.close()

    @property
    def closed(self) -> bool:
        """Whether the stream ended, failed or was closed."""
        return self._native.closed

    @property
    def credential(self) -> str:
        """The id of the credential serving this stream."""
        return self._native.credential


class Stream(_StreamBase):
    """A streamed answer: iterate for the chunk (OpenAI) or event (Anthropic) dicts.

    Leaving early cancels the upstream request: ``close()``, the end of a ``with`` block, or the stream being
    garbage-collected (a ``for`` loop over ``client.chat(..., stream=True)`` left with ``break``).
    A failure after the stream started raises from the iteration.
    """

    __slots__ = ()

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> Dict[str, Any]:
        data = self._native.next()
        if data is None:
            raise StopIteration
        chunk: Dict[str, Any] = json.loads(data)
        return chunk

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncStream(_StreamBase):
    """A streamed answer for asyncio: ``async for`` over the chunk or event dicts; see ``Stream``."""

    __slots__ = ()

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self) -> Dict[str, Any]:
        data = await self._native.anext()
        if data is None:
            raise StopAsyncIteration
        chunk: Dict[str, Any] = json.loads(data)
        return chunk

    async def aclose(self) -> None:
        """``close()`` for ``contextlib.aclosing`` and other async cleanup protocols."""
        self.close()

    async def __aenter__(self) -> "AsyncStream":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class _Base:
    """What both clients share: construction and the state queries (instant, so synchronous on both)."""

    __slots__ = ("_native", "__weakref__")

    def __init__(self, config: ConfigSource) -> None:
        """``config``: a dict with the ``config.yaml`` keys, or the path of a YAML file (``str`` or
        ``os.PathLike``). Ignored keys are reported as ``cliproxy.ConfigWarning`` warnings; invalid
        configuration raises ``cliproxy.ConfigError``."""
        self._native = _native.Client(load_config(config, stacklevel=2))

    @classmethod
    def from_yaml(cls: Type[_C], text: str) -> _C:
        """A client from YAML text, as in ``config.yaml``."""
        return cls(_warn(_native.Config.from_yaml(text), 2))  # type: ignore[arg-type]

    def models(self) -> List[Dict[str, Any]]:
        """Every model some credential serves: ``[{"id", "providers"}]``, sorted by id."""
        return _list(self._native.models_json())

    def cooldowns(self) -> List[Dict[str, Any]]:
        """Active cooldowns, soonest first: ``[{"credential", "model", "until", "seconds_left", "reason"}]``
        (``until`` in seconds since the epoch; ``model`` is ``None`` when the whole credential rests)."""
        return _list(self._native.cooldowns_json())

    def reset_cooldowns(self, credential: Optional[str] = None, model: Optional[str] = None) -> int:
        """Clears cooldowns of one credential, one model, or all; returns how many were cleared."""
        return self._native.reset_cooldowns(credential, model)

    def usage(self) -> List[Dict[str, Any]]:
        """Per-credential counters: ``[{"credential", "provider", "requests", "failures", "input_tokens",
        "output_tokens", "quota"}]``."""
        return _list(self._native.usage_json())

    def credentials(self) -> List[Dict[str, Any]]:
        """The credentials (never their secrets): ``[{"id", "provider", "priority", "state", "reason",
        "expires_at"}]``."""
        return _list(self._native.credentials_json())


def _list(text: str) -> List[Dict[str, Any]]:
    items: List[Dict[str, Any]] = json.loads(text)
    return items


def _answer(out: Union[bytes, _native.Stream]) -> Any:
    if isinstance(out, bytes):
        return json.loads(out)
    return Stream(out)


def _async_answer(out: Union[bytes, _native.Stream]) -> Any:
    if isinstance(out, bytes):
        return json.loads(out)
    return AsyncStream(out)


class Client(_Base):
    """The cliproxy client, blocking. Safe to share across threads; usable after ``os.fork()``.

    Calls release the GIL while waiting, and Ctrl-C interrupts them (cancelling the upstream request).
    """

    __slots__ = ()

    def chat(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        extra_headers: Headers = None,
        **params: Any,
    ) -> Any:
        """An OpenAI Chat Completions request; ``params`` are the other body fields (``stream``, ``tools``,
        ``max_tokens``, ...). Returns the completion dict, or with ``stream=True`` a ``Stream`` of chunk dicts."""
        body, headers = _request({"model": model, "messages": list(messages)}, params, extra_headers)
        return _answer(self._native.send("openai", body, headers))

    def messages(
        self,
        *,
        model: str,
        max_tokens: int,
        messages: Iterable[Mapping[str, Any]],
        extra_headers: Headers = None,
        **params: Any,
    ) -> Any:
        """An Anthropic Messages request; ``params`` are the other body fields (``system``, ``stream``,
        ``tools``, ...). Returns the message dict, or with ``stream=True`` a ``Stream`` of event dicts."""
        fixed = {"model": model, "max_tokens": max_tokens, "messages": list(messages)}
        body, headers = _request(fixed, params, extra_headers)
        return _answer(self._native.send("anthropic", body, headers))

    def login(self, provider: str, **options: Any) -> _native.LoginFlow:
        """Starts an interactive login with ``provider``. Device logins: show the user ``verification_uri`` and
        ``user_code``. Authorization-code logins (``claude``; option ``callback_port``, 0 for any free port):
        send the user to ``verification_uri``; the browser comes back to ``redirect_uri``, where the login
        listens, or pass the code to ``complete()``. Then ``wait()`` for the new credential's id; it joins this
        client's pool at once."""
        return self._native.login(provider, _dumps(options))


class AsyncClient(_Base):
    """The cliproxy client for asyncio: ``chat``, ``messages`` and ``login`` are awaitable; cancelling the
    awaiting task cancels the upstream request. The same client works from any event loop or thread."""

    __slots__ = ()

    async def chat(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        extra_headers: Headers = None,
        **params: Any,
    ) -> Any:
        """See ``Client.chat``; with ``stream=True`` the result is an ``AsyncStream``."""
        body, headers = _request({"model": model, "messages": list(messages)}, params, extra_headers)
        return _async_answer(await self._native.send_async("openai", body, headers))

    async def messages(
        self,
        *,
        model: str,
        max_tokens: int,
        messages: Iterable[Mapping[str, Any]],
        extra_headers: Headers = None,
        **params: Any,
    ) -> Any:
        """See ``Client.messages``; with ``stream=True`` the result is an ``AsyncStream``."""
        fixed = {"model": model, "max_tokens": max_tokens, "messages": list(messages)}
        body, headers = _request(fixed, params, extra_headers)
        return _async_answer(await self._native.send_async("anthropic", body, headers))

    async def login(self, provider: str, **options: Any) -> _native.LoginFlow:
        """See ``Client.login``; await ``flow.wait_async()`` for the result."""
        return await self._native.login_async(provider, _dumps(options))


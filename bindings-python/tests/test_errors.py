"""Every error class, raised by the native code from real upstream answers of the mock.

Faults cool credentials down, so each test builds its own client (the mock itself keeps no per-test state).
"""

from __future__ import annotations

import asyncio
import pickle

import pytest

import cliproxy
from cliproxy import _native
from cliproxy._errors import BY_KIND
from conftest import CLAUDE_MODEL, MODELS, OPENAI_MODEL, directive, make_config, user


@pytest.fixture
def fresh(mock, auth_dir):
    """A new client on the mock: `fresh(openai_keys=[...], claude_keys=[...], **config)`."""

    def make(**kw):
        return cliproxy.Client(make_config(mock.url, auth_dir, **kw))

    return make


def test_every_core_kind_has_its_class():
    assert sorted(BY_KIND) == sorted(_native.ERROR_KINDS)
    names = {
        "config": "ConfigError", "authentication": "AuthenticationError", "permission": "PermissionDeniedError",
        "invalid_request": "InvalidRequestError", "model_not_found": "ModelNotFoundError",
        "rate_limited": "RateLimitError", "quota_exceeded": "QuotaExceededError", "upstream": "UpstreamError",
        "timeout": "TimeoutError", "cancelled": "CancelledError",
    }
    for kind, name in names.items():
        cls = getattr(cliproxy, name)
        assert BY_KIND[kind] is cls and issubclass(cls, cliproxy.Error) and cls.kind == kind


def test_errors_pickle_with_their_facts():
    e = cliproxy.RateLimitError("slow down", retry_after=1.5, credential="claude:key-0", model="m")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is cliproxy.RateLimitError
    assert (back.message, back.retry_after, back.credential, back.model, back.kind) == (
        "slow down", 1.5, "claude:key-0", "m", "rate_limited")


def test_config_error():
    with pytest.raises(cliproxy.ConfigError) as e:
        cliproxy.Client({"openai-compatibility": [{"name": "x"}]})
    assert e.value.kind == "config"
    assert "base-url" in str(e.value)
    with pytest.raises(cliproxy.ConfigError):
        cliproxy.Client.from_yaml("port: [unclosed")
    with pytest.raises(cliproxy.ConfigError):
        cliproxy.AsyncClient("/nonexistent/config.yaml")
    with pytest.raises(TypeError):
        cliproxy.Client(42)  # type: ignore[arg-type]


def test_authentication_error_names_the_credential(fresh):
    c = fresh(openai_keys=["sk-bad-key"], claude_keys=[])
    with pytest.raises(cliproxy.AuthenticationError) as e:
        c.chat(model=OPENAI_MODEL, messages=user("hi"))
    assert e.value.credential == "openai-compat:mock-0"
    assert e.value.status == 401
    assert "sk-bad-key" not in repr(e.value) + str(e.value)


def test_permission_denied(fresh):
    c = fresh(claude_keys=[])
    with pytest.raises(cliproxy.PermissionDeniedError) as e:
        c.chat(model=OPENAI_MODEL, messages=user(directive(fault={"status": 403})))
    assert e.value.status == 403
    assert e.value.credential == "openai-compat:mock-0"


def test_invalid_request(fresh):
    c = fresh(openai_keys=[])
    with pytest.raises(cliproxy.InvalidRequestError) as e:
        c.messages(model=CLAUDE_MODEL, max_tokens=10, messages=user(directive(fault={"status": 400})))
    assert e.value.status == 400
    with pytest.raises(cliproxy.InvalidRequestError):
        c.chat(model=CLAUDE_MODEL, messages="not a list of messages")


def test_model_not_found(client):
    with pytest.raises(cliproxy.ModelNotFoundError) as e:
        client.chat(model="no-such-model", messages=user("hi"))
    assert e.value.model == "no-such-model"
    assert e.value.kind == "model_not_found"


def test_rate_limit_when_every_key_cools_down(fresh):
    c = fresh(openai_keys=["sk-rl-1", "sk-rl-2"], claude_keys=[], **{"max-retry-interval": 0})
    limited = directive(fault={"kind": "rate_limit", "retry_after": "30"})
    with pytest.raises(cliproxy.RateLimitError) as e:
        c.chat(model=OPENAI_MODEL, messages=user(limited))
    assert e.value.retry_after == 30.0
    assert e.value.credential in ("openai-compat:mock-0", "openai-compat:mock-1")

    # Both keys now rest: the next request fails at once, without reaching the upstream.
    with pytest.raises(cliproxy.RateLimitError) as e:
        c.chat(model=OPENAI_MODEL, messages=user(directive(reply="never sent")))
    assert 0 < e.value.retry_after <= 30
    assert e.value.code == "model_cooldown"
    cooling = c.cooldowns()
    assert sorted(cd["credential"] for cd in cooling) == ["openai-compat:mock-0", "openai-compat:mock-1"]
    assert all(25 < cd["seconds_left"] <= 30 and cd["model"] == "gpt-4o" for cd in cooling)

    assert c.reset_cooldowns(credential="openai-compat:mock-0") == 1
    r = c.chat(model=OPENAI_MODEL, messages=user(directive(reply="back")))
    assert r["choices"][0]["message"]["content"] == "back"
    assert c.reset_cooldowns() == 1
    assert c.cooldowns() == []


def test_one_key_limited_fails_over_to_the_other(fresh, mock):
    c = fresh(openai_keys=["sk-fo-1", "sk-fo-2"], claude_keys=[])
    msg = directive(reply="from the other key", per_key={"sk-fo-1": {"kind": "rate_limit", "retry_after": "30"}})
    for _ in range(2):
        r = c.chat(model=OPENAI_MODEL, messages=user(msg))
        assert r["choices"][0]["message"]["content"] == "from the other key"
    assert [cd["credential"] for cd in c.cooldowns()] == ["openai-compat:mock-0"]
    assert mock.hits()["by_key"].get("sk-fo-1") == 1


def test_quota_exceeded(fresh):
    c = fresh(openai_keys=[])
    with pytest.raises(cliproxy.QuotaExceededError) as e:
        c.messages(model=CLAUDE_MODEL, max_tokens=10, messages=user(directive(fault={"kind": "quota"})))
    assert e.value.kind == "quota_exceeded"
    assert e.value.credential == "claude:key-0"


def test_upstream_error_carries_the_status(fresh):
    c = fresh(claude_keys=[])
    with pytest.raises(cliproxy.UpstreamError) as e:
        c.chat(model=OPENAI_MODEL, messages=user(directive(fault={"kind": "server_error"})))
    assert e.value.status == 500
    assert e.value.model == "gpt-4o"


def test_unreachable_upstream_is_its_fault_and_keeps_the_cause():
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = cliproxy.Client({"openai-compatibility": [
        {"name": "dead", "base-url": f"http://127.0.0.1:{port}/v1", "models": [{"name": "m"}]}]})
    with pytest.raises(cliproxy.UpstreamError) as e:
        c.chat(model="m", messages=user("hi"))
    assert e.value.fault == "upstream"
    assert isinstance(e.value.__cause__, ConnectionError), repr(e.value.__cause__)
    assert str(e.value.__cause__), "the cause says what failed"


def test_a_bad_request_is_the_clients_fault(fresh):
    c = fresh(claude_keys=[])
    with pytest.raises(cliproxy.InvalidRequestError) as e:
        c.chat(model="", messages=user("hi"))
    assert e.value.fault == "client" and e.value.__cause__ is None


def test_timeout(fresh):
    c = fresh(claude_keys=[], timeouts={"first-byte-seconds": 1, "idle-seconds": 5})
    with pytest.raises(cliproxy.TimeoutError) as e:
        c.chat(model=OPENAI_MODEL, messages=user(directive(fault={"hang_ms": 3000})))
    assert e.value.kind == "timeout"
    assert not isinstance(e.value, OSError), "cliproxy.TimeoutError is not the builtin one"


@pytest.mark.parametrize("model", MODELS)
def test_error_in_the_middle_of_a_stream_raises_from_iteration(fresh, model):
    c = fresh()
    got = []
    with pytest.raises(cliproxy.Error) as e:
        for event in c.messages(model=model, max_tokens=100, stream=True,
                                messages=user(directive(reply="a b c d e f", chunk=4,
                                                        fault={"stream_error_after": 3}))):
            got.append(event)
    assert got, "events before the failure arrive"
    assert e.value.kind in ("upstream", "rate_limited")


@pytest.mark.parametrize("model", MODELS)
def test_connection_cut_in_the_middle_of_a_stream(fresh, model):
    c = fresh()
    stream = c.chat(model=model, stream=True, messages=user(directive(reply="one two three four", fault={"cut_after": 3})))
    with pytest.raises(cliproxy.UpstreamError):
        for _ in stream:
            pass
    assert stream.closed
    assert list(stream) == []


def test_login_unknown_provider(client, aclient):
    with pytest.raises(cliproxy.InvalidRequestError) as e:
        client.login("nope")
    assert "nope" in str(e.value)
    with pytest.raises(cliproxy.InvalidRequestError):
        asyncio.run(aclient.login("nope", region="x"))


def test_async_errors(mock, auth_dir):
    a = cliproxy.AsyncClient(make_config(mock.url, auth_dir, openai_keys=["sk-arl-1", "sk-arl-2"], claude_keys=[]))

    async def main():
        with pytest.raises(cliproxy.ModelNotFoundError):
            await a.chat(model="no-such-model", messages=user("hi"))
        with pytest.raises(cliproxy.RateLimitError) as e:
            await a.chat(model=OPENAI_MODEL, messages=user(directive(fault={"kind": "rate_limit", "retry_after": 30})))
        return e.value

    assert asyncio.run(main()).retry_after == 30.0

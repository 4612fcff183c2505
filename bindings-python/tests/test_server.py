"""`cliproxy.serve()`: the reference server in-process, answering the official SDKs."""

from __future__ import annotations

import socket

import anthropic
import httpx
import openai
import pytest

import cliproxy
from conftest import CLAUDE_MODEL, OPENAI_MODEL, TEXT, directive, make_config, user

CLIENT_KEY = "py-serve-client-key"


@pytest.fixture
def server(mock, auth_dir):
    with cliproxy.serve(make_config(mock.url, auth_dir, **{"api-keys": [CLIENT_KEY]}), port=0) as s:
        yield s


def test_openai_sdk(server):
    assert server.running and server.port > 0 and server.host == "127.0.0.1"
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    for model in (OPENAI_MODEL, CLAUDE_MODEL):
        r = sdk.chat.completions.create(model=model, messages=user(directive(reply=TEXT)))
        assert r.choices[0].message.content == TEXT
        stream = sdk.chat.completions.create(model=model, messages=user(directive(reply=TEXT, chunk=1)), stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == TEXT
    models = {m.id for m in sdk.models.list()}
    assert OPENAI_MODEL in models
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="no-such-model", messages=user("hi"))
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).chat.completions.create(
            model=OPENAI_MODEL, messages=user("hi"))


def test_anthropic_sdk(server):
    sdk = anthropic.Anthropic(base_url=server.url, api_key=CLIENT_KEY, max_retries=0)
    with sdk.messages.stream(model=OPENAI_MODEL, max_tokens=100,
                             messages=user(directive(reply=TEXT, chunk=2))) as s:
        assert "".join(s.text_stream) == TEXT


def test_stop_closes_the_port(mock, auth_dir):
    s = cliproxy.serve(make_config(mock.url, auth_dir), port=0)
    url = s.url
    assert httpx.get(url + "/v1/models").status_code == 200
    s.stop()
    assert not s.running
    s.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/models")


def test_port_in_use_is_an_os_error(mock, auth_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            cliproxy.serve(make_config(mock.url, auth_dir), port=taken.getsockname()[1])


def test_no_public_address_without_client_keys(mock, auth_dir):
    with pytest.raises(cliproxy.ConfigError):
        cliproxy.serve(make_config(mock.url, auth_dir), host="0.0.0.0", port=0)

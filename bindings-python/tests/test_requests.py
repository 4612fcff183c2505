"""Chat and messages, blocking and asyncio, whole and streamed, through both providers (passthrough and
translation), with multi-byte text split at every byte and with tools."""

from __future__ import annotations

import asyncio
import json

import pytest

from conftest import CLAUDE_MODEL, MODELS, TEXT, chat_text, directive, messages_text, user

WEATHER_ARGS = {"city": "Zürich", "days": 2, "note": "晴れ ☀️"}
OPENAI_TOOLS = [{
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.mark.parametrize("model", MODELS)
def test_chat(client, model):
    r = client.chat(model=model, messages=user(directive(reply=TEXT)))
    assert r["object"] == "chat.completion"
    assert r["choices"][0]["message"]["content"] == TEXT
    assert r["choices"][0]["finish_reason"] == "stop"
    assert r["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_messages(client, model):
    r = client.messages(model=model, max_tokens=100, messages=user(directive(reply=TEXT)))
    assert r["type"] == "message"
    assert r["content"][0] == {"type": "text", "text": TEXT}
    assert r["stop_reason"] == "end_turn"
    assert r["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_chat_stream_split_at_every_byte(client, model):
    with client.chat(model=model, messages=user(directive(reply=TEXT, chunk=1)), stream=True) as stream:
        chunks = list(stream)
    assert chat_text(chunks) == TEXT
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert stream.closed


@pytest.mark.parametrize("model", MODELS)
def test_messages_stream_split_at_every_byte(client, model):
    stream = client.messages(model=model, max_tokens=100, messages=user(directive(reply=TEXT, chunk=1)), stream=True)
    events = list(stream)
    assert messages_text(events) == TEXT
    assert events[0]["type"] == "message_start"
    assert events[-1]["type"] == "message_stop"
    stop = [e for e in events if e["type"] == "message_delta"][0]
    assert stop["delta"]["stop_reason"] == "end_turn"


@pytest.mark.parametrize("model", MODELS)
def test_stream_split_at_explicit_offsets(client, model):
    body_offsets = list(range(1, 400, 3))
    with client.chat(model=model, messages=user(directive(reply=TEXT, split=body_offsets)), stream=True) as s:
        assert chat_text(s) == TEXT


@pytest.mark.parametrize("model", MODELS)
def test_stream_usage_on_request(client, model):
    chunks = list(client.chat(model=model, messages=user(directive(reply="ok")), stream=True,
                              stream_options={"include_usage": True}))
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage and usage[-1]["completion_tokens"] > 0


@pytest.mark.parametrize("model", MODELS)
def test_chat_tools(client, model):
    msg = directive(tool_calls=[{"name": "get_weather", "arguments": WEATHER_ARGS}])
    r = client.chat(model=model, messages=user(msg), tools=OPENAI_TOOLS)
    call = r["choices"][0]["message"]["tool_calls"][0]
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    assert r["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("model", MODELS)
def test_chat_tools_streamed(client, model):
    msg = directive(tool_calls=[{"name": "get_weather", "arguments": WEATHER_ARGS}], chunk=3)
    args, names, finish = [], [], None
    for chunk in client.chat(model=model, messages=user(msg), tools=OPENAI_TOOLS, stream=True):
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or []:
                fn = call.get("function") or {}
                if fn.get("name"):
                    names.append(fn["name"])
                args.append(fn.get("arguments") or "")
            finish = choice.get("finish_reason") or finish
    assert names == ["get_weather"]
    assert json.loads("".join(args)) == WEATHER_ARGS
    assert finish == "tool_calls"


@pytest.mark.parametrize("model", MODELS)
def test_messages_tools(client, model):
    msg = directive(tool_calls=[{"name": "get_weather", "arguments": WEATHER_ARGS}])
    r = client.messages(model=model, max_tokens=100, messages=user(msg), tools=ANTHROPIC_TOOLS)
    block = [b for b in r["content"] if b["type"] == "tool_use"][0]
    assert block["name"] == "get_weather"
    assert block["input"] == WEATHER_ARGS
    assert r["stop_reason"] == "tool_use"


@pytest.mark.parametrize("model", MODELS)
def test_messages_tools_streamed(client, model):
    msg = directive(tool_calls=[{"name": "get_weather", "arguments": WEATHER_ARGS}], chunk=2)
    events = list(client.messages(model=model, max_tokens=100, messages=user(msg), tools=ANTHROPIC_TOOLS,
                                  stream=True))
    starts = [e for e in events if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"]
    assert [s["content_block"]["name"] for s in starts] == ["get_weather"]
    partial = "".join(e["delta"]["partial_json"] for e in events
                      if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta")
    assert json.loads(partial) == WEATHER_ARGS


def test_tool_result_round_trip(client):
    """A second turn carrying the tool result reaches the upstream translated, directive and all."""
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": directive(reply="It is sunny.")},
    ]
    r = client.chat(model=CLAUDE_MODEL, messages=messages, tools=OPENAI_TOOLS)
    assert r["choices"][0]["message"]["content"] == "It is sunny."


def test_thinking_is_translated(client):
    r = client.messages(model=CLAUDE_MODEL, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                        messages=user(directive(reply="42", thinking="Let me think… 🤔")))
    kinds = [b["type"] for b in r["content"]]
    assert kinds == ["thinking", "text"]
    assert r["content"][0]["thinking"] == "Let me think… 🤔"


def test_extra_headers_reach_the_upstream(client, mock):
    client.messages(model=CLAUDE_MODEL, max_tokens=10, messages=user(directive(reply="h")),
                    extra_headers={"anthropic-beta": "tools-2024-04-04"})
    import urllib.request
    with urllib.request.urlopen(mock.url + "/__mock/requests", timeout=5) as r:
        recorded = json.loads(r.read())
    last = [q for q in recorded if q["path"] == "/v1/messages"][-1]
    headers = {k.lower(): v for k, v in (last["headers"].items() if isinstance(last["headers"], dict)
                                         else last["headers"])}
    assert "tools-2024-04-04" in headers.get("anthropic-beta", "")


# asyncio


@pytest.mark.parametrize("model", MODELS)
def test_async_chat_and_messages(aclient, model):
    async def main():
        chat = await aclient.chat(model=model, messages=user(directive(reply=TEXT)))
        msg = await aclient.messages(model=model, max_tokens=100, messages=user(directive(reply=TEXT)))
        return chat, msg

    chat, msg = asyncio.run(main())
    assert chat["choices"][0]["message"]["content"] == TEXT
    assert msg["content"][0]["text"] == TEXT


@pytest.mark.parametrize("model", MODELS)
def test_async_streams_split_at_every_byte(aclient, model):
    async def main():
        async with await aclient.chat(model=model, messages=user(directive(reply=TEXT, chunk=1)),
                                      stream=True) as s:
            chat = [c async for c in s]
        events = [e async for e in await aclient.messages(
            model=model, max_tokens=100, messages=user(directive(reply=TEXT, chunk=1)), stream=True)]
        return chat, events

    chat, events = asyncio.run(main())
    assert chat_text(chat) == TEXT
    assert messages_text(events) == TEXT
    assert events[-1]["type"] == "message_stop"


@pytest.mark.parametrize("model", MODELS)
def test_async_tools(aclient, model):
    msg = directive(tool_calls=[{"name": "get_weather", "arguments": WEATHER_ARGS}])

    async def main():
        return await aclient.messages(model=model, max_tokens=100, messages=user(msg), tools=ANTHROPIC_TOOLS)

    r = asyncio.run(main())
    assert [b["input"] for b in r["content"] if b["type"] == "tool_use"] == [WEATHER_ARGS]


def test_hundred_concurrent_async_streams(aclient):
    """Each stream gets its own text, split into small pieces with pauses, and must come back exactly."""
    texts = [f"stream {i}: {TEXT} {'🙂' * (i % 7)} end {i}" for i in range(100)]

    async def one(i: int) -> str:
        model = MODELS[i % 2]
        msg = directive(reply=texts[i], chunk=7, delay_ms=2)
        if i % 4 < 2:
            return chat_text([c async for c in await aclient.chat(model=model, messages=user(msg), stream=True)])
        stream = await aclient.messages(model=model, max_tokens=500, messages=user(msg), stream=True)
        return messages_text([e async for e in stream])

    async def main():
        return await asyncio.gather(*(one(i) for i in range(100)))

    assert asyncio.run(main()) == texts


def test_async_client_works_across_event_loops(aclient):
    for _ in range(3):
        r = asyncio.run(aclient.chat(model=MODELS[0], messages=user(directive(reply="again"))))
        assert r["choices"][0]["message"]["content"] == "again"


# client state


def test_models_lists_both_providers(client):
    models = {m["id"]: m["providers"] for m in client.models()}
    assert models["mock-gpt"] == ["openai-compat"]
    assert any(name.startswith("claude-") and providers == ["claude"] for name, providers in models.items())


def test_usage_counts_requests_and_tokens(mock, auth_dir):
    import cliproxy
    from conftest import make_config

    c = cliproxy.Client(make_config(mock.url, auth_dir, claude_keys=[]))
    for _ in range(3):
        c.chat(model=MODELS[0], messages=user(directive(reply="count me", usage={"input": 11, "output": 7})))
    [u] = c.usage()
    assert u["credential"] == "openai-compat:mock-0"
    assert u["provider"] == "openai-compat"
    assert (u["requests"], u["failures"], u["input_tokens"], u["output_tokens"]) == (3, 0, 33, 21)


def test_credentials_never_show_secrets(client):
    creds = client.credentials()
    assert {c["id"] for c in creds} == {"openai-compat:mock-0", "claude:key-0"}
    assert all(c["state"] == "ready" for c in creds)
    assert "sk-" not in json.dumps(creds)

"""The official `openai` SDK against the real server, only `base_url` changed."""
import json

import openai
import pytest

from conftest import CLIENT_KEY, directive

MODELS = ["compat-gpt-4o", "claude-sonnet-4-5-20250929"]
TEXT = "Grüße, 世界! 👋🏽 café ∑ 🇩🇪"


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_non_stream_exact_text(client, model):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": directive(reply=TEXT)}])
    assert r.choices[0].message.content == TEXT
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_split_at_every_byte(client, model):
    stream = client.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": directive(reply=TEXT, chunk=1)}])
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == TEXT
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_arrive_whole(client, model, stream):
    args = {"city": "東京", "unit": "celsius", "days": [1, 2, 3]}
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    msg = directive(tool_calls=[{"name": "get_weather", "arguments": args}], chunk=7)
    if not stream:
        r = client.chat.completions.create(model=model, tools=tools, messages=[{"role": "user", "content": msg}])
        call = r.choices[0].message.tool_calls[0]
        assert r.choices[0].finish_reason == "tool_calls"
        name, arguments = call.function.name, call.function.arguments
    else:
        name, arguments, finish = "", "", None
        for chunk in client.chat.completions.create(model=model, tools=tools, stream=True,
                                                    messages=[{"role": "user", "content": msg}]):
            for tc in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                name += tc.function.name or ""
                arguments += tc.function.arguments or ""
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        assert finish == "tool_calls"
    assert name == "get_weather"
    assert json.loads(arguments) == args


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "model_not_found"


def test_bad_request_from_upstream(client):
    bad = directive(fault={"status": 400, "body": {"error": {"message": "nope", "type": "invalid_request_error",
                                                             "param": None, "code": None}}})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="compat-gpt-4o", messages=[{"role": "user", "content": bad}])


def test_wrong_key_is_authentication_error(server):
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="compat-gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_error_mid_stream_raises(client):
    msg = directive(reply="one two three four five six", fault={"stream_error_after": 3})
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="compat-gpt-4o", stream=True,
                                                messages=[{"role": "user", "content": msg}]):
            pass


def test_models_listing(client):
    ids = {m.id for m in client.models.list()}
    assert "compat-gpt-4o" in ids
    assert "claude-sonnet-4-5-20250929" in ids

"""The official `anthropic` SDK against the real server, only `base_url` changed."""
import anthropic
import pytest

from conftest import CLIENT_KEY, directive

MODELS = ["claude-sonnet-4-5-20250929", "compat-gpt-4o"]
TEXT = "Grüße, 世界! 👋🏽 café ∑ 🇩🇪"


@pytest.fixture
def client(server):
    return anthropic.Anthropic(base_url=server.url, api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_non_stream_exact_text(client, model):
    r = client.messages.create(model=model, max_tokens=100, messages=[{"role": "user", "content": directive(reply=TEXT)}])
    assert r.content[0].text == TEXT
    assert r.stop_reason == "end_turn"
    assert r.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_split_at_every_byte(client, model):
    with client.messages.stream(model=model, max_tokens=100,
                                messages=[{"role": "user", "content": directive(reply=TEXT, chunk=1)}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == TEXT
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_arrives_whole(client, model):
    args = {"city": "Zürich", "days": 2}
    tools = [{"name": "get_weather", "description": "Weather",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    msg = directive(tool_calls=[{"name": "get_weather", "arguments": args}], chunk=5)
    with client.messages.stream(model=model, max_tokens=100, tools=tools,
                                messages=[{"role": "user", "content": msg}]) as s:
        final = s.get_final_message()
    block = [b for b in final.content if b.type == "tool_use"][0]
    assert block.name == "get_weather"
    assert block.input == args
    assert final.stop_reason == "tool_use"


def test_unknown_model_is_not_found(client):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}])


def test_missing_max_tokens_is_bad_request(server):
    import httpx
    r = httpx.post(server.url + "/v1/messages", headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
                   json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400
    assert r.json()["type"] == "error"


def test_error_mid_stream_raises(client):
    msg = directive(reply="one two three four five six", fault={"stream_error_after": 3})
    with pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                                    messages=[{"role": "user", "content": msg}]) as s:
            for _ in s:
                pass


def test_count_tokens(client):
    r = client.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hello"}])
    assert r.input_tokens > 0

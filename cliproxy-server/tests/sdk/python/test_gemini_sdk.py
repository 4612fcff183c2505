"""The official `google-genai` SDK against the real server, only its base URL changed."""
import json

import httpx
import pytest
from google import genai
from google.genai import errors, types

from conftest import CLIENT_KEY, directive

CLAUDE = "claude-sonnet-4-5-20250929"
# A Gemini key's model: the request passes through to the (mock) Gemini API as the SDK wrote it.
GEMINI = "gemini-2.5-flash"
MODELS = [CLAUDE, "compat-gpt-4o", GEMINI]
TEXT = "Grüße, 世界! 👋🏽 café ∑ 🇩🇪"

WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather",
    description="The weather in a city",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]),
)])


@pytest.fixture
def client(server):
    return genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=server.url))


def with_tool():
    return types.GenerateContentConfig(
        tools=[WEATHER], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_generate_content_with_a_function_tool_and_its_result(client, model):
    args = {"city": "Zürich"}
    r = client.models.generate_content(
        model=model, contents=directive(tool_calls=[{"name": "get_weather", "arguments": args}]), config=with_tool())
    assert [(c.name, c.args) for c in r.function_calls] == [("get_weather", args)]
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert r.usage_metadata.prompt_token_count > 0

    # The next turn as the SDK's users write it: the model's content echoed, then the function's result.
    history = [
        types.Content(role="user", parts=[types.Part(text="What is the weather in Zürich?")]),
        r.candidates[0].content,
        types.Content(role="user", parts=[
            types.Part.from_function_response(name="get_weather", response={"output": "sunny, 21°C"}),
            types.Part(text=directive(reply=TEXT)),
        ]),
    ]
    r = client.models.generate_content(model=model, contents=history, config=with_tool())
    assert r.text == TEXT
    assert r.function_calls is None


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_generate_content_stream_with_a_function_tool(client, model):
    args = {"city": "Paris"}
    chunks = list(client.models.generate_content_stream(
        model=model,
        contents=directive(reply="Let me check.", tool_calls=[{"name": "get_weather", "arguments": args}], chunk=3),
        config=with_tool()))
    text = "".join(p.text for c in chunks for p in c.candidates[0].content.parts or [] if p.text)
    calls = [fc for c in chunks for fc in c.function_calls or []]
    assert text == "Let me check."
    assert [(c.name, c.args) for c in calls] == [("get_weather", args)]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_split_at_every_byte(client, model):
    chunks = client.models.generate_content_stream(model=model, contents=directive(reply=TEXT, chunk=1))
    assert "".join(c.text or "" for c in chunks) == TEXT


def test_claude_thinking_goes_back_signed_with_the_function_result(client, mock):
    """Claude checks, when a function result comes back, the signed thinking that preceded the call: the
    SDK must be able to hold the signature (it keeps `thoughtSignature` as bytes) and return it intact."""
    config = types.GenerateContentConfig(
        tools=[WEATHER], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        thinking_config=types.ThinkingConfig(thinking_budget=2048, include_thoughts=True))
    first = client.models.generate_content(
        model=CLAUDE, config=config,
        contents=directive(thinking="I need the weather.", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}]))
    content = first.candidates[0].content
    thought = [p for p in content.parts if p.thought][0]
    assert thought.text == "I need the weather."
    tag = b"cliproxy-signature:"
    assert thought.thought_signature.startswith(tag)
    claude_signature = thought.thought_signature[len(tag):].decode()

    httpx.post(mock + "/__mock/reset")
    history = [
        types.Content(role="user", parts=[types.Part(text="Weather in Oslo?")]),
        content,
        types.Content(role="user", parts=[
            types.Part.from_function_response(name="get_weather", response={"output": "snow"}),
            types.Part(text=directive(reply=TEXT)),
        ]),
    ]
    assert client.models.generate_content(model=CLAUDE, contents=history, config=config).text == TEXT
    sent = json.loads(httpx.get(mock + "/__mock/requests").json()[-1]["body"])
    blocks = [b for m in sent["messages"] if m["role"] == "assistant" for b in m["content"]]
    assert blocks[0] == {"type": "thinking", "thinking": "I need the weather.", "signature": claude_signature}
    assert blocks[1]["type"] == "tool_use" and blocks[1]["input"] == {"city": "Oslo"}
    result = [b for m in sent["messages"] for b in m["content"] if isinstance(b, dict) and b["type"] == "tool_result"]
    assert result[0]["tool_use_id"] == blocks[1]["id"]


@pytest.mark.parametrize("model", MODELS)
def test_thoughts_are_thought_parts(client, model):
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=2048, include_thoughts=True))
    r = client.models.generate_content(model=model, contents=directive(thinking="Pondering.", reply=TEXT), config=config)
    thoughts = [p.text for p in r.candidates[0].content.parts if p.thought]
    assert thoughts == ["Pondering."]
    assert r.text == TEXT


def test_count_tokens_and_models(client):
    assert client.models.count_tokens(model=CLAUDE, contents="How many tokens is this?").total_tokens > 0
    names = [m.name for m in client.models.list()]
    assert "models/compat-gpt-4o" in names
    assert client.models.get(model="compat-gpt-4o").display_name == "compat-gpt-4o"


def test_errors_are_raised_as_api_errors(client):
    with pytest.raises(errors.ClientError) as e:
        client.models.generate_content(model="no-such-model", contents="hi")
    assert e.value.code == 404
    with pytest.raises(errors.APIError):
        for _ in client.models.generate_content_stream(
                model=CLAUDE, contents=directive(reply="one two three four five six", fault={"stream_error_after": 6})):
            pass

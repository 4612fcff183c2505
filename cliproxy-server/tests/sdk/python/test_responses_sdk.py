"""The official `openai` SDK's Responses API (`client.responses`) against the real server, only `base_url`
changed: JSON and streamed answers, the SDK's stream helper, and a function tool round trip."""
import json

import openai
import pytest

from conftest import CLIENT_KEY, Server, directive, server_config

MODELS = ["compat-gpt-4o", "claude-sonnet-4-5-20250929"]
TEXT = "Grüße, 世界! 👋🏽 café ∑ 🇩🇪"
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
         # Codex CLI sends OpenAI-hosted tools by default; the proxy drops them for other upstreams.
         {"type": "web_search_preview"}]


@pytest.fixture(scope="module")
def own_server(mock):
    """A server of its own: cooldowns that other modules' fault tests leave on the shared one would turn these
    answers into 429s."""
    s = Server(server_config(mock))
    yield s
    s.stop()


@pytest.fixture
def client(own_server):
    return openai.OpenAI(base_url=own_server.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_json_text(client, model):
    r = client.responses.create(model=model, instructions="Be brief.", input=directive(reply=TEXT))
    assert r.object == "response"
    assert r.status == "completed"
    assert r.output_text == TEXT
    assert r.usage.input_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


@pytest.mark.parametrize("model", MODELS)
def test_stream_split_at_every_byte(client, model):
    stream = client.responses.create(model=model, stream=True, reasoning={"effort": "low"},
                                     input=[{"role": "user", "content": directive(reply=TEXT, thinking="Hm.", chunk=1)}])
    events = list(stream)
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    assert "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta") == "Hm."
    final = events[-1].response
    assert final.output_text == TEXT
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_helper_accumulates_the_final_response(client, model):
    with client.responses.stream(model=model, input=directive(reply=TEXT, chunk=3)) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == TEXT
    assert final.output_text == TEXT


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_function_tool_round_trip(client, model, stream):
    args = {"city": "東京", "unit": "celsius", "days": [1, 2, 3]}
    first = directive(tool_calls=[{"name": "get_weather", "arguments": args}], chunk=7)
    conversation = [{"role": "user", "content": first}]
    if stream:
        events = list(client.responses.create(model=model, tools=TOOLS, input=conversation, stream=True))
        assert events[-1].type == "response.completed"
        streamed = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
        assert json.loads(streamed) == args
        output = events[-1].response.output
    else:
        output = client.responses.create(model=model, tools=TOOLS, input=conversation).output
    calls = [item for item in output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == args

    # The client sends the whole conversation back with the call's output: the proxy keeps no state.
    conversation += output
    conversation.append({"type": "function_call_output", "call_id": calls[0].call_id,
                         "output": directive(reply="It is 21°C in 東京.")})
    r = client.responses.create(model=model, tools=TOOLS, input=conversation)
    assert r.output_text == "It is 21°C in 東京."


def test_stored_responses_are_refused(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="compat-gpt-4o", input="hi", previous_response_id="resp_123")
    assert "previous_response_id" in e.value.body["message"]
    assert e.value.body["type"] == "invalid_request_error"


def test_error_mid_stream_is_a_failed_response(client):
    # The delay lets the first events reach the client before the fault, so it cannot fail over.
    msg = directive(reply="one two three four five six", delay_ms=30, fault={"stream_error_after": 3})
    events = list(client.responses.create(model="compat-gpt-4o", stream=True, input=msg))
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed"
    assert events[-1].response.error.message

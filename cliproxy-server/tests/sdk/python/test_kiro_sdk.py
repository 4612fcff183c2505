"""The official `openai` and `anthropic` SDKs against Kiro accounts (on the mock), only `base_url` changed:
tool calls stream through whole, thinking arrives as thinking, and a monthly-limit answer moves traffic on."""
import json
import urllib.request

import anthropic
import openai
import pytest

from conftest import CLIENT_KEY, MGMT, directive

MODEL = "kiro-claude-sonnet-4-5"
TEXT = "Grüße, 世界! 👋🏽 café ∑"
ARGS = {"city": "東京", "unit": "celsius", "days": [1, 2, 3]}
OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Weather by city",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def kiro_config(mock_url, accounts):
    return f"""
routing: {{ strategy: fill-first }}
kiro-endpoints:
  oidc-base-url: "{mock_url}/kiro/oidc/{{region}}"
  auth-base-url: "{mock_url}/kiro/auth/{{region}}"
  api-base-url: "{mock_url}/kiro/q/{{region}}"
  fallback-api-base-url: "{mock_url}/kiro/cw/{{region}}"
kiro:
{accounts}
"""


@pytest.fixture
def kiro_server(make_server, mock):
    return make_server(kiro_config(mock, "  - access-token: aoaSDK-one\n  - access-token: aoaSDK-two"))


@pytest.fixture
def oai(kiro_server):
    return openai.OpenAI(base_url=kiro_server.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture
def ant(kiro_server):
    return anthropic.Anthropic(base_url=kiro_server.url, api_key=CLIENT_KEY, max_retries=0)


def test_openai_streams_a_tool_call_whose_arguments_arrive_whole(oai):
    msg = directive(reply="Let me check.", tool_calls=[{"name": "get_weather", "arguments": ARGS}], chunk=3)
    text, name, arguments, finish, usage = "", "", "", None, None
    for chunk in oai.chat.completions.create(model=MODEL, tools=OPENAI_TOOLS, stream=True,
                                             stream_options={"include_usage": True},
                                             messages=[{"role": "user", "content": msg}]):
        if chunk.usage:
            usage = chunk.usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for tc in delta.tool_calls or []:
            name += tc.function.name or ""
            arguments += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert text == "Let me check."
    assert name == "get_weather"
    assert json.loads(arguments) == ARGS
    assert finish == "tool_calls"
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0


def test_openai_non_stream_text_and_tool_call(oai):
    r = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": directive(reply=TEXT)}])
    assert r.choices[0].message.content == TEXT
    assert r.choices[0].finish_reason == "stop"
    r = oai.chat.completions.create(model=MODEL, tools=OPENAI_TOOLS, messages=[
        {"role": "user", "content": directive(tool_calls=[{"name": "get_weather", "arguments": ARGS}])}])
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == ARGS


def test_openai_tool_result_round_trip(oai):
    r = oai.chat.completions.create(model=MODEL, tools=OPENAI_TOOLS, messages=[
        {"role": "user", "content": "Weather in Tokyo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps(ARGS)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": directive(reply="It is 21 °C.")},
    ])
    assert r.choices[0].message.content == "It is 21 °C."


def test_anthropic_streams_a_tool_use_through_messages(ant):
    msg = directive(reply="Checking.", tool_calls=[{"name": "get_weather", "arguments": ARGS}], chunk=5)
    with ant.messages.stream(model=MODEL, max_tokens=512, tools=ANTHROPIC_TOOLS,
                             messages=[{"role": "user", "content": msg}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "Checking."
    tool = [b for b in final.content if b.type == "tool_use"][0]
    assert tool.name == "get_weather" and tool.input == ARGS
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_anthropic_thinking(ant):
    r = ant.messages.create(model="kiro/claude-sonnet-4-5", max_tokens=4096,
                            thinking={"type": "enabled", "budget_tokens": 2048},
                            messages=[{"role": "user", "content": directive(reply="42.", thinking="Deep thought.")}])
    assert [b.type for b in r.content] == ["thinking", "text"]
    assert r.content[0].thinking == "Deep thought."
    assert r.content[1].text == "42."


def test_monthly_limit_moves_traffic_to_the_next_account(oai, kiro_server):
    msg = directive(reply="served by the second account", per_key={"aoaSDK-one": {"kind": "quota"}})
    r = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": msg}])
    assert r.choices[0].message.content == "served by the second account"
    req = urllib.request.Request(kiro_server.url + "/v0/management/cooldowns",
                                 headers={"Authorization": "Bearer " + MGMT})
    with urllib.request.urlopen(req) as resp:
        cooldowns = json.load(resp)
    assert [c["credential"] for c in cooldowns["cooldowns"]] == ["kiro:config-0"]

"""Resilience as the official SDKs see it: failover, all-cooling errors, reset through management."""
import anthropic
import httpx
import openai
import pytest

from conftest import CLIENT_KEY, MGMT, directive

TWO_KEYS = """
claude-api-key:
  - { api-key: sk-ant-r1, base-url: "MOCK" }
  - { api-key: sk-ant-r2, base-url: "MOCK" }
"""


def two_key_server(make_server, mock):
    return make_server(TWO_KEYS.replace("MOCK", mock))


def test_rate_limited_key_is_skipped_then_reset(make_server, mock):
    s = two_key_server(make_server, mock)
    c = openai.OpenAI(base_url=s.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    msg = directive(reply="ok", per_key={"sk-ant-r1": {"kind": "rate_limit", "retry_after": "30"}})
    before = httpx.get(mock + "/__mock/hits").json()["by_key"].get("sk-ant-r1", 0)
    for _ in range(10):
        r = c.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": msg}])
        assert r.choices[0].message.content == "ok"
    hits = httpx.get(mock + "/__mock/hits").json()["by_key"]
    assert hits.get("sk-ant-r1", 0) - before == 1
    r = httpx.delete(s.url + "/v0/management/cooldowns", headers={"Authorization": f"Bearer {MGMT}"})
    assert r.json()["cleared"] >= 1


def test_all_cooling_raises_rate_limit_errors_with_retry_after(make_server, mock):
    s = two_key_server(make_server, mock)
    both = directive(fault={"kind": "rate_limit", "retry_after": "45"})
    oc = openai.OpenAI(base_url=s.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        oc.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": both}])
    with pytest.raises(openai.RateLimitError) as e:
        oc.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    assert int(e.value.response.headers["retry-after"]) > 0
    assert e.value.body["code"] == "model_cooldown"

    ac = anthropic.Anthropic(base_url=s.url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as e:
        ac.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert int(e.value.response.headers["retry-after"]) > 0

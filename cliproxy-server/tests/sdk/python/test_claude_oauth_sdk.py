"""The official `anthropic` and `openai` SDKs streaming from a Claude subscription (OAuth) account on the mock,
only `base_url` changed: the account is a Go-original `claude-<email>.json` file in the auth-dir, and the
upstream sees the subscription's bearer token."""
import json

import anthropic
import openai
import pytest

from conftest import CLIENT_KEY, claude_endpoints, directive, mock_json, sent_with

TEXT = "Grüße, 世界! 👋🏽 café ∑ 🇩🇪"


@pytest.fixture
def account(mock, tmp_path):
    """A minted subscription account stored as the Go original stores it."""
    issued = mock_json(mock, "/__mock/accounts/claude", {"email": "sdk@example.com"})
    auths = tmp_path / "auths"
    auths.mkdir()
    (auths / "claude-sdk@example.com.json").write_text(json.dumps({
        "id_token": "", "access_token": issued["access_token"], "refresh_token": issued["refresh_token"],
        "last_refresh": "2025-08-01T10:00:00+02:00", "email": "sdk@example.com", "type": "claude",
        "expired": "2099-01-01T00:00:00+02:00"}))
    return issued["access_token"], str(auths)


@pytest.fixture
def oauth_server(make_server, mock, account):
    return make_server(f'auth-dir: "{account[1]}"\n' + claude_endpoints(mock))


def test_anthropic_sdk_streams_from_a_subscription(oauth_server, mock, account):
    client = anthropic.Anthropic(base_url=oauth_server.url, api_key=CLIENT_KEY, max_retries=0)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                                messages=[{"role": "user", "content": directive(reply=TEXT, chunk=1)}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == TEXT
    assert final.stop_reason == "end_turn"
    sent = sent_with(mock, account[0])
    assert sent, "the upstream saw the subscription's token"
    headers = dict(sent[-1]["headers"])
    assert "oauth-2025-04-20" in headers["anthropic-beta"].split(",")
    assert "x-api-key" not in headers


def test_openai_sdk_streams_from_a_subscription(oauth_server, mock, account):
    client = openai.OpenAI(base_url=oauth_server.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    before = len(sent_with(mock, account[0]))
    stream = client.chat.completions.create(
        model="claude/claude-sonnet-4-5", stream=True,
        messages=[{"role": "user", "content": directive(reply=TEXT, chunk=3)}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert len(sent_with(mock, account[0])) == before + 1
    assert "claude/claude-sonnet-4-5-20250929" in [m.id for m in client.models.list().data]

"""The real Claude Code CLI (`claude -p`, npm `@anthropic-ai/claude-code`, installed by scripts/test.sh into
cliproxy-server/tests/sdk/claude-code) through the real server, on a Claude subscription whose access token
already expired: Claude Code's `.credentials.json` used in place, or copied by `import claude`. The proxy
refreshes before the first request, and the file then holds the rotated tokens.

Claude Code is pointed at the proxy with `ANTHROPIC_BASE_URL` and the proxy's client key in
`ANTHROPIC_API_KEY`, and kept offline (no auto-update, telemetry, error reports or other nonessential traffic).
It runs with a `HOME` of its own, so it never sees (or refreshes) the login the proxy uses."""
import json
import os
import subprocess
import time

import pytest

from conftest import CLIENT_KEY, claude_endpoints, directive, mock_json, sent_with
import binaries

HERE = os.path.dirname(os.path.abspath(__file__))
CLAUDE = os.environ.get("CLAUDE_CODE_BIN") or os.path.join(HERE, "..", "claude-code", "node_modules", ".bin", "claude")
OFFLINE = {
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_UPDATES": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}


@pytest.fixture(scope="module")
def claude():
    assert os.access(CLAUDE, os.X_OK), (
        f"Claude Code is not installed at {CLAUDE}: run `npm install` in cliproxy-server/tests/sdk/claude-code "
        "(scripts/test.sh does)")
    return CLAUDE


def expired_claude_code_login(mock_url, home, email):
    """Claude Code's login for a minted account, whose access token expired an hour ago (for the mock too)."""
    issued = mock_json(mock_url, "/__mock/accounts/claude", {"email": email})
    mock_json(mock_url, "/__mock/accounts/claude/expire", {"access_token": issued["access_token"]})
    os.makedirs(os.path.join(home, ".claude"))
    creds = {"claudeAiOauth": {"accessToken": issued["access_token"], "refreshToken": issued["refresh_token"],
                               "expiresAt": int((time.time() - 3600) * 1000), "scopes": ["user:inference"],
                               "subscriptionType": "max"}}
    path = os.path.join(home, ".claude", ".credentials.json")
    with open(path, "w") as f:
        json.dump(creds, f)
    with open(os.path.join(home, ".claude.json"), "w") as f:
        json.dump({"oauthAccount": {"emailAddress": email}}, f)
    return issued, path


def run_claude(claude, server_url, home, prompt):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    env.update(OFFLINE, HOME=home, ANTHROPIC_BASE_URL=server_url, ANTHROPIC_API_KEY=CLIENT_KEY)
    return subprocess.run([claude, "-p", prompt], env=env, cwd=home, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("how", ["in place", "imported"])
def test_claude_code_works_through_the_proxy_on_an_expired_subscription_login(claude, make_server, mock, tmp_path, how):
    proxy_home = str(tmp_path / "proxy-home")
    issued, credentials = expired_claude_code_login(mock, proxy_home, f"cc-{how.replace(' ', '-')}@example.com")
    auths = str(tmp_path / "auths")
    providers = f'auth-dir: "{auths}"\n' + claude_endpoints(mock)
    account_file = credentials
    if how == "imported":
        with open(tmp_path / "import.yaml", "w") as f:
            f.write(providers)
        cli = os.path.join(binaries.TARGET, "debug", "cliproxy-server")
        done = subprocess.run([cli, "--config", str(tmp_path / "import.yaml"), "import", "claude"],
                              env=dict(os.environ, HOME=proxy_home), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        account_file = os.path.join(auths, "claude-cc-imported@example.com.json")
        assert os.path.exists(account_file), done.stdout
    server = make_server(providers, env={"HOME": proxy_home})
    claude_home = str(tmp_path / "claude-home")
    os.makedirs(claude_home)

    done = run_claude(claude, server.url, claude_home, directive(reply="Hello through the subscription"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hello through the subscription" in done.stdout

    # The proxy refreshed before its first request: the expired token never went upstream.
    assert sent_with(mock, issued["access_token"]) == []
    with open(account_file) as f:
        stored = json.load(f)
    if how == "in place":
        stored = stored["claudeAiOauth"]
        access, refresh, expires_ms = stored["accessToken"], stored["refreshToken"], stored["expiresAt"]
        assert stored["subscriptionType"] == "max", "Claude Code's own fields are kept"
    else:
        access, refresh = stored["access_token"], stored["refresh_token"]
        expires_ms = None
        with open(credentials) as f:
            untouched = json.load(f)["claudeAiOauth"]
        assert untouched["refreshToken"] == issued["refresh_token"], "the import is independent of Claude Code's file"
    assert refresh != issued["refresh_token"] and access != issued["access_token"], "the rotated tokens are stored"
    if expires_ms is not None:
        assert expires_ms > (time.time() + 7 * 3600) * 1000
    sent = sent_with(mock, access)
    assert sent, "Claude Code's requests went upstream with the refreshed token"
    headers = dict(sent[0]["headers"])
    betas = headers["anthropic-beta"].split(",")
    assert "oauth-2025-04-20" in betas and "claude-code-20250219" in betas
    assert headers["user-agent"].startswith("claude-cli/") and "x-api-key" not in headers

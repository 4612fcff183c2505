"""Browser isolation in headless Chromium: a page from another origin can neither read an answer from `/v1/*`
nor make the proxy call an upstream, even with no client key configured (the default on loopback); a page
whose host name was re-pointed at 127.0.0.1 (DNS rebinding) is refused; and an origin listed under
`cors.allow-origins` can (the control that shows the checks above can fail)."""
import http.server
import json
import os
import tempfile
import threading

import pytest

import binaries
from conftest import CHROMIUM, FLAGS, mock_requests

ATTACKER_PAGE = b"<!doctype html><title>some site</title><p>hello</p>"

# What a page tries: each returns "read:<body>" when it could read the answer, else "blocked:<error>".
FETCHES = {
    # JSON with a content type that needs a CORS preflight.
    "json": """async (url) => { try {
        const r = await fetch(url + '/v1/chat/completions', {method: 'POST',
            headers: {'content-type': 'application/json'},
            body: JSON.stringify({model: 'compat-gpt-4o', messages: [{role: 'user', content: 'hi'}]})});
        return 'read:' + await r.text(); } catch (e) { return 'blocked:' + e.name; } }""",
    # A "simple" request: no preflight, so it does reach the server.
    "simple": """async (url) => { try {
        const r = await fetch(url + '/v1/chat/completions', {method: 'POST',
            headers: {'content-type': 'text/plain'},
            body: JSON.stringify({model: 'compat-gpt-4o', messages: [{role: 'user', content: 'hi'}]})});
        return 'read:' + await r.text(); } catch (e) { return 'blocked:' + e.name; } }""",
    "models": """async (url) => { try {
        const r = await fetch(url + '/v1/models');
        return 'read:' + await r.text(); } catch (e) { return 'blocked:' + e.name; } }""",
}


class PageServer:
    """Serves a harmless page on its own loopback port: another origin than the proxy's."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.end_headers()
                self.wfile.write(ATTACKER_PAGE)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


def start_proxy(mock_url, extra=""):
    """The proxy as installed by default: loopback, no client keys."""
    tmp = tempfile.TemporaryDirectory()
    path = os.path.join(tmp.name, "config.yaml")
    with open(path, "w") as f:
        f.write(f"""
port: 0
auth-dir: "{tmp.name}/auths"
openai-compatibility:
  - name: mockcompat
    base-url: "{mock_url}/v1"
    api-key-entries: [{{ api-key: sk-browser-compat }}]
    models: [{{ name: gpt-4o, alias: compat-gpt-4o }}]
{extra}
""")
    env = dict(os.environ)
    env.pop("CLIPROXY_API_KEY", None)
    proc, url = binaries.start("cliproxy-server", ["--config", path], env)
    return proc, url, tmp


@pytest.fixture
def page_server():
    s = PageServer()
    yield s
    s.stop()


@pytest.fixture
def proxy(mock):
    proc, url, tmp = start_proxy(mock)
    yield url
    proc.terminate()
    proc.wait(15)
    tmp.cleanup()


def completions(mock_url):
    return sum(1 for r in mock_requests(mock_url) if r["path"].endswith("/chat/completions"))


def test_a_cross_origin_page_can_neither_read_nor_drive_the_api(browser, page_server, proxy, mock):
    page = browser.new_page()
    page.goto(page_server.origin + "/")
    before = completions(mock)
    for name, script in FETCHES.items():
        result = page.evaluate(script, proxy)
        assert result.startswith("blocked:"), f"{name}: the page read {result!r}"
    assert completions(mock) == before, "a cross-origin request reached the upstream"


def test_a_rebound_host_name_is_refused(playwright_instance, proxy):
    port = proxy.rsplit(":", 1)[1]
    with tempfile.TemporaryDirectory() as profile:
        ctx = playwright_instance.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True,
            args=FLAGS + ["--host-resolver-rules=MAP rebind.evil.test 127.0.0.1"])
        try:
            page = ctx.new_page()
            # The attacker's name now resolves to 127.0.0.1: its page and the proxy share an origin.
            response = page.goto(f"http://rebind.evil.test:{port}/v1/models")
            assert response.status == 403
            body = json.loads(page.evaluate("document.body.innerText"))
            assert body["error"]["code"] == "forbidden_host"
            result = page.evaluate(FETCHES["models"], f"http://rebind.evil.test:{port}")
            assert "compat-gpt-4o" not in result, result
        finally:
            ctx.close()


def test_a_listed_origin_can_read(browser, page_server, mock):
    proc, url, tmp = start_proxy(mock, f'cors: {{ allow-origins: ["{page_server.origin}"] }}')
    try:
        page = browser.new_page()
        page.goto(page_server.origin + "/")
        result = page.evaluate(FETCHES["json"], url)
        assert result.startswith("read:"), result
        assert json.loads(result[len("read:"):])["choices"][0]["message"]["role"] == "assistant"
        assert page.evaluate(FETCHES["models"], url).startswith("read:")
    finally:
        proc.terminate()
        proc.wait(15)
        tmp.cleanup()

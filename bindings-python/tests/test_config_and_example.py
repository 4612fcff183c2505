"""Configuration sources and warnings, and the README's example script."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import types

import pytest

import cliproxy
from conftest import OPENAI_MODEL, ROOT, directive, make_config, user


def _ok(client) -> bool:
    r = client.chat(model=OPENAI_MODEL, messages=user(directive(reply="configured")))
    return r["choices"][0]["message"]["content"] == "configured"


def test_unknown_keys_become_config_warnings(mock, auth_dir):
    config = make_config(mock.url, auth_dir, **{"no-such-key": 1})
    with pytest.warns(cliproxy.ConfigWarning, match="no-such-key") as caught:
        client = cliproxy.Client(config)
    assert caught[0].filename == __file__, "the warning points at the caller's line"
    assert _ok(client)


def test_yaml_file_as_str_and_pathlike_and_yaml_text(mock, auth_dir, tmp_path):
    yaml = f"""
auth-dir: {auth_dir}
openai-compatibility:
  - name: mock
    base-url: {mock.url}/v1
    api-key-entries: [{{api-key: "${{CLIPROXY_TEST_KEY}}"}}]
    models: [{{name: gpt-4o, alias: {OPENAI_MODEL}}}]
"""
    path = tmp_path / "config.yaml"
    path.write_text(yaml)
    os.environ["CLIPROXY_TEST_KEY"] = "sk-from-env"
    try:
        for client in (cliproxy.Client(str(path)), cliproxy.AsyncClient(path), cliproxy.Client.from_yaml(yaml)):
            assert isinstance(client.models(), list)
        assert _ok(cliproxy.Client(path))
        assert mock.hits()["by_key"].get("sk-from-env", 0) >= 1
    finally:
        del os.environ["CLIPROXY_TEST_KEY"]
    with pytest.raises(cliproxy.ConfigError, match="CLIPROXY_TEST_KEY"):
        cliproxy.Client.from_yaml(yaml)


def test_mappings_and_paths_inside_the_dict(mock, auth_dir):
    config = make_config(mock.url, auth_dir)
    config["auth-dir"] = pathlib.Path(auth_dir)
    assert _ok(cliproxy.Client(types.MappingProxyType(config)))


def test_example_script_streams_from_the_mock(mock):
    script = os.path.join(ROOT, "bindings-python", "examples", "stream.py")
    out = subprocess.run([sys.executable, script], env={**os.environ, "MOCK_URL": mock.url, "HOME": "/nonexistent"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Hello from cliproxy, 世界 👋\n"

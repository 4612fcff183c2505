"""Starting the project's binaries for the Python test suites (official SDKs, browser): each prints
`listening on URL` as its first stdout line once it serves."""
import os
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def start(name, args, env=None):
    """Runs target/debug/NAME with ARGS; returns the process and the URL it listens on."""
    argv = [os.path.join(TARGET, "debug", name), *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), f"{name} said {line!r}"
    return proc, line[len("listening on "):]


def mock():
    """A pytest fixture body: the mock upstream for the whole session."""
    proc, url = start("cliproxy-mock", ["--port", "0"])
    yield url
    proc.terminate()
    proc.wait(10)

"""Threads, the GIL and fork()."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from conftest import MODELS, TEXT, chat_text, directive, messages_text, user


def test_one_client_shared_by_threads(client):
    def worker(i: int) -> list:
        out = []
        for j in range(5):
            text = f"thread {i} request {j} {TEXT}"
            if j % 2:
                r = client.messages(model=MODELS[i % 2], max_tokens=200, messages=user(directive(reply=text)))
                out.append(r["content"][0]["text"] == text)
            else:
                s = client.chat(model=MODELS[i % 2], messages=user(directive(reply=text, chunk=5)), stream=True)
                out.append(chat_text(s) == text)
        return out

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert all(all(r) for r in results)


def test_the_gil_is_released_while_waiting(client):
    """A pure-Python loop keeps running in the main thread while another thread waits for a slow answer."""
    done = {}

    def slow_call():
        client.chat(model=MODELS[0], messages=user(directive(reply="late", fault={"hang_ms": 1000})))
        done["at"] = time.monotonic()

    t = threading.Thread(target=slow_call)
    t.start()
    time.sleep(0.1)  # let the call start waiting
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 0.3:
        n += 1
    finished = time.monotonic()
    t.join()
    assert n > 10_000
    assert finished < done["at"], "the loop ran to its end while the call was still waiting"


def _run_in_child(body) -> dict:
    """Forks; the child runs `body()` and reports its JSON result (or error) through a pipe."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process may deadlock; this is what is under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(r)
            result = {"ok": body()}
            code = 0
        except BaseException as e:  # noqa: BLE001 - everything must be reported to the parent
            result = {"error": f"{type(e).__name__}: {e}"}
        try:
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung")
        time.sleep(0.02)
    with os.fdopen(r, "rb") as f:
        report = json.loads(f.read() or b"{}")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, report
    return report["ok"]


def test_use_after_fork(client, aclient):
    # The parent has live connections and runtime threads when it forks.
    assert client.chat(model=MODELS[0], messages=user(directive(reply="parent")))["choices"][0]["message"][
        "content"] == "parent"

    def in_child():
        whole = client.chat(model=MODELS[1], messages=user(directive(reply="child " + TEXT)))
        streamed = chat_text(client.chat(model=MODELS[0], messages=user(directive(reply=TEXT, chunk=1)), stream=True))

        async def both():
            return messages_text([e async for e in await aclient.messages(
                model=MODELS[1], max_tokens=100, messages=user(directive(reply=TEXT, chunk=3)), stream=True)])

        return [whole["choices"][0]["message"]["content"], streamed, asyncio.run(both())]

    assert _run_in_child(in_child) == ["child " + TEXT, TEXT, TEXT]
    # And the parent's client is untouched by what the child did.
    for _ in range(3):
        r = client.messages(model=MODELS[0], max_tokens=50, messages=user(directive(reply="parent again")))
        assert r["content"][0]["text"] == "parent again"


def test_fork_from_a_thread_busy_with_a_request(client):
    """Forking while another thread of the parent waits on the runtime must not wedge the child."""
    t = threading.Thread(target=lambda: client.chat(model=MODELS[0], messages=user(directive(
        reply="busy", fault={"hang_ms": 800}))))
    t.start()
    time.sleep(0.2)
    try:
        assert _run_in_child(lambda: client.chat(model=MODELS[0], messages=user(directive(reply="ok")))["choices"][0][
            "message"]["content"]) == "ok"
    finally:
        t.join()

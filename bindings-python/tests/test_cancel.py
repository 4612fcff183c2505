"""Leaving a stream early cancels the upstream request: the mock sees its connection close mid-answer."""

from __future__ import annotations

import _thread
import asyncio
import gc
import threading
import time

import pytest

from conftest import MODELS, TEXT, chat_text, directive, messages_text, user

# About 40 events 100 ms apart: the answer would take seconds, so a cancel is seen long before it ends.
SLOW = directive(reply=" ".join(["word"] * 40), delay_ms=100)


def cancelled_after(mock, action) -> bool:
    """Runs `action` and tells whether the mock then counted one more cancelled stream."""
    before = mock.hits()["cancelled"]
    action()
    return mock.wait_for(lambda h: h["cancelled"] > before)["cancelled"] == before + 1


@pytest.mark.parametrize("model", MODELS)
def test_close(client, mock, model):
    def action():
        stream = client.chat(model=model, messages=user(SLOW), stream=True)
        next(stream)
        stream.close()
        assert stream.closed
        assert list(stream) == []

    assert cancelled_after(mock, action)


def test_leaving_the_with_block(client, mock):
    def action():
        with client.messages(model=MODELS[0], max_tokens=500, messages=user(SLOW), stream=True) as s:
            for event in s:
                if event["type"] == "content_block_delta":
                    break

    assert cancelled_after(mock, action)


def test_break_out_of_a_for_loop(client, mock):
    def action():
        for _chunk in client.chat(model=MODELS[1], messages=user(SLOW), stream=True):
            break
        gc.collect()  # CPython frees the stream at once; this only makes the test independent of that

    assert cancelled_after(mock, action)


def test_ctrl_c_during_a_stream_read(client, mock):
    """Ctrl-C while a blocking read waits raises KeyboardInterrupt promptly; the stream stays readable."""
    stream = client.chat(model=MODELS[0], messages=user(directive(reply="a b c", delay_ms=800)), stream=True)
    next(stream)
    timer = threading.Timer(0.2, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        next(stream)
    assert time.monotonic() - started < 0.7
    assert next(stream)["object"] == "chat.completion.chunk"
    assert cancelled_after(mock, stream.close)


def test_ctrl_c_during_a_request(client):
    timer = threading.Timer(0.3, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        client.chat(model=MODELS[0], messages=user(directive(fault={"hang_ms": 4000})))
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("model", MODELS)
def test_async_aclose(aclient, mock, model):
    async def main():
        stream = await aclient.messages(model=model, max_tokens=500, messages=user(SLOW), stream=True)
        await stream.__anext__()
        await stream.aclose()
        assert [e async for e in stream] == []

    assert cancelled_after(mock, lambda: asyncio.run(main()))


def test_async_with_and_break(aclient, mock):
    async def main():
        async with await aclient.chat(model=MODELS[1], messages=user(SLOW), stream=True) as s:
            async for _chunk in s:
                break

    assert cancelled_after(mock, lambda: asyncio.run(main()))


def test_cancelling_the_task_that_reads(aclient, mock):
    async def main():
        stream = await aclient.chat(model=MODELS[0], messages=user(SLOW), stream=True)

        async def consume():
            async for _ in stream:
                pass

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.35)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stream.closed

    assert cancelled_after(mock, lambda: asyncio.run(main()))


def test_wait_for_timeout_on_a_request(aclient):
    async def main():
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aclient.chat(model=MODELS[0], messages=user(directive(fault={"hang_ms": 3000}))),
                                   0.3)
        assert time.monotonic() - started < 1.0
        # The client is unaffected.
        r = await aclient.chat(model=MODELS[0], messages=user(directive(reply=TEXT)))
        return r["choices"][0]["message"]["content"]

    assert asyncio.run(main()) == TEXT


def test_a_stream_has_one_reader(client):
    stream = client.messages(model=MODELS[1], max_tokens=100, messages=user(directive(reply="x y z", delay_ms=300)),
                             stream=True)
    errors = []

    def second_reader():
        time.sleep(0.1)
        try:
            next(stream)
        except RuntimeError as e:
            errors.append(e)

    t = threading.Thread(target=second_reader)
    t.start()
    rest = list(stream)
    t.join()
    assert len(errors) == 1 and "one reader" in str(errors[0])
    assert messages_text(rest) in ("x y z", " y z", "y z", " z", "z")

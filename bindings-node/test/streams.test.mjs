// Stream lifetimes: aborting or leaving a `for await` cancels the upstream request (the mock sees its
// connection close), and many streams run at once without mixing their events.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { Client, CliproxyError } from 'cliproxy';
import { startMock, mockConfig, directive, eventually, TEXT, OPENAI_MODEL, CLAUDE_MODEL } from './mock.mjs';

let mock;

before(async () => {
  mock = await startMock();
});

after(() => mock.stop());

beforeEach(() => mock.reset());

const user = (content) => [{ role: 'user', content }];

/** A stream slow enough to be interrupted: one word every 50 ms, 40 words. */
const SLOW = directive({ reply: Array.from({ length: 40 }, (_, i) => `word${i}`).join(' '), delay_ms: 50 });

async function upstreamCancelled() {
  await eventually(async () => (await mock.hits()).cancelled === 1, 5000, 'the mock to see the connection close');
}

for (const [method, model] of [['chatStream', OPENAI_MODEL], ['messagesStream', CLAUDE_MODEL], ['chatStream', CLAUDE_MODEL]]) {
  test(`aborting the signal mid-stream cancels the upstream request (${method} via ${model})`, async () => {
    const client = new Client(mockConfig(mock.url));
    const controller = new AbortController();
    const stream = client[method]({ model, max_tokens: 512, messages: user(SLOW) }, { signal: controller.signal });
    let events = 0;
    const started = Date.now();
    await assert.rejects(
      (async () => {
        for await (const _ of stream) {
          assert.ok(!controller.signal.aborted, 'no event is handed out after the abort');
          if (++events === 3) controller.abort();
        }
      })(),
      (err) => err instanceof CliproxyError && err.code === 'CANCELLED',
    );
    assert.ok(Date.now() - started < 1500, 'stopped long before the 2 s stream would have ended');
    await upstreamCancelled();
    assert.equal((await mock.hits()).total, 1);
    assert.deepEqual(await stream.next(), { value: undefined, done: true });
  });

  test(`breaking out of for await cancels the upstream request (${method} via ${model})`, async () => {
    const client = new Client(mockConfig(mock.url));
    let events = 0;
    for await (const _ of client[method]({ model, max_tokens: 512, messages: user(SLOW) })) {
      if (++events === 2) break;
    }
    await upstreamCancelled();
  });
}

test('an abort while the stream is still connecting cancels it too', async () => {
  const client = new Client(mockConfig(mock.url));
  const controller = new AbortController();
  const stream = client.chatStream({ model: OPENAI_MODEL, messages: user(directive({ reply: 'late', fault: { hang_ms: 3000 } })) }, { signal: controller.signal });
  setTimeout(() => controller.abort(), 100);
  await assert.rejects(stream.next(), { code: 'CANCELLED' });
  await eventually(async () => (await mock.hits()).total === 1, 2000, 'the request to reach the mock');
});

test('an already aborted signal fails before any request is sent', async () => {
  const client = new Client(mockConfig(mock.url));
  const stream = client.messagesStream({ model: CLAUDE_MODEL, max_tokens: 8, messages: user('hi') }, { signal: AbortSignal.abort() });
  await assert.rejects(stream.next(), { code: 'CANCELLED' });
  assert.equal((await mock.hits()).total, 0);
});

test('a stream that finished normally is not counted as cancelled', async () => {
  const client = new Client(mockConfig(mock.url));
  const controller = new AbortController();
  let text = '';
  for await (const chunk of client.chatStream({ model: OPENAI_MODEL, messages: user(directive({ reply: TEXT })) }, { signal: controller.signal })) {
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  controller.abort();
  assert.equal(text, TEXT);
  const hits = await mock.hits();
  assert.equal(hits.total, 1);
  assert.equal(hits.cancelled, 0);
});

test('100 concurrent streams each get their own answer', async () => {
  const client = new Client(mockConfig(mock.url, { keys: ['sk-many-1', 'sk-many-2', 'sk-many-3'] }));
  const N = 100;
  const started = Date.now();
  const results = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const reply = `stream ${i}: ${TEXT}`;
      const model = i % 2 ? OPENAI_MODEL : CLAUDE_MODEL;
      let text = '';
      if (i % 4 < 2) {
        for await (const chunk of client.chatStream({ model, messages: user(directive({ reply, chunk: 3, delay_ms: 5 })) })) {
          text += chunk.choices[0]?.delta?.content ?? '';
        }
      } else {
        for await (const ev of client.messagesStream({ model, max_tokens: 256, messages: user(directive({ reply, chunk: 3, delay_ms: 5 })) })) {
          if (ev.type === 'content_block_delta') text += ev.delta.text;
        }
      }
      return text === reply;
    }),
  );
  assert.equal(results.filter(Boolean).length, N);
  const hits = await mock.hits();
  assert.equal(hits.total, N);
  assert.equal(hits.cancelled, 0);
  assert.ok(Date.now() - started < 20000);
});

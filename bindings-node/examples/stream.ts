// A typed tour of the API: stream in both dialects, stop on Ctrl-C, and act on error codes.
// Type-checked by `npm run typecheck` (tsc --noEmit); run it with a TypeScript runner of your choice.
import { Client, CliproxyError, serve, type ChatCompletionChunk, type MessageStreamEvent } from 'cliproxy';

async function main(): Promise<void> {
  const client = new Client(process.argv[2] ?? 'config.yaml');
  const model = process.argv[3] ?? 'claude-sonnet-4-5-20250929';
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort(new Error('interrupted')));

  // OpenAI shape: chunks with `choices[].delta`.
  const chunks = client.chatStream({ model, messages: [{ role: 'user', content: 'Count to five.' }] }, { signal: controller.signal });
  for await (const chunk of chunks) {
    const c: ChatCompletionChunk = chunk;
    process.stdout.write(c.choices[0]?.delta?.content ?? '');
  }
  process.stdout.write(`\n(served by ${chunks.credential ?? 'unknown'})\n`);

  // Anthropic shape: typed events, narrowed by `type`.
  const events = client.messagesStream({ model, max_tokens: 256, messages: [{ role: 'user', content: 'And back.' }] });
  for await (const event of events) {
    const e: MessageStreamEvent = event;
    if (e.type === 'content_block_delta' && e.delta.type === 'text_delta') process.stdout.write(e.delta.text);
  }
  process.stdout.write('\n');

  try {
    const reply = await client.chat({ model, messages: [{ role: 'user', content: 'One word.' }] });
    console.log(reply.choices[0]?.message.content, reply.usage?.total_tokens);
  } catch (err) {
    if (err instanceof CliproxyError && (err.code === 'RATE_LIMITED' || err.code === 'QUOTA_EXCEEDED')) {
      const cooling = client.cooldowns().map((c) => `${c.credential} until ${c.until.toISOString()}`);
      console.error(`retry in ${err.retryAfter ?? '?'} s; cooling: ${cooling.join(', ')}`);
    } else {
      throw err;
    }
  }

  const message = await client.messages({ model, max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] });
  for (const block of message.content) if (block.type === 'text' && typeof block.text === 'string') console.log(block.text);

  for (const u of client.usage()) console.log(u.credential, u.requests, u.inputTokens + u.outputTokens);
  const reset: number = client.resetCooldowns({ model });
  console.log(`cleared ${reset} cooldowns of ${client.models().length} models`);

  const server = await serve(client, { port: 0 });
  console.log(`OpenAI base URL: ${server.url}/v1`);
  await server.close({ drainMs: 1000 });
}

main().catch((err: unknown) => {
  console.error(err instanceof CliproxyError ? `${err.code}: ${err.message}` : err);
  process.exitCode = 1;
});

// Streams an answer: node stream.mjs [config.yaml] [model] [prompt]
import { Client } from 'cliproxy';
const [config = 'config.yaml', model = 'claude-sonnet-4-5-20250929', prompt = 'Say hello.'] = process.argv.slice(2);
const client = new Client(config);
for await (const chunk of client.chatStream({ model, messages: [{ role: 'user', content: prompt }] })) process.stdout.write(chunk.choices[0]?.delta?.content ?? '');
process.stdout.write('\n');

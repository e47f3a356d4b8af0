// optiq serve with a canvas-diffusion model, driven by the official OpenAI and Anthropic SDKs: the model
// directory is dgemma-tiny's config and weights (--model) plus the synthetic tokenizer of
// tests/serve/data/dgemma-tiny-tokenizer (--tokenizer), assembled in a temp dir. A canvas request with
// sampler and seed, and an image request in each dialect, must equal `optiq generate` on the same prompt
// ids, sampler, seed and image file; a remote image URL is a BadRequestError (400); the server stays up.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { parseArgs, requireFrom, startServer, Checks, chatPromptIds } from './lib.mjs';

const args = parseArgs();
const require = requireFrom(args['node-modules']);
const OpenAI = require('openai').default ?? require('openai');
const Anthropic = require('@anthropic-ai/sdk').default ?? require('@anthropic-ai/sdk');
const c = new Checks();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'optiq-canvas-'));
for (const f of ['config.json', 'generation_config.json', 'model.safetensors'])
  fs.copyFileSync(path.join(args.model, f), path.join(dir, f));
for (const f of ['tokenizer.json', 'tokenizer_config.json'])
  fs.copyFileSync(path.join(args.tokenizer, f), path.join(dir, f));

// The fixture's 24×24 RGB image as a PNG (node 20 has no zlib.crc32: a bitwise one).
function crc32(buf) {
  let crc = ~0;
  for (const b of buf) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}
function pngChunk(type, data) {
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(rgb, w, h) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) rgb.copy(raw, y * (w * 3 + 1) + 1, y * w * 3, (y + 1) * w * 3);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;  // bit depth
  ihdr[9] = 2;  // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr),
                        pngChunk('IDAT', zlib.deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))]);
}
const pngPath = path.join(dir, 'image.png');
fs.writeFileSync(pngPath, png(fs.readFileSync(path.join(args.model, 'image_24x24_rgb8.bin')), 24, 24));
const b64 = fs.readFileSync(pngPath).toString('base64');
const dataUrl = 'data:image/png;base64,' + b64;

// `optiq generate --json` on the same ids, sampler, seed and image; its text and token counts.
function cli({ ids, sampler, seed, maxTokens, image }) {
  const a = ['generate', '--model', dir, '--prompt-ids', ids.join(','), '--sampler', sampler, '--seed', String(seed),
             '--max-tokens', String(maxTokens), '--threads', '1', '--json'];
  if (image) a.push('--image', image);
  const j = JSON.parse(execFileSync(args.optiq, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim());
  const last = j.canvases[j.canvases.length - 1];
  const stopped = last.eos_at !== null && j.tokens.length < maxTokens;
  return { text: j.text, completion: j.tokens.length + (stopped ? 1 : 0), finish: stopped ? 'stop' : 'length' };
}

const srv = await startServer(args.optiq, dir);
const openai = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'sk-optiq-test', maxRetries: 0, timeout: 60000 });
const anthropic = new Anthropic({ baseURL: srv.base, apiKey: 'sk-ant-test', maxRetries: 0, timeout: 60000 });

try {
  // --- text: canvas fields pass through the SDK as extra body fields ---
  const messages = [{ role: 'user', content: 'Tell me a story' }];
  const ids = chatPromptIds(args.optiq, dir, messages);
  for (const sampler of ['entropy-bound', 'confidence-threshold']) {
    const want = cli({ ids, sampler, seed: 16, maxTokens: 40 });
    c.ok(want.text.length > 0, `${sampler}: optiq generate produced text`);
    const chat = await openai.chat.completions.create({ model: 'x', messages, max_tokens: 40, seed: 16, sampler });
    c.eq(chat.choices[0].message.content ?? '', want.text, `${sampler}: chat = optiq generate`);
    c.eq(chat.choices[0].finish_reason, want.finish, `${sampler}: finish_reason`);
    c.eq(chat.usage.prompt_tokens, ids.length, `${sampler}: prompt_tokens`);
    c.eq(chat.usage.completion_tokens, want.completion, `${sampler}: completion_tokens`);
    let streamed = '';
    for await (const ch of await openai.chat.completions.create({ model: 'x', messages, max_tokens: 40, seed: 16, sampler, stream: true }))
      streamed += ch.choices[0]?.delta?.content ?? '';
    c.eq(streamed, want.text, `${sampler}: streamed chat = optiq generate`);
  }

  // --- an image, in each dialect; the template's image item is where optiq generate's image token goes ---
  const templateMsgs = [{ role: 'user', content: [{ type: 'text', text: 'What is in ' }, { type: 'image' }, { type: 'text', text: '?' }] }];
  const imgIds = chatPromptIds(args.optiq, dir, templateMsgs);
  const want = cli({ ids: imgIds, sampler: 'confidence-threshold', seed: 4, maxTokens: 24, image: pngPath });
  c.ok(want.text.length > 0, 'image: optiq generate produced text');
  const oaMsgs = [{ role: 'user', content: [{ type: 'text', text: 'What is in ' }, { type: 'image_url', image_url: { url: dataUrl } },
                                            { type: 'text', text: '?' }] }];
  const chat = await openai.chat.completions.create({ model: 'x', messages: oaMsgs, max_tokens: 24, seed: 4, sampler: 'confidence-threshold' });
  c.eq(chat.choices[0].message.content ?? '', want.text, 'image_url chat = optiq generate --image');
  c.eq(chat.usage.completion_tokens, want.completion, 'image chat completion_tokens');
  c.ok(chat.usage.prompt_tokens > imgIds.length, 'image chat prompt_tokens include the soft tokens');

  const anMsgs = [{ role: 'user', content: [{ type: 'text', text: 'What is in ' },
                                            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: b64 } },
                                            { type: 'text', text: '?' }] }];
  const msg = await anthropic.messages.create({ model: 'claude-x', max_tokens: 24, messages: anMsgs, seed: 4, sampler: 'confidence-threshold' });
  c.eq(msg.content[0].text, want.text, 'Anthropic base64 image = optiq generate --image');
  c.eq(msg.usage.input_tokens, chat.usage.prompt_tokens, 'Anthropic input_tokens = OpenAI prompt_tokens');
  let anStreamed = '';
  let started = null;
  const stream = anthropic.messages.stream({ model: 'claude-x', max_tokens: 24, messages: anMsgs, seed: 4, sampler: 'confidence-threshold' });
  for await (const ev of stream) {
    if (ev.type === 'message_start') started = ev.message.usage.input_tokens;
    if (ev.type === 'content_block_delta') anStreamed += ev.delta.text;
  }
  c.eq(anStreamed, want.text, 'Anthropic streamed image reply');
  c.eq(started, chat.usage.prompt_tokens, 'message_start input_tokens include the soft tokens');

  // --- errors: never fetched; the server stays up ---
  try {
    await openai.chat.completions.create({ model: 'x', max_tokens: 4, messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] });
    c.ok(false, 'remote image URL: no exception');
  } catch (e) {
    c.ok(e instanceof OpenAI.BadRequestError, `remote image URL: ${e?.constructor?.name}`);
    c.ok(String(e.message).includes('messages[0].content[0].image_url.url'), `remote image URL names the field: ${e.message}`);
  }
  try {
    await anthropic.messages.create({ model: 'x', max_tokens: 4, messages: [{ role: 'user', content: [
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'bm90IGFuIGltYWdl' } }] }] });
    c.ok(false, 'undecodable image: no exception');
  } catch (e) {
    c.ok(e instanceof Anthropic.BadRequestError, `undecodable image: ${e?.constructor?.name}`);
  }
  const health = await fetch(srv.base + '/health');
  c.eq(health.status, 200, 'healthy after the errors');
} finally {
  const st = await srv.stop();
  c.eq(st.code, 0, 'clean exit on SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
}
c.report();

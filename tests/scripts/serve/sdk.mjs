// optiq serve driven by the official OpenAI and Anthropic SDKs (pinned in package.json): streaming and
// non-streaming chat, completions, responses and messages; stop sequences; usage counts; errors as SDK
// exceptions with the right status codes; 503 + Retry-After when the queue is full; clean SIGTERM.
import path from 'node:path';
import { parseArgs, requireFrom, startServer, Checks, chatPromptIds, sleep } from './lib.mjs';

const args = parseArgs();
const require = requireFrom(args['node-modules']);
const OpenAI = require('openai').default ?? require('openai');
const Anthropic = require('@anthropic-ai/sdk').default ?? require('@anthropic-ai/sdk');
const c = new Checks();

const srv = await startServer(args.optiq, args.model, ['--allowed-origins', 'http://localhost:5173']);
// The id responses report: --model-id's default, the model directory's name.
const servedId = path.basename(path.resolve(args.model));
const openai = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'sk-optiq-test', maxRetries: 0, timeout: 60000 });
const anthropic = new Anthropic({ baseURL: srv.base, apiKey: 'sk-ant-test', maxRetries: 0, timeout: 60000 });

async function expectError(what, fn, status, Klass) {
  try {
    await fn();
    c.ok(false, `${what}: no exception`);
  } catch (e) {
    c.ok(e instanceof Klass, `${what}: ${e?.constructor?.name} is not ${Klass.name} (${e})`);
    c.eq(e.status, status, `${what}: status`);
    return e;
  }
}

try {
  const messages = [{ role: 'user', content: 'Tell me about the old house' }];
  const promptIds = chatPromptIds(args.optiq, args.model, messages);

  // --- chat, non-streaming and streaming ---
  const chat = await openai.chat.completions.create({ model: 'anything', messages, max_tokens: 40 });
  const text = chat.choices[0].message.content ?? '';
  c.eq(chat.object, 'chat.completion', 'chat object');
  c.eq(chat.model, servedId, 'the response names the served model, not the label sent');
  c.eq(chat.usage.prompt_tokens, promptIds.length, 'chat usage.prompt_tokens = optiq tokenize of the template');
  c.ok(['stop', 'length'].includes(chat.choices[0].finish_reason), 'chat finish_reason');
  if (chat.choices[0].finish_reason === 'length') c.eq(chat.usage.completion_tokens, 40, 'length → completion_tokens = max_tokens');
  c.eq(chat.usage.total_tokens, chat.usage.prompt_tokens + chat.usage.completion_tokens, 'total_tokens');
  c.ok(text.length > 0, 'chat produced text');

  const stream = await openai.chat.completions.create({
    model: 'anything', messages, max_tokens: 40, stream: true, stream_options: { include_usage: true },
  });
  let streamed = '';
  let first = true;
  let finish = null;
  let usage = null;
  let afterFinish = 0;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    if (first) c.eq(chunk.choices[0].delta.role, 'assistant', 'role in the first delta');
    first = false;
    if (finish) afterFinish++;
    streamed += chunk.choices[0].delta.content ?? '';
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  c.eq(streamed, text, 'streamed chat = non-streamed chat (greedy)');
  c.eq(finish, chat.choices[0].finish_reason, 'stream finish_reason');
  c.eq(afterFinish, 0, 'finish_reason is on the last choice chunk');
  c.eq(usage, chat.usage, 'stream usage frame = non-stream usage');

  // --- legacy completions ---
  const comp = await openai.completions.create({ model: 'x', prompt: 'The city was', max_tokens: 30 });
  c.eq(comp.object, 'text_completion', 'completion object');
  c.eq(comp.usage.completion_tokens, comp.choices[0].finish_reason === 'length' ? 30 : comp.usage.completion_tokens,
       'completion usage');
  let compStreamed = '';
  for await (const ch of await openai.completions.create({ model: 'x', prompt: 'The city was', max_tokens: 30, stream: true }))
    compStreamed += ch.choices[0]?.text ?? '';
  c.eq(compStreamed, comp.choices[0].text, 'streamed completion = non-streamed');

  // --- stop sequences (a substring of the greedy output must end it, in both APIs, never leaking) ---
  const base = comp.choices[0].text;
  if (base.length >= 12) {
    const stop = base.slice(5, 8);
    const want = base.slice(0, base.indexOf(stop));
    const s1 = await openai.completions.create({ model: 'x', prompt: 'The city was', max_tokens: 30, stop: [stop] });
    c.eq(s1.choices[0].text, want, 'completion stop string cuts the text');
    c.eq(s1.choices[0].finish_reason, 'stop', 'stop string → finish_reason stop');
    let s2 = '';
    const pieces = [];
    for await (const ch of await openai.completions.create({ model: 'x', prompt: 'The city was', max_tokens: 30, stop, stream: true })) {
      s2 += ch.choices[0]?.text ?? '';
      pieces.push(ch.choices[0]?.text ?? '');
    }
    c.eq(s2, want, 'streamed stop string: nothing of it leaks');
  } else {
    c.ok(false, `completion too short for the stop test: ${JSON.stringify(base)}`);
  }

  // --- Anthropic messages ---
  const msg = await anthropic.messages.create({ model: 'claude-any-label', max_tokens: 40, messages });
  c.eq(msg.type, 'message', 'anthropic type');
  c.eq(msg.content[0].type, 'text', 'anthropic text block');
  c.eq(msg.content[0].text, text, 'anthropic text = openai chat text (same prompt, greedy)');
  c.eq(msg.usage.input_tokens, promptIds.length, 'anthropic input_tokens');
  c.eq(msg.usage.output_tokens, chat.usage.completion_tokens, 'anthropic output_tokens');
  c.eq(msg.stop_reason, chat.choices[0].finish_reason === 'length' ? 'max_tokens' : 'end_turn', 'anthropic stop_reason');

  const events = [];
  let aText = '';
  let aUsage = null;
  for await (const ev of await anthropic.messages.create({ model: 'c', max_tokens: 40, messages, stream: true })) {
    if (events[events.length - 1] !== ev.type || ev.type !== 'content_block_delta') events.push(ev.type);
    if (ev.type === 'content_block_delta') aText += ev.delta.text;
    if (ev.type === 'message_delta') aUsage = ev.usage;
  }
  c.eq(events, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'],
       'anthropic event order');
  c.eq(aText, text, 'anthropic streamed text');
  c.eq(aUsage?.output_tokens, msg.usage.output_tokens, 'anthropic streamed usage');

  // The SDK's stream helper accumulates the final message.
  const helper = anthropic.messages.stream({ model: 'c', max_tokens: 40, messages });
  const final = await helper.finalMessage();
  c.eq(final.content[0].text, text, 'anthropic stream helper finalMessage');

  if (text.length >= 10) {
    const stop = text.slice(4, 7);
    const m2 = await anthropic.messages.create({ model: 'c', max_tokens: 40, messages, stop_sequences: [stop] });
    c.eq(m2.content[0].text, text.slice(0, text.indexOf(stop)), 'anthropic stop_sequences cut');
    c.eq(m2.stop_reason, 'stop_sequence', 'anthropic stop_reason stop_sequence');
    c.eq(m2.stop_sequence, stop, 'anthropic stop_sequence echoed');
  }

  // --- Responses ---
  const resp = await openai.responses.create({ model: 'x', input: messages[0].content, max_output_tokens: 40 });
  c.eq(resp.output_text, text, 'responses output_text = chat text');
  c.eq(resp.usage.input_tokens, promptIds.length, 'responses input_tokens');
  let rText = '';
  let completed = null;
  for await (const ev of await openai.responses.create({ model: 'x', input: messages[0].content, max_output_tokens: 40, stream: true })) {
    if (ev.type === 'response.output_text.delta') rText += ev.delta;
    if (ev.type === 'response.completed') completed = ev.response;
  }
  c.eq(rText, text, 'responses streamed deltas');
  c.eq(completed?.output?.[0]?.content?.[0]?.text, text, 'responses completed event carries the text');

  // --- a non-streaming request queued behind a long one: the server probes the client with JSON
  // whitespace while it waits, and the SDK still parses the body ---
  const ac = new AbortController();
  const longStream = await openai.completions.create({ model: 'x', prompt: 'The', max_tokens: 1500, stream: true }, { signal: ac.signal });
  const drain = (async () => { try { for await (const _ of longStream) {} } catch {} })();
  const queued = await openai.chat.completions.create({ model: 'anything', messages, max_tokens: 40 });
  c.eq(queued.choices[0].message.content ?? '', text, 'queued non-streaming request parses and matches');
  ac.abort();
  await drain;

  // --- models ---
  const models = await openai.models.list();
  c.ok(models.data.length === 1, 'one model listed');
  c.eq(models.data[0].id, servedId, 'listed under the served id');
  c.eq(msg.model, servedId, 'anthropic message names the served model');
  c.eq(resp.model, servedId, 'responses API names the served model');

  // --- server conventions: 405 + Allow, CORS for an allowed origin, preflight ---
  const wrong = await fetch(srv.base + '/v1/chat/completions');
  c.eq(wrong.status, 405, 'GET on a POST route: 405');
  c.eq(wrong.headers.get('allow'), 'POST, OPTIONS', '405 names the allowed methods');
  c.eq((await wrong.json()).error.type, 'invalid_request_error', '405 has an OpenAI error body');
  const pre = await fetch(srv.base + '/v1/messages', {
    method: 'OPTIONS',
    headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST',
               'access-control-request-headers': 'x-api-key,anthropic-version,content-type' },
  });
  c.eq(pre.status, 204, 'preflight: 204');
  c.eq(pre.headers.get('access-control-allow-origin'), 'http://localhost:5173', 'preflight echoes the allowed origin');
  c.ok(/anthropic-version/.test(pre.headers.get('access-control-allow-headers') ?? ''), 'preflight allows anthropic-version');
  const cross = await fetch(srv.base + '/v1/models', { headers: { origin: 'http://elsewhere.example' } });
  c.eq(cross.headers.get('access-control-allow-origin'), null, 'no CORS header for another origin');
  c.eq(cross.headers.get('vary'), 'Origin', 'Vary: Origin');

  // --- errors as SDK exceptions ---
  await expectError('missing messages', () => openai.chat.completions.create({ model: 'x' }), 400, OpenAI.BadRequestError);
  const t = await expectError('temperature out of range', () => openai.chat.completions.create({ model: 'x', messages, temperature: 7 }), 400,
                              OpenAI.BadRequestError);
  c.eq(t?.param, 'temperature', 'the SDK error carries param');
  c.eq(t?.code, 'invalid_value', 'the SDK error carries code');
  await expectError('diffusion with sampling', () => openai.chat.completions.create({ model: 'x', messages, temperature: 0.8, decoding: 'diffusion' }),
                    400, OpenAI.BadRequestError);
  await expectError('prompt beyond the context', () => openai.completions.create({ model: 'x', prompt: 'a'.repeat(5000), max_tokens: 4 }), 400,
                    OpenAI.BadRequestError);
  await expectError('unknown model id', () => openai.models.retrieve('no-such-model'), 404, OpenAI.NotFoundError);
  await expectError('anthropic missing max_tokens', () => anthropic.messages.create({ model: 'c', messages }), 400,
                    Anthropic.BadRequestError);
  await expectError('anthropic bad role', () => anthropic.messages.create({ model: 'c', max_tokens: 5, messages: [{ role: 'robot', content: 'x' }] }),
                    400, Anthropic.BadRequestError);
  const se = await expectError('stream with bad params', () => openai.chat.completions.create({ model: 'x', messages: [], stream: true }), 400,
                               OpenAI.BadRequestError);
  c.ok(/messages/.test(se?.message ?? ''), 'error message names the field');
} catch (e) {
  c.ok(false, 'unexpected exception: ' + (e?.stack ?? e));
}
const st = await srv.stop();
c.eq(st, { code: 0, signal: null }, 'SIGTERM → clean exit 0');

// --- auth and a full queue on servers of their own ---
const authSrv = await startServer(args.optiq, args.model, ['--api-key', 'sk-optiq-secret', '--queue', '1']);
try {
  const bad = new OpenAI({ baseURL: authSrv.base + '/v1', apiKey: 'wrong', maxRetries: 0 });
  await expectError('wrong api key', () => bad.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'x' }] }), 401,
                    OpenAI.AuthenticationError);
  const badA = new Anthropic({ baseURL: authSrv.base, apiKey: 'wrong', maxRetries: 0 });
  await expectError('anthropic wrong api key', () => badA.messages.create({ model: 'c', max_tokens: 3, messages: [{ role: 'user', content: 'x' }] }),
                    401, Anthropic.AuthenticationError);
  const good = new OpenAI({ baseURL: authSrv.base + '/v1', apiKey: 'sk-optiq-secret', maxRetries: 0 });
  // One long generation runs, one waits (queue 1); the rest are refused with 503 + Retry-After.
  const ac = new AbortController();
  const long = { model: 'x', prompt: 'The', max_tokens: 3000, stream: true };
  const first = good.completions.create(long, { signal: ac.signal });
  const s0 = await first;
  const rest = [];
  for (let i = 0; i < 4; i++) rest.push(good.completions.create({ ...long, stream: false }, { signal: ac.signal }).then(() => null, (e) => e));
  await sleep(300);
  ac.abort();
  const errs = await Promise.all(rest);
  const busy = errs.filter((e) => e && e.status === 503);
  c.ok(busy.length >= 2, `queue full → 503 for at least 2 of 4 (got ${errs.map((e) => e?.status ?? e?.name)})`);
  c.ok(busy.every((e) => e instanceof OpenAI.InternalServerError), '503 surfaces as InternalServerError');
  c.ok(busy.every((e) => e.headers?.get?.('retry-after') === '1'), '503 carries Retry-After');
  try { for await (const _ of s0) {} } catch {}
  const h = await fetch(authSrv.base + '/health');
  c.eq(h.status, 200, 'healthy after the overload');
} catch (e) {
  c.ok(false, 'unexpected exception: ' + (e?.stack ?? e));
}
const st2 = await authSrv.stop();
c.eq(st2.code, 0, 'second server exits 0');
c.report();

// A corpus of malformed requests: each must be answered 4xx with an error body in the route's dialect,
// and the server must stay healthy and keep generating afterwards.
import net from 'node:net';
import { parseArgs, startServer, Checks } from './lib.mjs';

const args = parseArgs();
const c = new Checks();
const srv = await startServer(args.optiq, args.model, ['--max-body-bytes', '65536']);

const chat = '/v1/chat/completions';
const comp = '/v1/completions';
const msgs = '/v1/messages';
const resp = '/v1/responses';
const user = [{ role: 'user', content: 'hi' }];
const J = JSON.stringify;

// [path, body (string sent verbatim), expected status, headers?]
const corpus = [
  [chat, '', 400], [chat, '{', 400], [chat, '}', 400], [chat, 'null', 400], [chat, '42', 400], [chat, '"str"', 400],
  [chat, '[]', 400], [chat, '{"messages":', 400], [chat, '{"messages":[}', 400], [chat, '\u0000\u0001', 400],
  [chat, '{"messages":[{"role":"user","content":"\\ud800"}]', 400],
  [chat, '{"a":1,}', 400], [chat, "{'messages':[]}", 400], [chat, '{"messages":[]} trailing', 400],
  [chat, '['.repeat(30000) + ']'.repeat(30000), 400],
  [chat, '{"x":' + '{"y":'.repeat(200) + '1' + '}'.repeat(201), 400],
  [chat, J({}), 400], [chat, J({ messages: 'hi' }), 400], [chat, J({ messages: {} }), 400], [chat, J({ messages: [] }), 400],
  [chat, J({ messages: [1] }), 400], [chat, J({ messages: [{}] }), 400], [chat, J({ messages: [{ role: 'user' }] }), 400],
  [chat, J({ messages: [{ role: 7, content: 'x' }] }), 400], [chat, J({ messages: [{ role: 'wizard', content: 'x' }] }), 400],
  [chat, J({ messages: [{ role: 'user', content: 5 }] }), 400],
  [chat, J({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }), 400],
  [chat, J({ messages: [{ role: 'user', content: [{ type: 'text' }] }] }), 400],
  [chat, J({ messages: [{ role: 'user', content: [7] }] }), 400],
  [chat, J({ messages: user, max_tokens: -1 }), 400], [chat, J({ messages: user, max_tokens: 0 }), 400],
  [chat, J({ messages: user, max_tokens: 'ten' }), 400], [chat, J({ messages: user, max_tokens: 2.5 }), 400],
  [chat, J({ messages: user, max_tokens: 1e12 }), 400], [chat, J({ messages: user, max_tokens: 100000 }), 400],
  [chat, J({ messages: user, temperature: -1 }), 400], [chat, J({ messages: user, temperature: 'warm' }), 400],
  [chat, J({ messages: user, top_p: 0 }), 400], [chat, J({ messages: user, top_p: 1.5 }), 400],
  [chat, J({ messages: user, top_k: -5 }), 400], [chat, J({ messages: user, min_p: 2 }), 400],
  [chat, J({ messages: user, repetition_penalty: 0 }), 400], [chat, J({ messages: user, seed: 'abc' }), 400],
  [chat, J({ messages: user, stop: 5 }), 400], [chat, J({ messages: user, stop: [null] }), 400],
  [chat, J({ messages: user, stop: Array(40).fill('x') }), 400], [chat, J({ messages: user, stop: 'y'.repeat(1000) }), 400],
  [chat, J({ messages: user, stream: 'yes' }), 400], [chat, J({ messages: user, stream_options: 1 }), 400],
  [chat, J({ messages: user, n: 3 }), 400], [chat, J({ messages: user, decoding: 'telepathy' }), 400],
  [chat, J({ messages: user, decoding: 'diffusion', temperature: 0.9 }), 400],
  [chat, J({ messages: user, tools: 'none' }), 400], [chat, J({ messages: user, chat_template_kwargs: [] }), 400],
  [chat, J({ messages: [{ role: 'user', content: 'a'.repeat(5000) }] }), 400],
  [chat, J({ model: 5, messages: user }), 400],
  [chat, 'x'.repeat(70000), 413],
  [comp, J({}), 400], [comp, J({ prompt: '' }), 400], [comp, J({ prompt: [] }), 400], [comp, J({ prompt: ['a', 'b'] }), 400],
  [comp, J({ prompt: [1, 'a'] }), 400], [comp, J({ prompt: [-3] }), 400], [comp, J({ prompt: [1e10] }), 400],
  [comp, J({ prompt: [100000] }), 400], [comp, J({ prompt: { text: 'x' } }), 400], [comp, J({ prompt: 'x', max_tokens: 5000 }), 400],
  [msgs, J({ messages: user }), 400], [msgs, J({ max_tokens: 5 }), 400], [msgs, J({ max_tokens: 5, messages: [] }), 400],
  [msgs, J({ max_tokens: 5, messages: [{ role: 'system', content: 'x' }] }), 400],
  [msgs, J({ max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'video' }] }] }), 400],
  [msgs, J({ max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'text', text: 3 }] }] }), 400],
  [msgs, J({ max_tokens: 5, messages: user, temperature: 1.5 }), 400], [msgs, J({ max_tokens: 5, messages: user, system: 3 }), 400],
  [msgs, J({ max_tokens: 5, messages: user, stop_sequences: 'x' }), 400],
  [msgs, J({ max_tokens: 5, messages: user, top_k: 'k' }), 400], [msgs, '{"max_tokens":', 400],
  [msgs + '?beta=true', J({ max_tokens: 5 }), 400],
  [resp, J({}), 400], [resp, J({ input: 5 }), 400], [resp, J({ input: [{ type: 'computer_call' }] }), 400],
  [resp, J({ input: [{ role: 'user' }] }), 400], [resp, J({ input: 'x', max_output_tokens: 0 }), 400],
  ['/v1/nothing', J({}), 404], ['/v1/chat/completion', J({ messages: user }), 404], ['/', '', 404],
];

let dialectOk = 0;
for (const [path, body, want, headers] of corpus) {
  let r;
  try {
    r = await fetch(srv.base + path, { method: 'POST', body, headers: { 'content-type': 'application/json', ...(headers ?? {}) } });
  } catch (e) {
    c.ok(false, `${path} ${body.slice(0, 60)}: fetch failed ${e}`);
    continue;
  }
  const text = await r.text();
  c.eq(r.status, want, `${path} ${J(body.slice(0, 80))}`);
  let j = null;
  try { j = JSON.parse(text); } catch {}
  const anthropic = path.startsWith('/v1/messages');
  const good = anthropic ? j?.type === 'error' && typeof j?.error?.message === 'string' && typeof j?.error?.type === 'string'
                         : typeof j?.error?.message === 'string' && typeof j?.error?.type === 'string';
  c.ok(good, `${path} ${J(body.slice(0, 60))}: error body in the ${anthropic ? 'Anthropic' : 'OpenAI'} dialect: ${text.slice(0, 200)}`);
  if (good) dialectOk++;
}

// Broken HTTP on raw sockets: garbage request lines, a lying Content-Length, a half-sent body.
async function raw(payload, waitMs = 1500) {
  return new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('error', () => resolve(data));
    s.on('close', () => resolve(data));
    s.write(payload);
    setTimeout(() => { s.destroy(); resolve(data); }, waitMs);
  });
}
const rawCases = [
  'GARBAGE\r\n\r\n',
  'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}',
  'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{}',
  'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
  'POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"max_tokens":',
];
for (const p of rawCases) {
  const reply = await raw(p);
  const m = reply.match(/^HTTP\/1\.1 (\d{3})/);
  // Either a 4xx, or the connection closed without an answer (an incomplete request): never a 5xx.
  c.ok(!m || (Number(m[1]) >= 400 && Number(m[1]) < 500), `raw ${J(p.slice(0, 50))} → ${reply.slice(0, 40)}`);
}

const h = await fetch(srv.base + '/health');
c.eq(h.status, 200, 'healthy after the corpus');
const ok = await fetch(srv.base + '/v1/chat/completions', { method: 'POST', body: J({ messages: user, max_tokens: 5 }) });
const okj = await ok.json();
c.eq([ok.status, okj.usage?.completion_tokens], [200, 5], 'still generating after the corpus');
const metrics = await (await fetch(srv.base + '/metrics')).text();
c.ok(!/status="5\d\d"/.test(metrics), 'no 5xx in /metrics');
console.log(`corpus: ${corpus.length} HTTP requests (${dialectOk} with dialect error bodies) + ${rawCases.length} raw-socket cases`);
const st = await srv.stop();
c.eq(st, { code: 0, signal: null }, 'clean exit');
c.report();

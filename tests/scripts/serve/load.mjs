// Bounded loopback load test: C concurrent streaming clients × R requests each, across the chat,
// messages, completions and responses routes, with random mid-stream disconnects. Checks: no 5xx and no
// transport error on any request, every stream that was read to the end is well-formed, the server is
// healthy afterwards, and the engine is idle again (disconnects freed their slots). Prints the counts and
// the server's RSS before and after.
//   node load.mjs --optiq BIN --model DIR [--clients 32] [--requests 20] [--max-tokens 48]
//                 [--disconnect 0.3] [--seed 1] [--rounds 1]
// With --rounds N the whole load repeats N times on the same server, RSS recorded after each round.
import { parseArgs, startServer, Checks, rssKiB, sleep } from './lib.mjs';

const args = parseArgs();
const clients = Number(args.clients ?? 32);
const requests = Number(args.requests ?? 20);
const maxTokens = Number(args['max-tokens'] ?? 48);
const pDisconnect = Number(args.disconnect ?? 0.3);
const rounds = Number(args.rounds ?? 1);
let seed = Number(args.seed ?? 1);
function rand() {  // xorshift: reproducible choices
  seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
  return ((seed >>> 0) % 1e6) / 1e6;
}
const c = new Checks();
const srv = await startServer(args.optiq, args.model, ['--queue', String(clients * 2), '--max-concurrent', String(clients + 8)]);

const words = ['river', 'city', 'house', 'war', 'music', 'garden', 'school', 'ship'];
function request() {
  const w = words[Math.floor(rand() * words.length)];
  const kind = ['chat', 'messages', 'completions', 'responses'][Math.floor(rand() * 4)];
  const m = [{ role: 'user', content: `Tell me about the ${w}` }];
  if (kind === 'chat') return { kind, path: '/v1/chat/completions', body: { messages: m, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } } };
  if (kind === 'messages') return { kind, path: '/v1/messages', body: { messages: m, max_tokens: maxTokens, stream: true } };
  if (kind === 'completions') return { kind, path: '/v1/completions', body: { prompt: `The ${w} was`, max_tokens: maxTokens, stream: true } };
  return { kind, path: '/v1/responses', body: { input: m[0].content, max_output_tokens: maxTokens, stream: true } };
}

// Parses SSE text into frames [{event, data}], ignoring ":" comments; throws on a malformed frame.
function parseSse(text) {
  const frames = [];
  for (const block of text.split('\n\n')) {
    if (!block) continue;
    let event = null, data = null;
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data = line.slice(6);
      else throw new Error('bad SSE line ' + JSON.stringify(line));
    }
    if (data !== null) frames.push({ event, data });
  }
  return frames;
}

function wellFormed(kind, text) {
  if (!text.endsWith('\n\n')) return 'stream not terminated by a blank line';
  const f = parseSse(text);
  if (kind === 'chat' || kind === 'completions') {
    if (f.at(-1)?.data !== '[DONE]') return 'no [DONE]';
    const js = f.slice(0, -1).map((x) => JSON.parse(x.data));
    const withChoices = js.filter((j) => j.choices.length);
    if (kind === 'chat' && withChoices[0]?.choices[0].delta.role !== 'assistant') return 'no role in the first delta';
    const fin = withChoices.findIndex((j) => j.choices[0].finish_reason);
    if (fin !== withChoices.length - 1) return 'finish_reason not on the last chunk';
    if (!['stop', 'length'].includes(withChoices[fin].choices[0].finish_reason)) return 'bad finish_reason';
    if (kind === 'chat') {
      const u = js.at(-1).usage;
      if (!u || u.total_tokens !== u.prompt_tokens + u.completion_tokens || u.completion_tokens > maxTokens) return 'bad usage frame';
    }
    return null;
  }
  if (kind === 'messages') {
    const types = f.map((x) => JSON.parse(x.data).type);
    const want = ['message_start', 'content_block_start'];
    if (types[0] !== want[0] || types[1] !== want[1]) return 'bad start events ' + types.slice(0, 2);
    const tail = types.slice(-3);
    if (tail.join() !== 'content_block_stop,message_delta,message_stop') return 'bad end events ' + tail;
    if (types.slice(2, -3).some((t) => t !== 'content_block_delta')) return 'unexpected middle events';
    if (f.some((x) => x.event !== JSON.parse(x.data).type)) return 'event name != data.type';
    return null;
  }
  const types = f.map((x) => JSON.parse(x.data).type);
  if (types[0] !== 'response.created' || types.at(-1) !== 'response.completed') return 'bad responses events';
  const seq = f.map((x) => JSON.parse(x.data).sequence_number);
  if (seq.some((s, i) => s !== i)) return 'sequence numbers not 0..n-1';
  return null;
}

const counts = { sent: 0, completed: 0, disconnected: 0, malformed: 0, http5xx: 0, http4xx: 0, transport: 0 };
const problems = [];

async function one() {
  const rq = request();
  const disconnectAfter = rand() < pDisconnect ? 1 + Math.floor(rand() * 12) : -1;
  const ac = new AbortController();
  counts.sent++;
  let res;
  try {
    res = await fetch(srv.base + rq.path, { method: 'POST', body: JSON.stringify(rq.body), headers: { 'content-type': 'application/json' }, signal: ac.signal });
  } catch (e) {
    counts.transport++;
    problems.push(`${rq.kind}: fetch: ${e}`);
    return;
  }
  if (res.status >= 500) counts.http5xx++;
  if (res.status >= 400) {
    if (res.status < 500) counts.http4xx++;
    problems.push(`${rq.kind}: HTTP ${res.status} ${await res.text()}`);
    return;
  }
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let text = '';
  let reads = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (disconnectAfter > 0 && ++reads >= disconnectAfter) {
        ac.abort();  // mid-stream disconnect
        counts.disconnected++;
        return;
      }
    }
  } catch (e) {
    counts.transport++;
    problems.push(`${rq.kind}: read: ${e}`);
    return;
  }
  let why;
  try { why = wellFormed(rq.kind, text); } catch (e) { why = String(e); }
  if (why) {
    counts.malformed++;
    problems.push(`${rq.kind}: ${why}: ${text.slice(-300)}`);
  } else {
    counts.completed++;
  }
}

// Warm-up, then RSS before.
for (let i = 0; i < 4; i++) await one();
for (const k of Object.keys(counts)) counts[k] = 0;
const rssBefore = rssKiB(srv.pid);
const t0 = performance.now();
const rssRounds = [];
for (let r = 0; r < rounds; r++) {
  await Promise.all(Array.from({ length: clients }, async () => { for (let i = 0; i < requests; i++) await one(); }));
  rssRounds.push(rssKiB(srv.pid));
}
const seconds = (performance.now() - t0) / 1000;
const tIdle = performance.now();
// The engine must go idle: every disconnected generation was cancelled (bounded wait).
let idle = false;
for (let i = 0; i < 100 && !idle; i++) {
  const m = await (await fetch(srv.base + '/metrics')).text();
  idle = /optiq_running_generations 0\n/.test(m) && /optiq_queue_depth 0\n/.test(m);
  if (!idle) await sleep(100);
}
console.log(`idle wait ${((performance.now() - tIdle) / 1000).toFixed(1)} s`);
const metrics = await (await fetch(srv.base + '/metrics')).text();
const rssAfter = rssKiB(srv.pid);
const health = await fetch(srv.base + '/health');

console.log(JSON.stringify({ clients, requests, maxTokens, seconds: +seconds.toFixed(1), ...counts,
  cancelled_metric: Number(metrics.match(/optiq_cancelled_total (\d+)/)[1]),
  completion_tokens_metric: Number(metrics.match(/optiq_completion_tokens_total (\d+)/)[1]),
  rss_kib_before: rssBefore, rss_kib_after_each_round: rssRounds, rss_kib_after: rssAfter }));
for (const p of problems.slice(0, 10)) console.log('problem: ' + p);
const total = clients * requests * rounds;
c.eq(counts.sent, total, 'all requests sent');
c.eq(counts.http5xx, 0, 'no 5xx');
c.eq(counts.http4xx, 0, 'no 4xx');
c.eq(counts.transport, 0, 'no transport errors');
c.eq(counts.malformed, 0, 'every completed stream well-formed');
c.eq(counts.completed + counts.disconnected, total, 'every request completed or was disconnected on purpose');
c.ok(pDisconnect === 0 || counts.disconnected > 0, 'some clients disconnected mid-stream');
c.ok(idle, 'engine idle after the load (disconnects freed their slots)');
c.eq(health.status, 200, 'healthy after the load');
c.ok(!/status="5\d\d"/.test(metrics), 'no 5xx in /metrics');
const tStop = performance.now();
c.eq((await srv.stop()).code, 0, 'clean exit after the load');
console.log(`server stop ${((performance.now() - tStop) / 1000).toFixed(1)} s`);
c.report();

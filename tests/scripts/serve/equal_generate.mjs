// Greedy outputs of optiq serve equal `optiq generate` with the same settings, in every decoding mode:
// completions (text prompt), chat (prompt ids from `optiq chat-template` + `optiq tokenize`), streamed
// and not, and the --mtp server default (self-speculation) for requests that name no mode.
import { parseArgs, startServer, Checks, chatPromptIds, cliGenerate } from './lib.mjs';

const args = parseArgs();
const c = new Checks();
const J = JSON.stringify;

async function post(base, path, body) {
  const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: J(body) });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`${path} ${r.status}: ${text}`);
  return { json: body.stream ? null : JSON.parse(text), text, decoding: r.headers.get('x-optiq-decoding') };
}

function sseText(raw, pick) {
  let out = '';
  for (const line of raw.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    out += pick(JSON.parse(line.slice(6))) ?? '';
  }
  return out;
}

const prompts = ['The jury said', 'In the morning the', 'She looked at'];
const messages = [{ role: 'user', content: 'Write about the river' }];
const chatIds = chatPromptIds(args.optiq, args.model, messages);
const maxTokens = 48;

const srv = await startServer(args.optiq, args.model, ['--threads', '1']);
try {
  for (const mode of ['ar', 'diffusion', 'selfspec']) {
    for (const prompt of prompts) {
      const want = cliGenerate(args.optiq, args.model, { prompt, mode, maxTokens });
      const got = await post(srv.base, '/v1/completions', { prompt, max_tokens: maxTokens, decoding: mode });
      c.eq(got.json.choices[0].text, want.text, `completions ${mode} ${J(prompt)}`);
      c.eq(got.json.decoding, mode, `completions reports decoding ${mode}`);
      c.eq(got.json.choices[0].finish_reason, want.finish_reason, `finish_reason ${mode} ${J(prompt)}`);
      c.eq(got.json.usage.prompt_tokens, want.prompt_tokens, `prompt_tokens ${mode}`);
      const s = await post(srv.base, '/v1/completions', { prompt, max_tokens: maxTokens, decoding: mode, stream: true });
      c.eq(sseText(s.text, (j) => j.choices[0]?.text), want.text, `streamed completions ${mode} ${J(prompt)}`);
    }
    const want = cliGenerate(args.optiq, args.model, { promptIds: chatIds, mode, maxTokens });
    const chat = await post(srv.base, '/v1/chat/completions', { messages, max_tokens: maxTokens, decoding: mode });
    c.eq(chat.json.choices[0].message.content ?? '', want.text, `chat ${mode}`);
    c.eq(chat.decoding, mode, `X-Optiq-Decoding ${mode}`);
    const msg = await post(srv.base, '/v1/messages', { messages, max_tokens: maxTokens, decoding: mode, stream: true });
    c.eq(sseText(msg.text, (j) => (j.type === 'content_block_delta' ? j.delta.text : '')), want.text, `anthropic stream ${mode}`);
  }
} catch (e) {
  c.ok(false, 'unexpected: ' + (e?.stack ?? e));
}
c.eq((await srv.stop()).code, 0, 'clean exit');

// --mtp: greedy requests that name no mode run self-speculation (which equals greedy AR); sampling
// requests fall back to AR and say so.
const mtp = await startServer(args.optiq, args.model, ['--mtp', '--threads', '1']);
try {
  const prompt = prompts[0];
  const want = cliGenerate(args.optiq, args.model, { prompt, mode: 'ar', maxTokens });
  const got = await post(mtp.base, '/v1/completions', { prompt, max_tokens: maxTokens });
  c.eq(got.json.decoding, 'selfspec', '--mtp default decoding');
  c.eq(got.json.choices[0].text, want.text, '--mtp output = greedy AR');
  const sampled = await post(mtp.base, '/v1/completions', { prompt, max_tokens: 8, temperature: 0.8, seed: 1 });
  c.eq(sampled.json.decoding, 'ar', '--mtp with sampling runs AR and reports it');
} catch (e) {
  c.ok(false, 'unexpected: ' + (e?.stack ?? e));
}
c.eq((await mtp.stop()).code, 0, 'clean exit (--mtp)');
c.report();

// LoRA adapters mounted on `optiq serve` (several --adapter flags on one base), driven by the official
// OpenAI and Anthropic SDKs: each request picks an adapter by the "adapter" body field (OptIQ's
// "adapters" too) and gets what `optiq generate --adapter DIR` gives; "base" and no field run the base;
// an unknown name is a 400 (BadRequestError) and the server keeps serving; GET /v1/adapters lists them.
// The adapters are written here (seeded random LoRA on every linear of the dhara model given), so that
// each one decodes differently from the base.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, requireFrom, startServer, Checks, cliGenerate } from './lib.mjs';

const args = parseArgs();
const require = requireFrom(args['node-modules']);
const OpenAI = require('openai').default ?? require('openai');
const Anthropic = require('@anthropic-ai/sdk').default ?? require('@anthropic-ai/sdk');
const c = new Checks();

// mulberry32 → approximately normal values (sum of 4 uniforms), deterministic in the seed.
function rng(seed) {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (sd) => ((u() + u() + u() + u() - 2) / Math.sqrt(4 / 12)) * sd;
}

// A rank-4 adapter (scale 8) on q/k/v/o, gate/up/down of every layer of a dhara config, in mlx-lm's
// files: adapters.safetensors (F32 <module>.lora_a [in, r], .lora_b [r, out]) and adapter_config.json.
function writeAdapter(dir, cfg, seed) {
  const C = cfg.hidden_size, F = cfg.intermediate_size, D = cfg.head_dim ?? C / cfg.num_attention_heads;
  const HD = cfg.num_attention_heads * D, KD = (cfg.num_key_value_heads ?? cfg.num_attention_heads) * D, r = 4;
  const draw = rng(seed);
  const tensors = [];
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    for (const [m, i, o] of [['self_attn.q_proj', C, HD], ['self_attn.k_proj', C, KD], ['self_attn.v_proj', C, KD],
                             ['self_attn.o_proj', HD, C], ['mlp.gate_proj', C, F], ['mlp.up_proj', C, F],
                             ['mlp.down_proj', F, C]]) {
      tensors.push([p + m + '.lora_a', [i, r], Float32Array.from({ length: i * r }, () => draw(1 / Math.sqrt(i)))]);
      tensors.push([p + m + '.lora_b', [r, o], Float32Array.from({ length: r * o }, () => draw(0.1))]);
    }
  }
  const header = {};
  let off = 0;
  for (const [name, shape, data] of tensors) {
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + data.byteLength] };
    off += data.byteLength;
  }
  let h = Buffer.from(JSON.stringify(header));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'adapters.safetensors'),
                   Buffer.concat([len, h, ...tensors.map(([, , d]) => Buffer.from(d.buffer))]));
  fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({
    fine_tune_type: 'lora', num_layers: -1, lora_parameters: { rank: r, scale: 8.0, dropout: 0.0, keys: null },
    peft_type: 'LORA', r, lora_alpha: 32,
  }));
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'optiq-serve-adapters-'));
const cfg = JSON.parse(fs.readFileSync(path.join(args.model, 'config.json'), 'utf8'));
const dirs = { alpha: path.join(tmp, 'alpha'), beta: path.join(tmp, 'beta') };
writeAdapter(dirs.alpha, cfg, 1);
writeAdapter(dirs.beta, cfg, 2);

const prompt = 'The jury said';
const maxTokens = 24;
const want = {
  base: cliGenerate(args.optiq, args.model, { prompt, maxTokens }).text,
  alpha: cliGenerate(args.optiq, args.model, { prompt, maxTokens, adapter: dirs.alpha }).text,
  beta: cliGenerate(args.optiq, args.model, { prompt, maxTokens, adapter: dirs.beta }).text,
};
c.ok(want.alpha !== want.base && want.beta !== want.alpha, `the adapters change the output: ${JSON.stringify(want)}`);

const srv = await startServer(args.optiq, args.model,
                              ['--threads', '1', '--adapter', dirs.alpha, '--adapter', 'b=' + dirs.beta]);
const openai = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'sk-optiq-test', maxRetries: 0, timeout: 60000 });
const anthropic = new Anthropic({ baseURL: srv.base, apiKey: 'sk-ant-test', maxRetries: 0, timeout: 60000 });
try {
  const complete = async (extra) => {
    const r = await openai.completions.create({ model: 'm', prompt, max_tokens: maxTokens, ...extra });
    return r.choices[0].text;
  };
  c.eq(await complete({ adapter: 'alpha' }), want.alpha, 'adapter alpha = optiq generate --adapter');
  c.eq(await complete({ adapter: 'b' }), want.beta, 'adapter b (NAME=DIR) = optiq generate --adapter');
  c.eq(await complete({ adapters: 'alpha' }), want.alpha, 'OptIQ "adapters" field');
  c.eq(await complete({ adapter: 'base' }), want.base, '"base" runs the base model');
  c.eq(await complete({}), want.base, 'two adapters mounted: no field runs the base');
  const s = await openai.completions.create({ model: 'm', prompt, max_tokens: maxTokens, adapter: 'b', stream: true });
  let streamed = '';
  for await (const chunk of s) streamed += chunk.choices[0]?.text ?? '';
  c.eq(streamed, want.beta, 'streamed with adapter b');
  try {
    await complete({ adapter: 'gamma' });
    c.ok(false, 'unknown adapter: no exception');
  } catch (e) {
    c.ok(e instanceof OpenAI.BadRequestError, `unknown adapter → BadRequestError, got ${e}`);
    c.ok(/no adapter "gamma" is mounted \(mounted: "alpha", "b";/.test(e.message), `message names the mounted ones: ${e.message}`);
  }
  const msg = await anthropic.messages.create({
    model: 'm', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }], adapter: 'alpha',
  });
  c.eq(msg.type, 'message', 'anthropic messages with an adapter');
  const list = await (await fetch(srv.base + '/v1/adapters')).json();
  c.eq(list.data.map((a) => [a.name, a.path, a.rank, a.scale, a.modules]),
       [['alpha', dirs.alpha, 4, 8, 7 * cfg.num_hidden_layers], ['b', dirs.beta, 4, 8, 7 * cfg.num_hidden_layers]],
       'GET /v1/adapters');
  // Adapters are models too: listed with their parent, and "model": NAME runs that adapter.
  const models = await openai.models.list();
  c.eq(models.data.map((m) => [m.id, m.parent ?? null]),
       [[path.basename(path.resolve(args.model)), null], ['alpha', path.basename(path.resolve(args.model))],
        ['b', path.basename(path.resolve(args.model))]], 'GET /v1/models lists the adapters');
  const viaModel = await openai.completions.create({ model: 'b', prompt, max_tokens: maxTokens });
  c.eq(viaModel.choices[0].text, want.beta, '"model": "b" runs adapter b');
  c.eq(viaModel.model, 'b', 'and the response names it');
  c.eq((await fetch(srv.base + '/health')).status, 200, 'healthy after the errors');
} catch (e) {
  c.ok(false, 'unexpected exception: ' + (e?.stack ?? e));
}
c.eq((await srv.stop()).code, 0, 'clean exit');
fs.rmSync(tmp, { recursive: true, force: true });
c.report();

// Shared helpers for the optiq serve integration scripts: argument parsing, starting and stopping a
// server on a free loopback port, and a tiny assertion counter that ends with "N passed, N failed".
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import fs from 'node:fs';

export function parseArgs(argv = process.argv.slice(2)) {
  const a = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const k = argv[i].slice(2);
    const v = i + 1 < argv.length && !argv[i + 1].startsWith('--') ? argv[++i] : true;
    a[k] = v;
  }
  for (const need of ['optiq', 'model']) if (!a[need]) throw new Error(`missing --${need}`);
  return a;
}

export function requireFrom(nodeModules) {
  return createRequire(path.join(path.resolve(nodeModules), 'noop.js'));
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Starts `optiq serve --port 0` and resolves once /health answers 200. Only loopback addresses.
export async function startServer(optiq, model, extra = []) {
  const proc = spawn(optiq, ['serve', '--model', model, '--host', '127.0.0.1', '--port', '0', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not print its port in 30 s: ' + err)), 30000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited (${code}) before listening: ${err}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(base + '/health');
      if (r.status === 200) break;
    } catch {}
    await sleep(100);
  }
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    port,
    base,
    pid: proc.pid,
    stderr: () => err,
    // SIGTERM, then wait (bounded) for a clean exit; resolves to the exit status.
    async stop() {
      proc.kill('SIGTERM');
      let timer;
      const timeout = new Promise((r) => (timer = setTimeout(() => r(null), 15000)));
      const res = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (res === null) {
        proc.kill('SIGKILL');
        return { code: null, signal: 'timeout' };
      }
      return res;
    },
  };
}

export function rssKiB(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(s.match(/VmRSS:\s+(\d+)/)[1]);
}

// Counts checks; report() prints failures and the closing "N passed, N failed" line.
export class Checks {
  constructor() {
    this.passed = 0;
    this.failed = 0;
  }
  ok(cond, msg) {
    if (cond) this.passed++;
    else {
      this.failed++;
      console.log('FAIL: ' + msg);
    }
  }
  eq(a, b, msg) {
    const sa = JSON.stringify(a);
    const sb = JSON.stringify(b);
    this.ok(sa === sb, `${msg}: got ${sa}, want ${sb}`);
  }
  report() {
    console.log(`${this.passed} passed, ${this.failed} failed`);
    process.exitCode = this.failed === 0 && this.passed > 0 ? 0 : 1;
  }
}

// Prompt ids of a chat request as the optiq CLI renders and tokenizes them (independent of serve).
export function chatPromptIds(optiq, model, messages) {
  const text = execFileSync(optiq, ['chat-template', '--model', model, '--messages', JSON.stringify(messages)], {
    encoding: 'utf8',
  });
  const ids = execFileSync(optiq, ['tokenize', '--model', model, '--text', text, '--ids', '--no-special'], {
    encoding: 'utf8',
  });
  return ids.trim().split(/\s+/).map(Number);
}

export function textPromptIds(optiq, model, text) {
  const ids = execFileSync(optiq, ['tokenize', '--model', model, '--text', text, '--ids'], { encoding: 'utf8' });
  return ids.trim().split(/\s+/).map(Number);
}

// `optiq generate --json` for the same settings.
export function cliGenerate(optiq, model, { promptIds, prompt, mode = 'ar', maxTokens, adapter }) {
  const args = ['generate', '--model', model, '--mode', mode, '--max-tokens', String(maxTokens), '--json', '--threads', '1'];
  if (adapter) args.push('--adapter', adapter);
  if (promptIds) args.push('--prompt-ids', promptIds.join(','));
  else args.push('--prompt', prompt);
  const out = execFileSync(optiq, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out.trim().split('\n').pop());
}

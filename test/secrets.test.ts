/**
 * secretEnv: values resolved on the worker, masked in the trainer's output, never in the workflow's
 * history, the manifests or any file of the workspace; plain env values stay visible (the way out is secretEnv).
 */
import { temporal } from '@temporalio/proto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSecrets } from '../activities/attempt/secrets.ts';
import { planPipeline } from '../plan/plan.ts';
import { Masker } from '../node/mask.ts';
import { EMULATOR, fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
import { runSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';

const HF_TOKEN = 'hf_q8W3zLrT5yNpVx0KsB2m';
const WANDB_KEY = 'wandb-4f1c9e77a2d04b6f8e31';
const S3_SECRET = 's3-Zr7uP9wQe2Lk';

describe('masking', () => {
  it('masks a secret split across two reads of the pipe, and each line of a multi-line secret', async () => {
    const masker = new Masker([HF_TOKEN, '-----BEGIN KEY-----\nAbCdEfGh12345\n-----END KEY-----', 'ab']);
    const out: Buffer[] = [];
    const half = HF_TOKEN.length / 2;
    const chunks = [`token ${HF_TOKEN.slice(0, half)}`, `${HF_TOKEN.slice(half)} done\nkey line AbCdEfGh12345\nshort ab stays`];
    await pipeline(
      Readable.from(chunks.map((c) => Buffer.from(c))),
      masker.stream(),
      new Writable({
        write(chunk: Buffer, _e, done) {
          out.push(chunk);
          done();
        },
      }),
    );
    expect(Buffer.concat(out).toString()).toBe('token *** done\nkey line ***\nshort ab stays');
  });

  it('resolves NAME from the worker environment, NAME_FILE, and { name, file }; a missing one names its spec field', () => {
    const dir = tempDir('secret-files');
    fs.writeFileSync(path.join(dir, 'wandb'), `${WANDB_KEY}\n`);
    fs.writeFileSync(path.join(dir, 's3'), S3_SECRET);
    const stage = {
      secretEnv: [
        { name: 'HF_TOKEN', specPath: 'secretEnv[0]' },
        { name: 'WANDB_API_KEY', file: path.join(dir, 'wandb'), specPath: 'stages[0].secretEnv[0]' },
        { name: 'S3_SECRET', specPath: 'stages[0].secretEnv[1]' },
      ],
    };
    const resolved = resolveSecrets(stage as never, { HF_TOKEN, S3_SECRET_FILE: path.join(dir, 's3') });
    expect(resolved.env).toEqual({ HF_TOKEN, WANDB_API_KEY: WANDB_KEY, S3_SECRET });
    expect(() => resolveSecrets(stage as never, {})).toThrow(/secretEnv\[0\]: secret HF_TOKEN is not set on this worker: set HF_TOKEN or HF_TOKEN_FILE/);
  });

  it('a name in both env and secretEnv is a problem; a secret-looking plain env value is a warning', () => {
    const dir = tempDir('secret-plan');
    const spec = fiveStageSpec('secret-plan', dir);
    spec.secretEnv = ['HF_TOKEN'];
    spec.stages[3]!.env = { HF_TOKEN: 'x', MY_API_KEY: 'y' };
    const bad = planPipeline(spec, { baseDir: dir });
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.problems).toContainEqual({ path: 'stages[3].env.HF_TOKEN', message: expect.stringMatching(/HF_TOKEN is a secret \(secretEnv\[0\]\)/) });
    spec.stages[3]!.env = { MY_API_KEY: 'y' };
    const warned = planPipeline(spec, { baseDir: dir });
    expect(warned.ok).toBe(true);
    if (warned.ok) {
      expect(warned.warnings).toContainEqual({ path: 'stages[3].env.MY_API_KEY', message: expect.stringMatching(/list MY_API_KEY in secretEnv/) });
      // Only names travel in the plan.
      expect(JSON.stringify(warned.plan)).not.toContain('undefined');
      expect(warned.plan.stages[3]!.secretEnv).toEqual([{ name: 'HF_TOKEN', specPath: 'secretEnv[0]' }]);
    }
  });
});

describe('a pipeline with secrets on a real dev server', () => {
  let t: TestTemporal;
  beforeAll(async () => {
    t = await startTestTemporal();
  });
  afterAll(async () => {
    await t?.stop();
    delete process.env.HF_TOKEN;
    delete process.env.S3_SECRET_FILE;
  });

  it('the trainer gets every secret; the history, the workspace, the manifests and the failure show none of them', async () => {
    const dir = tempDir('secrets');
    const receipts = path.join(dir, 'receipts');
    fs.mkdirSync(receipts);
    fs.writeFileSync(path.join(dir, 'wandb.key'), `${WANDB_KEY}\n`);
    fs.writeFileSync(path.join(dir, 's3.secret'), S3_SECRET);
    // The worker's own environment (the worker runs in this process).
    process.env.HF_TOKEN = HF_TOKEN;
    process.env.S3_SECRET_FILE = path.join(dir, 's3.secret');
    // A careless wrapper around torchrun: it prints the secrets (also split across two writes) and
    // keeps what it received outside the workspace, then the trainer crashes.
    const wrapper = path.join(dir, 'leaky-torchrun');
    fs.writeFileSync(
      wrapper,
      [
        '#!/usr/bin/env bash',
        'printf "%s\\n" "$HF_TOKEN" > "$RECEIPTS/HF_TOKEN"; printf "%s\\n" "$WANDB_API_KEY" > "$RECEIPTS/WANDB_API_KEY"; printf "%s\\n" "$S3_SECRET" > "$RECEIPTS/S3_SECRET"',
        'echo "logging in with token $HF_TOKEN, wandb key $WANDB_API_KEY"',
        'printf "s3 secret %s" "${S3_SECRET:0:6}"; sleep 0.2; printf "%s ok\\n" "${S3_SECRET:6}"',
        'echo "RuntimeError: authentication failed for $HF_TOKEN" >&2',
        `exec ${path.join(EMULATOR, 'torchrun')} "$@"`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const spec = fiveStageSpec('secrets', path.join(dir, 'ws'), {
      trainIters: 20,
      saveInterval: 5,
      pretrainEnv: { MLEMU_FAULTS: 'crash@7', RECEIPTS: receipts },
    });
    spec.stages = spec.stages.filter((s) => ['data', 'weights', 'pretrain'].includes(s.name as string));
    spec.secretEnv = ['HF_TOKEN'];
    // The wrapper's line is what explains the failure, so the excerpt (and the failure message) hold it.
    spec.failureRules = [{ class: 'exception', pattern: 'authentication failed' }];
    Object.assign(spec.stages[0]!, { secretEnv: ['S3_SECRET'] });
    Object.assign(spec.stages[2]!, { launcher: wrapper, maxAttempts: 1, secretEnv: [{ name: 'WANDB_API_KEY', file: './wandb.key' }, 'S3_SECRET'] });

    const { state, failure, handle } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status).toBe('failed');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.failureClass)).toEqual(['exception']);

    // The trainer received all three.
    for (const [name, value] of [
      ['HF_TOKEN', HF_TOKEN],
      ['WANDB_API_KEY', WANDB_KEY],
      ['S3_SECRET', S3_SECRET],
    ])
      expect(fs.readFileSync(path.join(receipts, name), 'utf8').trim()).toBe(value);

    // The failure and its excerpt show the lines, masked.
    const excerpt = pretrain.attempts[0]!.excerpt!.join('\n');
    expect(excerpt).toContain('RuntimeError: authentication failed for ***');
    expect(failure).toContain('authentication failed for ***');
    expect(`${failure}\n${JSON.stringify(state)}`).not.toMatch(new RegExp([HF_TOKEN, WANDB_KEY, S3_SECRET].join('|')));

    // The whole history, byte for byte: a plain env value is there (so the search can find things), no secret is.
    const history = Buffer.from(temporal.api.history.v1.History.encode(await handle.fetchHistory()).finish());
    expect(history.includes(receipts)).toBe(true);
    for (const secret of [HF_TOKEN, WANDB_KEY, S3_SECRET]) expect(history.includes(secret), `history holds ${secret.slice(0, 4)}…`).toBe(false);

    // Every file of the workspace (logs, manifests, checkpoints).
    const files = walk(path.join(dir, 'ws'));
    expect(files.some((f) => f.endsWith('manifest.json'))).toBe(true);
    const logs = files.filter((f) => f.includes(`${path.sep}pretrain${path.sep}logs${path.sep}`));
    expect(logs.length).toBe(1);
    const log = fs.readFileSync(logs[0]!, 'utf8');
    expect(log).toContain('logging in with token ***, wandb key ***');
    expect(log).toContain('s3 secret *** ok');
    expect(log).toContain('# secrets: HF_TOKEN, WANDB_API_KEY, S3_SECRET');
    for (const f of files) {
      const bytes = fs.readFileSync(f);
      for (const secret of [HF_TOKEN, WANDB_KEY, S3_SECRET]) expect(bytes.includes(secret), `${f} holds a secret`).toBe(false);
    }
  });
});

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.isFile() ? [p] : [];
  });
}

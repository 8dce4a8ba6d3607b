/** The `linkflow` command without a server: validation, rendering, and a clear word when no server answers. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getFreePort } from '../server/dev-server.ts';
import { runCli } from './helpers/cli.ts';
import { fiveStageSpec, tempDir, writeSpec } from './helpers/specs.ts';

describe('linkflow CLI', () => {
  it('validate: an invalid spec exits 2 and lists each problem with its path', async () => {
    const dir = tempDir('cli');
    const spec = fiveStageSpec('bad', path.join(dir, 'ws'));
    (spec.stages[3] as Record<string, unknown>).trainIters = 0;
    (spec.stages[5] as Record<string, unknown>).tasks = [];
    const r = await runCli(['validate', writeSpec(dir, spec)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stages[3].trainIters: expected a positive integer');
    expect(r.stderr).toContain('stages[5].tasks: expected at least one task');
  });

  it('run: an invalid spec exits 2 before anything starts', async () => {
    const dir = tempDir('cli');
    const spec = fiveStageSpec('bad', path.join(dir, 'ws'));
    (spec.stages[3] as Record<string, unknown>).saveInterval = -1;
    const r = await runCli(['run', writeSpec(dir, spec, 'pipeline.json')], { TEMPORAL_ADDRESS: `127.0.0.1:${await getFreePort()}` });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stages[3].saveInterval: expected a positive integer');
    expect(fs.existsSync(path.join(dir, 'ws'))).toBe(false);
  });

  it('run: with no reachable server, says how to start one and exits non-zero', async () => {
    const dir = tempDir('cli');
    const r = await runCli(['run', writeSpec(dir, fiveStageSpec('ok', path.join(dir, 'ws')))], { TEMPORAL_ADDRESS: `127.0.0.1:${await getFreePort()}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no Temporal server reachable at 127\.0\.0\.1:\d+/);
    expect(r.stderr).toContain('linkflow dev');
  });

  it('run: a multi-node spec whose hosts do not match its nodes is refused before anything starts (exit 2)', async () => {
    const dir = tempDir('cli');
    const spec = fiveStageSpec('multi', path.join(dir, 'ws'));
    spec.cluster = { nodes: 2, devicesPerNode: 1, hosts: ['a', 'a', 'b'] };
    const file = writeSpec(dir, spec);
    const r = await runCli(['run', file], { TEMPORAL_ADDRESS: `127.0.0.1:${await getFreePort()}` });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cluster.hosts: names 3 hosts for 2 nodes');
    expect(r.stderr).toContain('cluster.hosts[1]: "a" is already hosts[0]');
    spec.cluster = { nodes: 2, devicesPerNode: 1, hosts: ['a', 'b'] };
    expect((await runCli(['validate', writeSpec(dir, spec)])).code).toBe(0);
  });

  it('render: prints each stage argv, and --sh quotes values safely', async () => {
    const dir = tempDir('cli');
    const spec = fiveStageSpec('quote', path.join(dir, "my ws's"));
    const file = writeSpec(dir, spec);
    const argv = await runCli(['render', file]);
    expect(argv.code).toBe(0);
    const lines = argv.stdout.split('\n').filter((l) => l.startsWith('['));
    expect(lines).toHaveLength(7);
    expect(JSON.parse(lines[3])).toContain('pretrain_gpt.py');
    const sh = await runCli(['render', file, '--sh']);
    expect(sh.stdout).toContain(`'${path.join(dir, "my ws'\\''s")}/quote/pretrain/checkpoints'`);
  });

  it('presets: lists llama2-7b with the table throughput', async () => {
    const r = await runCli(['presets']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/llama2-7b .*4672 tokens\/s\/device/);
  });
});

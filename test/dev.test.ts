/** `linkflow dev` and `linkflow demo` as a new user runs them, each with its own embedded server. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isReachable } from '../devserver/dev-server.ts';
import { getFreePort } from '../node/free-port.ts';
import { runCli } from '../testkit/cli.ts';
import { spawnGroup } from '../testkit/processes.ts';
import { ROOT, tempDir } from '../testkit/specs.ts';

describe('linkflow dev', () => {
  it('starts the dev server with its SQLite file and a worker; Ctrl-C stops all of them', async () => {
    const dir = tempDir('dev');
    const address = `127.0.0.1:${await getFreePort()}`;
    const env = { ...process.env, TEMPORAL_ADDRESS: address, LINKFLOW_DEV_DB: path.join(dir, 'dev.db'), LINKFLOW_DEV_UI_PORT: String(await getFreePort()) };
    const child = spawnGroup(process.execPath, [path.join(ROOT, 'bin', 'linkflow.js'), 'dev'], { cwd: ROOT, env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const deadline = Date.now() + 120_000;
    while (!out.includes('worker polling')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`dev did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(out).toContain(`Temporal dev server at ${address}`);
    expect(out).toMatch(/Web UI http:\/\/127\.0\.0\.1:\d+/);
    expect(await isReachable(address)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'dev.db'))).toBe(true);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out).toContain('stopped');
    expect(await isReachable(address, 1000)).toBe(false);
  });
});

describe('linkflow demo', () => {
  it('starts an embedded server, runs the demo with a crash in pretraining, shows the resume and exits 0', async () => {
    const dir = tempDir('demo');
    const r = await runCli(['demo'], {
      TEMPORAL_ADDRESS: `127.0.0.1:${await getFreePort()}`,
      LINKFLOW_DEV_DB: path.join(dir, 'dev.db'),
      LINKFLOW_DEV_UI_PORT: String(await getFreePort()),
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('starting the Temporal dev server');
    expect(r.stdout).toMatch(/\[pretrain\] (running|retrying)/);
    expect(r.stdout).toMatch(/attempt 2 resumed from the checkpoint at iteration 30 and finished at 100/);
    // The crash was injected in iteration 35: the attempt's last logged iteration is 34, and the message says both.
    expect(r.stdout).toMatch(/attempt 1 failed after iteration 34 \(exception; the crash was injected in iteration 35, before it was logged\)/);
    expect(r.stdout).toMatch(/evaluate +evaluate +succeeded/);
  });
});

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isReachable, startDevServer, type DevServer } from '../devserver/dev-server.ts';
import { findTemporalCli, parseTemporalVersion, type TemporalCli } from '../devserver/temporal-cli.ts';

const logs: string[] = [];
const log = (msg: string) => {
  logs.push(msg);
};

let cli: TemporalCli | null = null;
let tmp: string;
const running: DevServer[] = [];

async function start(opts: Parameters<typeof startDevServer>[0]): Promise<DevServer> {
  const server = await startDevServer({ log, cli: cli ?? undefined, ...opts });
  running.push(server);
  return server;
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'linkflow-server-test-'));
  // First run on a machine may install (pip: seconds; go install fallback: minutes).
  cli = await findTemporalCli({ install: true, log });
}, 30 * 60_000);

afterAll(async () => {
  await Promise.allSettled(running.map((s) => s.stop()));
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
}, 60_000);

describe('temporal CLI', () => {
  it('parses `temporal --version` output', () => {
    expect(parseTemporalVersion('temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)\n')).toBe('1.9.1');
    expect(parseTemporalVersion('something else')).toBeNull();
  });

  it('is found (or installed) and runs', async () => {
    expect(cli, `no Temporal CLI found or installed:\n${logs.join('\n')}`).not.toBeNull();
    expect(cli!.version).toMatch(/^\d+\.\d+\.\d+/);
    // Idempotent: a second lookup finds the same binary without installing anything.
    const again = await findTemporalCli({ install: false, log });
    expect(again?.path).toBe(cli!.path);
  }, 60_000);
});

describe('dev server', () => {
  it('starts on free ports, is reachable, and is unreachable after stop', async () => {
    const server = await start({ dbFile: path.join(tmp, 'reach.db') });
    expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(server.namespace).toBe('default');
    expect(await isReachable(server.address)).toBe(true);
    await server.stop();
    await server.stop(); // idempotent
    expect(await isReachable(server.address, 1_000)).toBe(false);
  }, 180_000);

  it('persists workflow state in the db file across a restart', async () => {
    const dbFile = path.join(tmp, 'persist.db');
    const workflowId = `persist-probe-${Date.now()}`;
    const taskQueue = 'linkflow-test-nobody-polls';

    const first = await start({ dbFile });
    {
      const connection = await Connection.connect({ address: first.address });
      try {
        const client = new Client({ connection, namespace: first.namespace });
        await client.workflow.start('linkflowPersistenceProbe', { workflowId, taskQueue, args: [] });
        const d = await client.workflow.getHandle(workflowId).describe();
        expect(d.status.name).toBe('RUNNING');
      } finally {
        await connection.close();
      }
    }
    await first.stop();
    expect(await isReachable(first.address, 1_000)).toBe(false);
    expect((await fs.stat(dbFile)).size).toBeGreaterThan(0);

    const second = await start({ dbFile });
    {
      const connection = await Connection.connect({ address: second.address });
      try {
        const client = new Client({ connection, namespace: second.namespace });
        const handle = client.workflow.getHandle(workflowId);
        const d = await handle.describe();
        expect(d.status.name).toBe('RUNNING');
        expect(d.taskQueue).toBe(taskQueue);
        await handle.terminate('test done');
      } finally {
        await connection.close();
      }
    }
    await second.stop();
  }, 300_000);

  it('serves the Web UI when asked', async () => {
    const server = await start({ ui: true });
    expect(server.uiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = await fetch(server.uiUrl!).then(
        (r) => r.status,
        () => 0,
      );
      if (status !== 200) await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toBe(200);
    await server.stop();
  }, 180_000);

  it('also runs through the @temporalio/testing wrapper (the no-CLI fallback path)', async () => {
    const server = await start({ via: 'sdk' });
    expect(server.backend).toBe('sdk');
    expect(await isReachable(server.address)).toBe(true);
    await server.stop();
    expect(await isReachable(server.address, 1_000)).toBe(false);
  }, 180_000);
});

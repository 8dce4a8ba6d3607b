/**
 * Notifications from real pipeline runs (real dev server, emulator) to a real HTTP server in this
 * test: success, a retry budget mostly used, failure, a long wait for nodes; the Slack-compatible
 * body; one call per event and webhook, with the event id as Idempotency-Key; a dead receiver
 * recorded, never failing the pipeline.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outcomeOf } from '../client/pipeline.ts';
import { progressQuery } from '../contracts/workflows.ts';
import { getFreePort } from '../node/free-port.ts';
import { fiveStageSpec, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { runSpec, startSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { until } from '../testkit/wait.ts';

interface Call {
  path: string;
  idempotencyKey: string | undefined;
  body: Record<string, unknown>;
}

let t: TestTemporal;
let server: http.Server;
let base: string;
const calls: Call[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      calls.push({
        path: req.url ?? '',
        idempotencyKey: req.headers['idempotency-key'] as string | undefined,
        body: JSON.parse(body) as Record<string, unknown>,
      });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.env.LINKFLOW_TEST_SLACK_URL = `${base}/slack`;
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
  await new Promise((resolve) => server?.close(resolve));
  delete process.env.LINKFLOW_TEST_SLACK_URL;
});

function spec(name: string, mutate: (s: RawSpec) => void): string {
  const dir = tempDir(name);
  const s = fiveStageSpec(name, path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10 });
  mutate(s);
  return writeSpec(dir, s);
}

describe('notifications', () => {
  it('success: a JSON and a Slack-compatible body, once each; a dead receiver is recorded and the pipeline still succeeds', async () => {
    const dead = `http://127.0.0.1:${await getFreePort('127.0.0.1')}/dead`;
    const file = spec('notify-ok', (s) => {
      s.stages = s.stages.slice(0, 1);
      s.notify = { webhooks: [{ url: `${base}/json` }, { urlFromEnv: 'LINKFLOW_TEST_SLACK_URL', format: 'slack' }, { url: dead }] };
    });
    const { state, handle } = await runSpec(t, file);
    expect(state.status).toBe('succeeded');
    const json = calls.filter((c) => c.path === '/json' && c.body.workflowId === handle.workflowId);
    expect(json).toHaveLength(1);
    expect(json[0]!.body).toMatchObject({ kind: 'succeeded', pipeline: 'notify-ok', status: 'succeeded', source: 'linkflow' });
    expect(json[0]!.body.text).toMatch(/^notify-ok succeeded: 1 stage ran \(data\)/);
    expect(json[0]!.idempotencyKey).toBe(json[0]!.body.eventId);
    expect(String(json[0]!.body.eventId)).toMatch(new RegExp(`^${handle.workflowId}/[0-9a-f-]+/succeeded$`));
    const slack = calls.filter((c) => c.path === '/slack' && c.idempotencyKey === json[0]!.body.eventId);
    expect(slack).toHaveLength(1);
    expect(slack[0]!.body).toEqual({ text: expect.stringMatching(/^\[linkflow\] notify-ok succeeded/) });
    // The dead one: tried a bounded number of times, recorded, and nothing else.
    expect(state.notifications).toEqual(
      expect.arrayContaining([
        { eventId: json[0]!.body.eventId, kind: 'succeeded', webhook: 0, delivered: true },
        { eventId: json[0]!.body.eventId, kind: 'succeeded', webhook: 1, delivered: true },
        expect.objectContaining({
          eventId: json[0]!.body.eventId,
          kind: 'succeeded',
          webhook: 2,
          delivered: false,
          error: expect.stringMatching(/did not answer/),
        }),
      ]),
    );
    expect(JSON.stringify(state)).not.toContain('/slack');
  });

  it('failure: the retry budget mostly used, then failed; a webhook that asked only for failures gets only that', async () => {
    const file = spec('notify-fail', (s) => {
      s.stages = s.stages.filter((x) => ['data', 'weights', 'pretrain'].includes(x.name as string));
      Object.assign(s.stages[2]!, { maxAttempts: 3, env: { MLEMU_FAULTS: 'crash@3,crash@4,crash@5' } });
      s.notify = { webhooks: [{ url: `${base}/all` }, { url: `${base}/failures`, events: ['failed'] }], retryBudgetUsed: 0.6 };
    });
    const { state, handle } = await runSpec(t, file);
    expect(state.status).toBe('failed');
    expect(state.stages.find((s) => s.name === 'pretrain')!.attempts).toHaveLength(3);
    const all = calls.filter((c) => c.path === '/all' && c.body.workflowId === handle.workflowId);
    expect(all.map((c) => c.body.kind)).toEqual(['retry-budget', 'failed']);
    expect(all[0]!.body).toMatchObject({ stage: 'pretrain', details: { budget: 'job', used: 2, of: 3 } });
    expect(all[0]!.body.text).toBe('notify-fail: stage pretrain has used 2 of its 3 attempts for job failures');
    expect(all[1]!.body).toMatchObject({ stage: 'pretrain', status: 'failed' });
    expect(all[1]!.body.text).toMatch(/^notify-fail failed: stage pretrain failed \(exception, after 3 job failures\)/);
    const failures = calls.filter((c) => c.path === '/failures' && c.body.workflowId === handle.workflowId);
    expect(failures.map((c) => c.body.kind)).toEqual(['failed']);
    // Every call has its own event id, sent once per webhook.
    const keys = [...all, ...failures].map((c) => `${c.path} ${c.idempotencyKey}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('waiting for nodes longer than the threshold: reported once for the attempt', async () => {
    const file = spec('notify-wait', (s) => {
      // A two-node gang on a pool where no worker runs with --node: it can only wait.
      s.cluster = { nodes: 2, devicesPerNode: 1 };
      s.stages = [{ ...s.stages[3]!, data: '/nonexistent/data', load: undefined }];
      s.notify = { webhooks: [{ url: `${base}/wait` }], waitingForNodesAfter: '2s' };
    });
    const handle = await startSpec(t, file);
    await until('the wait to be reported', async () => calls.some((c) => c.path === '/wait' && c.body.workflowId === handle.workflowId), {
      timeoutMs: 60_000,
    });
    // Still waiting a while later: still one call.
    await new Promise((r) => setTimeout(r, 4000));
    const waits = calls.filter((c) => c.path === '/wait' && c.body.workflowId === handle.workflowId);
    expect(waits).toHaveLength(1);
    expect(waits[0]!.body).toMatchObject({ kind: 'waiting-for-nodes', stage: 'pretrain', status: 'running', details: { attempt: 1 } });
    expect(waits[0]!.body.text).toMatch(
      /stage pretrain has waited for nodes for 2 s: waiting for 2 nodes; 1 free of 1; more than the pool has in service: it waits for nodes to join in pool \S+: position 1 in the queue/,
    );
    const state = await handle.query(progressQuery);
    expect(state.stages[0]!.status).toBe('waiting-for-nodes');
    expect(state.notified?.filter((id) => id.endsWith('/waiting-for-nodes'))).toHaveLength(1);
    expect(state.notifications).toEqual([expect.objectContaining({ kind: 'waiting-for-nodes', webhook: 0, delivered: true })]);
    await handle.cancel();
    await outcomeOf(handle);
  });
});

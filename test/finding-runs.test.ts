/**
 * Finding runs: every pipeline carries linkflow's search attributes (registered on the test's dev
 * server), `linkflow list` finds runs by status, model and start time through visibility queries, and
 * the Web UI gets a summary per pipeline and per attempt. On a real dev server with the emulator.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPayloadConverter } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';
import { fiveStageSpec, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { runSpec, startSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { runCli } from '../testkit/cli.ts';
import { until } from '../testkit/wait.ts';
import { currentStageKey, failureClassKey, modelKey, pipelineNameKey, statusKey } from '../contracts/search-attributes.ts';
import { listQuery } from '../client/list.ts';
import type { ListedPipeline } from '../client/list.ts';

let t: TestTemporal;
let crashed: WorkflowHandle;
let broken: WorkflowHandle;
let running: WorkflowHandle;

/** data, weights, pretrain of the tiny model; `env` for the pretraining. */
function pretrainSpec(name: string, opts: { trainIters?: number; env?: Record<string, string> } = {}): RawSpec {
  const dir = tempDir(name);
  const spec = fiveStageSpec(name, path.join(dir, 'ws'), { trainIters: opts.trainIters ?? 20, saveInterval: 10, pretrainEnv: opts.env });
  spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
  return spec;
}

function specFile(spec: RawSpec): string {
  return writeSpec(path.dirname(spec.workspace as string), spec);
}

const cliEnv = () => ({ TEMPORAL_ADDRESS: t.config.address, LINKFLOW_TASK_QUEUE: t.config.taskQueue });

async function list(...args: string[]): Promise<ListedPipeline[]> {
  const cli = await runCli(['list', '--json', ...args], cliEnv());
  expect(cli.code, cli.stderr).toBe(0);
  return JSON.parse(cli.stdout) as ListedPipeline[];
}

/** Visibility is eventually consistent: the list the query settles on. */
async function listSettled(expected: string[], ...args: string[]): Promise<ListedPipeline[]> {
  let last: ListedPipeline[] = [];
  try {
    return await until(
      `list ${args.join(' ')} to find ${expected.join(', ')}`,
      async () => {
        last = await list(...args);
        return [...last.map((r) => r.workflowId)].sort().join() === [...expected].sort().join() && last;
      },
      { timeoutMs: 30_000, everyMs: 500 },
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last: ${JSON.stringify(last)}`, { cause: e });
  }
}

beforeAll(async () => {
  t = await startTestTemporal();
  // Succeeds after a crash: its last failure class stays `exception`.
  crashed = (await runSpec(t, specFile(pretrainSpec('found-crash', { env: { MLEMU_FAULTS: 'crash@15' } })))).handle;
  // Fails for good before launching: another model, a missing input.
  const bad = pretrainSpec('found-broken');
  bad.model = { preset: 'llama2-7b', impl: 'mcore', tokenizer: (bad.model as { tokenizer: string }).tokenizer };
  bad.stages[0].input = '/nonexistent/corpus.jsonl';
  broken = (await runSpec(t, specFile(bad))).handle;
  // Still training while the test lists.
  running = await startSpec(t, specFile(pretrainSpec('found-running', { trainIters: 100_000, env: { MLEMU_ITER_TIME_MS: '200' } })));
}, 300_000);

afterAll(async () => {
  await running?.cancel().catch(() => undefined);
  await running?.result().catch(() => undefined);
  await t?.stop();
}, 120_000);

describe('search attributes', () => {
  it('hold the pipeline, model, status and the failure class of the last failed attempt', async () => {
    const ended = (await crashed.describe()).typedSearchAttributes;
    expect(ended.get(pipelineNameKey)).toBe('found-crash');
    expect(ended.get(modelKey)).toBe('tiny');
    expect(ended.get(statusKey)).toBe('succeeded');
    expect(ended.get(failureClassKey)).toBe('exception');
    expect(ended.get(currentStageKey)).toBeUndefined();
    const failed = (await broken.describe()).typedSearchAttributes;
    expect(failed.get(modelKey)).toBe('llama2-7b');
    expect(failed.get(statusKey)).toBe('failed');
    expect(failed.get(failureClassKey)).toBe('missing-input');
    // The running one says which stage it is in.
    await until('running pipeline in pretrain', async () => (await running.describe()).typedSearchAttributes.get(currentStageKey) === 'pretrain', {
      timeoutMs: 60_000,
    });
    expect((await running.describe()).typedSearchAttributes.get(statusKey)).toBe('running');
  });
});

describe('linkflow list', () => {
  it('finds exactly the runs of a status, a model, both, and a start time', async () => {
    await until('running pipeline in pretrain', async () => (await running.describe()).typedSearchAttributes.get(currentStageKey) === 'pretrain', {
      timeoutMs: 60_000,
    });
    const failed = await listSettled([broken.workflowId], '--status', 'failed');
    expect(failed[0]).toMatchObject({ kind: 'pipeline', pipeline: 'found-broken', model: 'llama2-7b', status: 'failed', failureClass: 'missing-input' });
    const runningNow = await listSettled([running.workflowId], '--status', 'running');
    expect(runningNow[0]).toMatchObject({ status: 'running', stage: 'pretrain', model: 'tiny' });
    await listSettled([crashed.workflowId, running.workflowId], '--model', 'tiny');
    await listSettled([broken.workflowId], '--model', 'llama2-7b');
    const succeeded = await listSettled([crashed.workflowId], '--model', 'tiny', '--status', 'succeeded');
    expect(succeeded[0]).toMatchObject({ status: 'succeeded', failureClass: 'exception' });
    await listSettled([crashed.workflowId, broken.workflowId, running.workflowId], '--since', '1h');
    await listSettled([], '--since', '2099-01-01');
    // The table names them too.
    const table = await runCli(['list', '--status', 'failed'], cliEnv());
    expect(table.stdout).toMatch(new RegExp(`${broken.workflowId}\\s+pipeline\\s+failed\\s+llama2-7b`));
  });

  it('rejects a bad filter before asking the server (exit 2)', async () => {
    const bad = await runCli(['list', '--status', 'exploded'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--status: expected one of running, succeeded, failed/);
    expect(() => listQuery({ model: "x' OR 1=1" })).toThrow(/--model/);
    expect(() => listQuery({ since: 'yesterday' })).toThrow(/--since/);
  });
});

describe('the Web UI', () => {
  // The pool has one node, which the still-training pipeline holds: its listing is done, so it makes way.
  beforeAll(async () => {
    await running.cancel();
    await running.result().catch(() => undefined);
  }, 120_000);

  it('shows a summary of the pipeline and of each attempt: stage, attempt and resume point', async () => {
    const description = await crashed.describe();
    expect(await description.staticSummary()).toBe('found-crash · tiny · data → weights → pretrain');
    expect(await description.staticDetails()).toMatch(/- pretrain \(pretrain\)/);
    const summaries: string[] = [];
    for (const event of (await crashed.fetchHistory()).events ?? []) {
      const summary = event.activityTaskScheduledEventAttributes?.activityType?.name === 'runStageAttempt' ? event.userMetadata?.summary : undefined;
      if (summary) summaries.push(defaultPayloadConverter.fromPayload<string>(summary));
    }
    expect(summaries).toEqual(['data · attempt 1', 'weights · attempt 1', 'pretrain · attempt 1', 'pretrain · attempt 2 · from 10']);
  });

  it('`run` prints the Web UI link of the pipeline when a UI is known', async () => {
    const spec = pretrainSpec('found-link');
    spec.stages = spec.stages.slice(0, 1);
    const cli = await runCli(['run', specFile(spec)], { ...cliEnv(), LINKFLOW_UI_URL: 'https://temporal.example.com/' });
    expect(cli.code, cli.stderr).toBe(0);
    const id = cli.stdout.trim();
    expect(cli.stderr).toContain(`Web UI: https://temporal.example.com/namespaces/default/workflows/${id}`);
    await t.client.workflow.getHandle(id).result();
  });

  it("`run` finds a local dev server's UI on its port, and prints no link when none answers", async () => {
    // Stands in for the dev server's UI: something answering HTTP on the UI port of the server's host.
    const ui = http.createServer((_req, res) => res.end('ui'));
    await new Promise<void>((r) => ui.listen(0, '127.0.0.1', () => r()));
    const uiPort = (ui.address() as AddressInfo).port;
    try {
      const spec = pretrainSpec('found-dev-link');
      spec.stages = spec.stages.slice(0, 1);
      const cli = await runCli(['run', specFile(spec), '--wait'], { ...cliEnv(), LINKFLOW_DEV_UI_PORT: String(uiPort) });
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout).toMatch(new RegExp(`Web UI: http://127\\.0\\.0\\.1:${uiPort}/namespaces/default/workflows/linkflow-found-dev-link-`));
    } finally {
      await new Promise((r) => ui.close(r));
    }
    const spec = pretrainSpec('found-no-link');
    spec.stages = spec.stages.slice(0, 1);
    const none = await runCli(['run', specFile(spec), '--wait'], { ...cliEnv(), LINKFLOW_DEV_UI_PORT: String(uiPort) });
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout + none.stderr).not.toMatch(/Web UI/);
  });
});

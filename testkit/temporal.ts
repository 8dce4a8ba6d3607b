/** A real Temporal dev server and a linkflow worker for one test file. */
import type { Client } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { loadConfig, type LinkflowConfig } from '../temporal.config.ts';
import { startDevServer, type DevServer } from '../devserver/dev-server.ts';
import { createLinkflowWorker, type LinkflowWorker } from '../worker/worker.ts';
import { connectClient } from '../client/connect.ts';
import { searchAttributeTypes } from '../contracts/search-attributes.ts';

export interface TestTemporal {
  server: DevServer;
  config: LinkflowConfig;
  client: Client;
  worker: LinkflowWorker;
  stop(): Promise<void>;
}

/** Short retry backoff and heartbeat timeout so failure tests take seconds, not minutes. */
export async function startTestTemporal(): Promise<TestTemporal> {
  const server = await startDevServer({ ui: false, searchAttributes: searchAttributeTypes() });
  const config = loadConfig(
    {
      address: server.address,
      taskQueue: `test-${randomUUID()}`,
      retry: {
        maximumAttempts: 4,
        initialInterval: '500ms',
        backoffCoefficient: 1,
        maximumInterval: '1s',
        infrastructureAttempts: 6,
        infrastructureInitialInterval: '500ms',
      },
      activity: { heartbeatTimeout: '10s', startToCloseTimeout: '10m' },
      // These tests fail attempts on purpose, on the one node there is: a quarantine would stall them (test/pool.test.ts tests it).
      pool: { quarantineAfter: 1000 },
    },
    {},
  );
  const worker = await createLinkflowWorker({ config });
  const running = worker.run();
  const client = await connectClient(config);
  return {
    server,
    config,
    client,
    worker,
    async stop() {
      worker.shutdown();
      await running;
      await worker.close();
      await client.connection.close();
      await server.stop();
    },
  };
}

import { loadSpecFile } from '../client/spec-file.ts';
import { outcomeOf, startPipeline } from '../client/pipeline.ts';
import type { PipelinePlan } from '../plan/plan.ts';
import type { PipelineState } from '../contracts/run-state.ts';
import type { WorkflowHandle } from '@temporalio/client';

export function planFile(specFile: string): PipelinePlan {
  const result = loadSpecFile(specFile);
  if (!result.ok) throw new Error(`test spec invalid:\n${result.problems.map((p) => `${p.path}: ${p.message}`).join('\n')}`);
  return result.plan;
}

export async function startSpec(t: TestTemporal, specFile: string): Promise<WorkflowHandle> {
  return startPipeline(t.client, t.config, planFile(specFile));
}

/** Runs a pipeline to its end; returns its final state whether it succeeded or failed. */
export async function runSpec(t: TestTemporal, specFile: string): Promise<{ state: PipelineState; failure?: string; handle: WorkflowHandle }> {
  const handle = await startSpec(t, specFile);
  const { state, failure } = await outcomeOf(handle);
  if (!state) throw new Error(`pipeline ended without a state: ${failure}`);
  return { state, failure, handle };
}

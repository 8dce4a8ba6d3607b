/** The Temporal dev server restarted (same SQLite file) in the middle of training: nothing is lost. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectClient } from '../client/connect.ts';
import { outcomeOf, snapshot, startPipeline } from '../client/pipeline.ts';
import { startDevServer } from '../devserver/dev-server.ts';
import { getFreePort } from '../node/free-port.ts';
import { fastRetryConfig } from '../testkit/wait.ts';
import { createLinkflowWorker } from '../worker/worker.ts';
import { fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
import { planFile } from '../testkit/temporal.ts';

describe('a restarted Temporal server', () => {
  it('the pipeline goes on when the server is back', async () => {
    const dir = tempDir('restart');
    const port = await getFreePort();
    const dbFile = path.join(dir, 'temporal.db');
    let server = await startDevServer({ port, dbFile, ui: false });
    const config = { ...fastRetryConfig(server.address, '20s'), taskQueue: `restart-${process.pid}` };
    const worker = await createLinkflowWorker({ config });
    const running = worker.run();
    try {
      const client = await connectClient(config);
      const spec = fiveStageSpec('restart', path.join(dir, 'ws'), { trainIters: 300 });
      spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
      (spec.modellink as { env: Record<string, string> }).env.MLEMU_ITER_TIME_MS = '30';
      const handle = await startPipeline(client, config, planFile(writeSpec(dir, spec)));
      const deadline = Date.now() + 60_000;
      for (;;) {
        const snap = await snapshot(handle);
        if (snap.live?.stage === 'pretrain' && (snap.live.iteration ?? 0) >= 20) break;
        if (Date.now() > deadline) throw new Error('training never reached iteration 20');
        await new Promise((r) => setTimeout(r, 200));
      }
      await server.stop();
      await new Promise((r) => setTimeout(r, 3000));
      server = await startDevServer({ port, dbFile, ui: false });
      const { state, failure } = await outcomeOf(handle);
      expect(state?.status, failure).toBe('succeeded');
      const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
      expect(pretrain.finalIteration).toBe(300);
      await client.connection.close();
    } finally {
      worker.shutdown();
      await running.catch(() => undefined);
      await worker.close();
      await server.stop();
    }
  });
});

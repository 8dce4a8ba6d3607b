/**
 * Replays recorded histories (test/histories, made by scripts/record-histories.ts) against today's
 * workflow code: a change that would break running pipelines (non-determinism) fails here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../testkit/specs.ts';

const require = createRequire(import.meta.url);
const dir = path.join(ROOT, 'test', 'histories');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.history.bin'));

describe('recorded pipeline histories replay deterministically', () => {
  it('has histories to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(2);
  });
  for (const file of files) {
    it(file, async () => {
      const history = proto.temporal.api.history.v1.History.decode(fs.readFileSync(path.join(dir, file)));
      await Worker.runReplayHistory({ workflowsPath: require.resolve('../workflows/index.ts') }, history, file);
    });
  }
});

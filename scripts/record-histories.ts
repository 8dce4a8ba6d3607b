/**
 * Records workflow histories for test/replay.test.ts: a pipeline that succeeds after a crash and a
 * retry, and one that fails on a bad flag. Run after an intended change to the workflow's
 * commands (and only then):  node --import tsx scripts/record-histories.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import proto from '@temporalio/proto';
import { outcomeOf } from '../cli/pipeline-client.ts';
import { fiveStageSpec, tempDir, writeSpec } from '../test/helpers/specs.ts';
import { startSpec, startTestTemporal } from '../test/helpers/temporal.ts';

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'histories');
const t = await startTestTemporal();
try {
  const cases: [string, (spec: ReturnType<typeof fiveStageSpec>) => void][] = [
    ['crash-and-resume', (spec) => Object.assign(spec.stages[3], { env: { MLEMU_FAULTS: 'crash@15' } })],
    ['bad-flag', (spec) => Object.assign(spec.stages[3], { args: { '--no-such-flag': '1' }, allowUnknownFlags: true })],
  ];
  for (const [name, edit] of cases) {
    const dir = tempDir(`history-${name}`);
    const spec = fiveStageSpec(name, path.join(dir, 'ws'), { trainIters: 20 });
    edit(spec);
    const handle = await startSpec(t, writeSpec(dir, spec));
    await outcomeOf(handle);
    const history = await handle.fetchHistory();
    // Protobuf bytes: decoded again by the same @temporalio/proto module the worker uses.
    fs.writeFileSync(path.join(out, `${name}.history.bin`), proto.temporal.api.history.v1.History.encode(history).finish());
    console.log(`recorded ${name}: ${history.events?.length} events`);
  }
} finally {
  await t.stop();
}

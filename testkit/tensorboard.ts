/** Reads a TensorBoard log directory with TensorBoard's own reader (installed by scripts/pytool), as its UI would. */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './specs.ts';

/** Per tag, the (step, value) pairs TensorBoard's EventAccumulator shows, in order. */
export type TensorBoardSeries = Record<string, [number, number][]>;

const READER = `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
# size_guidance 0: keep every event (the default samples scalars down to 10000).
acc = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0})
acc.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()['scalars']}))
`;

export function readTensorBoard(dir: string): TensorBoardSeries {
  const out = execFileSync(path.join(ROOT, 'scripts', 'pytool'), ['tensorboard', '-c', READER, dir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(out) as TensorBoardSeries;
}

/** The raw events of one file, in file order (TensorBoard's event_file_loader, no purging): [tag, step] per scalar. */
export function readEventFile(file: string): [string, number][] {
  const script = `
import json, sys
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2
out = []
for raw in RawEventFileLoader(sys.argv[1]).Load():
    e = event_pb2.Event.FromString(raw)
    out += [[v.tag, e.step] for v in e.summary.value]
print(json.dumps(out))
`;
  return JSON.parse(
    execFileSync(path.join(ROOT, 'scripts', 'pytool'), ['tensorboard', '-c', script, file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }),
  ) as [string, number][];
}

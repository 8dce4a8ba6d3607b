/**
 * The typed launch (frameworks/launch.ts) renders the argv the string launcher gave before it: for the
 * demo spec, a five-stage spec on one and two nodes, and every script of examples.json (the
 * conformance corpus), the planned launcher, a gang rank's, a single node's free master port, the
 * node count, whom a stop signals and the whole argv are those recorded in test/fixtures/launch-golden.json.
 * Plans recorded before the type carry only the rendered argv: launchOf reads them back the same.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSpecFile } from '../client/spec-file.ts';
import { importScript, renderStage } from '../import/import-script.ts';
import { parsedOf, type Example } from '../testkit/conformance.ts';
import {
  launchesAcrossNodes,
  launchesElasticAgent,
  launchForRank,
  launchOf,
  nodesOf,
  pythonLaunch,
  renderLaunch,
  torchrunLaunch,
  withMasterPort,
  type Launch,
} from '../frameworks/launch.ts';
import { plannedArgv, planPipeline, type StagePlan } from '../plan/plan.ts';
import { fiveStageSpec, ROOT } from '../testkit/specs.ts';

const golden = JSON.parse(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'launch-golden.json'), 'utf8')) as {
  argv: string[][];
  cases: Record<string, [launcher: number, rank: number, port: number, nodes: number, agent: boolean, argvSha: string]>;
};
const rank = { nodeRank: 1, nodes: 2, masterAddr: '10.0.0.7', masterPort: 29411 };
const relative = (argv: string[]) => argv.map((a) => a.replaceAll(ROOT, '<root>'));
const sha = (argv: string[]) => createHash('sha256').update(JSON.stringify(argv)).digest('hex').slice(0, 16);

/** Example scripts that import only since the golden file was recorded (each with its reason where it is skipped). */
const IMPORTS_SINCE_GOLDEN = new Set(['examples/bloom/ckpt_convert_bloom_hf2legacy.sh']);

/**
 * Cases whose whole argv changed since for a reason outside the launch: these scripts pass `--num-layers 32`
 * then `--num-layers 80`; argparse keeps 80, as import does since, where the golden file recorded the first.
 */
const ARGV_SINCE_GOLDEN = new Set(['examples/examples/llama2/chat_llama2_70b_ptd.sh', 'examples/examples/mcore/llama2/chat_llama2_70b_ptd.sh']);

/** Every case of the golden file, planned by today's code. */
function plannedCases(): Map<string, StagePlan> {
  const cases = new Map<string, StagePlan>();
  const demo = loadSpecFile(path.join(ROOT, 'examples', 'demo.yaml'), { workspace: '/tmp/ws' });
  if (!demo.ok) throw new Error(JSON.stringify(demo.problems));
  for (const s of demo.plan.stages) cases.set(`demo/${s.name}`, s);
  for (const nodes of [1, 2]) {
    const spec = fiveStageSpec('gang', '/tmp/ws');
    spec.cluster = { nodes, devicesPerNode: 2 };
    spec.parallel = { tp: 1, pp: 2 };
    const planned = planPipeline(spec, { baseDir: ROOT });
    if (!planned.ok) throw new Error(JSON.stringify(planned.problems));
    for (const s of planned.plan.stages) cases.set(`five-${nodes}/${s.name}`, s);
  }
  const examples = JSON.parse(fs.readFileSync(path.join(ROOT, 'reference', 'modellink', 'examples.json'), 'utf8')) as { scripts: Example[] };
  for (const e of examples.scripts) {
    const parsed = parsedOf(e);
    let rendered;
    try {
      const imported = importScript(parsed, {
        name: 'imported',
        root: '/opt/ModelLink',
        scriptPath: e.script,
        framework: { flavour: 'modellink', version: 'd4feda79' },
      });
      // Since the golden file was recorded, models without a preset import as model.architecture and trainer.py as DPO stages.
      if (imported.preset === 'custom' || imported.kind === 'dpo') continue;
      // ... and a script that gives a flag twice imports with argparse's last value (bloom's hf2legacy passes
      // `--load-dir` and `--save-dir` once empty, then with the path): it failed to import when the file was made.
      if (IMPORTS_SINCE_GOLDEN.has(e.script)) continue;
      rendered = renderStage(imported.spec, '/opt/ModelLink');
    } catch {
      continue; // scripts linkflow does not import (the golden file has none of them)
    }
    if (rendered.ok) cases.set(`examples/${e.script}`, rendered.stage);
  }
  return cases;
}

function expectGolden(key: string, launch: Launch, argv: string[] | undefined): void {
  const [launcher, ranked, port, nodes, agent, argvSha] = golden.cases[key];
  expect(relative(renderLaunch(launch)), key).toEqual(golden.argv[launcher]);
  expect(relative(renderLaunch(launchForRank(launch, rank))), key).toEqual(golden.argv[ranked]);
  expect(relative(renderLaunch(withMasterPort(launch, 41234))), key).toEqual(golden.argv[port]);
  expect(nodesOf(launch), key).toBe(nodes);
  expect(launchesElasticAgent(launch), key).toBe(agent);
  if (argv && !ARGV_SINCE_GOLDEN.has(key)) expect(sha(relative(withoutOwnTensorBoard(argv))), key).toBe(argvSha);
  if (argv && ARGV_SINCE_GOLDEN.has(key))
    expect(argv.slice(argv.indexOf('--num-layers'), argv.indexOf('--num-layers') + 2), key).toEqual(['--num-layers', '80']);
}

/** The argv as before, apart from the TensorBoard flags training stages carry by default since (`<stage>/tensorboard`). */
function withoutOwnTensorBoard(argv: string[]): string[] {
  const at = argv.findIndex((a, i) => a === '--tensorboard-dir' && argv[i + 1]?.endsWith('/tensorboard'));
  if (at < 0) return argv;
  return argv.filter((a, i) => i !== at && i !== at + 1 && a !== '--log-timers-to-tensorboard');
}

describe('a typed launch renders the argv of the string launcher it replaced', () => {
  const cases = plannedCases();

  it('plans every case of the golden file (the demo, a five-stage spec, the conformance corpus)', () => {
    expect([...cases.keys()].sort()).toEqual(Object.keys(golden.cases).sort());
    expect(cases.size).toBeGreaterThan(400);
  });

  it('launcher, gang rank, free master port, node count, stop target and whole argv, as before', () => {
    for (const [key, stage] of cases) {
      expectGolden(key, stage.launch, stage.argv);
      expect(stage.argv.slice(0, renderLaunch(stage.launch).length)).toEqual(renderLaunch(stage.launch));
      // `linkflow render` renders the launch itself: the same command line as the plan records.
      expect(plannedArgv(stage), key).toEqual(stage.argv);
    }
  });

  it('reads plans recorded before the type (only the rendered launcher) the same way', () => {
    for (const [key, stage] of cases) {
      const legacy = launchOf({ launcher: renderLaunch(stage.launch) });
      expectGolden(key, legacy, undefined);
      expect(legacy, key).toEqual(stage.launch);
    }
    expect(launchOf({ launch: pythonLaunch('python3'), launcher: ['ignored'] })).toEqual(pythonLaunch('python3'));
  });

  it('crosses Temporal as plain data', () => {
    for (const stage of cases.values()) expect(JSON.parse(JSON.stringify(stage.launch))).toEqual(stage.launch);
  });
});

describe('decisions read the type', () => {
  const on = (nnodes: number) => torchrunLaunch(['torchrun'], { nprocPerNode: 8, nnodes, nodeRank: 0, masterAddr: 'localhost', masterPort: 6000 });

  it('a gang is a torchrun launch on more than one node; python never is', () => {
    expect(launchesAcrossNodes(on(2))).toBe(true);
    expect(launchesAcrossNodes(on(1))).toBe(false);
    expect(launchesAcrossNodes(pythonLaunch('python'))).toBe(false);
  });

  it("a rank's launch changes only its rank, the gang's size and the rendezvous", () => {
    expect(launchForRank(on(2), rank)).toEqual({ ...on(2), nodeRank: 1, masterAddr: '10.0.0.7', masterPort: 29411 });
    expect(withMasterPort(on(1), 41234)).toEqual({ ...on(1), masterPort: 41234 });
  });

  it('an older plan with an elastic --nnodes MIN:MAX spans MAX nodes', () => {
    const launcher = ['torchrun', '--nproc_per_node', '8', '--nnodes', '1:4', '--node_rank', '0', '--master_addr', 'localhost', '--master_port', '6000'];
    expect(nodesOf(launchOf({ launcher }))).toBe(4);
    expect(launchOf({ launcher: ['python3'] })).toEqual(pythonLaunch('python3'));
  });
});

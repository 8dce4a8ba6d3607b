/** Multi-node gangs without Temporal: rank command lines, placement, root cause, merged results. */
import { describe, expect, it } from 'vitest';
import { logsIterations, mergeRankResults, nodeIdentity, nodeQueue, rootCauseRank } from '../plan/gang.ts';
import { launchesAcrossNodes, launchForRank, nodesOf, pythonLaunch, renderLaunch, torchrunLaunch, withMasterPort } from '../frameworks/launch.ts';
import { planPipeline } from '../plan/plan.ts';
import { fiveStageSpec, ROOT } from '../testkit/specs.ts';

const rank = { nodeRank: 1, nodes: 2, node: 'n2', masterAddr: '10.0.0.7', masterPort: 29411 };

describe('a rank of a gang', () => {
  it("gets its node rank and rank 0's address and port, and nothing else of the command changes", () => {
    const launch = torchrunLaunch(['torchrun'], { nprocPerNode: 8, nnodes: 2, nodeRank: 0, masterAddr: 'localhost', masterPort: 6000 });
    expect(renderLaunch(launchForRank(launch, rank))).toEqual([
      'torchrun',
      '--nproc_per_node',
      '8',
      '--nnodes',
      '2',
      '--node_rank',
      '1',
      '--master_addr',
      '10.0.0.7',
      '--master_port',
      '29411',
    ]);
    expect(launch.nodeRank).toBe(0);
    expect(launchForRank(pythonLaunch('python3'), rank)).toEqual(pythonLaunch('python3'));
  });

  it("a single-node job moves only torchrun's master port (its store binds it on the node)", () => {
    const launch = torchrunLaunch(['python', '-m', 'torch.distributed.launch'], {
      nprocPerNode: 8,
      nnodes: 1,
      nodeRank: 0,
      masterAddr: 'localhost',
      masterPort: 6000,
    });
    expect(withMasterPort(launch, 41234)).toEqual({ ...launch, masterPort: 41234 });
    expect(renderLaunch(withMasterPort(launch, 41234))).toEqual([
      'python',
      '-m',
      'torch.distributed.launch',
      '--nproc_per_node',
      '8',
      '--nnodes',
      '1',
      '--node_rank',
      '0',
      '--master_addr',
      'localhost',
      '--master_port',
      '41234',
    ]);
    expect(withMasterPort(pythonLaunch('python3'), 41234)).toEqual(pythonLaunch('python3'));
  });

  it("every stage launched with torchrun in a 2-node spec is a gang, and a rank's command keeps the planned launcher flags", () => {
    const spec = fiveStageSpec('gang', '/tmp/ws');
    spec.cluster = { nodes: 2, devicesPerNode: 1, hosts: ['n1', 'n2'] };
    spec.parallel = { tp: 1, pp: 2 };
    const planned = planPipeline(spec, { baseDir: ROOT });
    if (!planned.ok) throw new Error(JSON.stringify(planned.problems));
    expect(planned.plan.hosts).toEqual(['n1', 'n2']);
    const gangs = planned.plan.stages.filter((s) => launchesAcrossNodes(s.launch)).map((s) => s.name);
    expect(gangs).toEqual(['pretrain', 'finetune', 'evaluate', 'generate']);
    const pretrain = planned.plan.stages.find((s) => s.name === 'pretrain')!;
    const ranked = renderLaunch(launchForRank(pretrain.launch, rank));
    const plannedArgv = renderLaunch(pretrain.launch);
    expect(ranked.filter((a) => a.startsWith('--'))).toEqual(plannedArgv.filter((a) => a.startsWith('--')));
  });

  it('evaluation and inference run tp × pp ranks on as few nodes as hold them: one node of 8 devices for pp 2', () => {
    const spec = fiveStageSpec('gang', '/tmp/ws');
    spec.cluster = { nodes: 2, devicesPerNode: 8 };
    spec.parallel = { tp: 1, pp: 2 };
    const planned = planPipeline(spec, { baseDir: ROOT });
    if (!planned.ok) throw new Error(JSON.stringify(planned.problems));
    const nodes = Object.fromEntries(planned.plan.stages.map((s) => [s.name, nodesOf(s.launch)]));
    expect(nodes).toMatchObject({ pretrain: 2, finetune: 2, evaluate: 1, generate: 1 });
    const evaluate = planned.plan.stages.find((s) => s.name === 'evaluate')!;
    expect(evaluate.launch).toMatchObject({ kind: 'torchrun', nprocPerNode: 2, nnodes: 1 });
    expect(nodesOf(pythonLaunch('python'))).toBe(1);
  });

  it('only the last node watches for hangs: Megatron prints the training log on the last rank', () => {
    expect(logsIterations(undefined)).toBe(true);
    expect(logsIterations({ ...rank, nodeRank: 0 })).toBe(false);
    expect(logsIterations(rank)).toBe(true);
  });
});

describe('node queues', () => {
  it('node queues and worker identities name the node', () => {
    expect(nodeQueue('pool', 'n1')).toBe('pool@n1');
    expect(nodeIdentity('n1', 'host', 42)).toBe('42@host node=n1');
  });
});

describe("a gang's outcome", () => {
  it('blames the rank that failed first for a reason other than losing its peer', () => {
    expect(
      rootCauseRank([
        { nodeRank: 0, failureClass: 'communication' },
        { nodeRank: 1, failureClass: 'segfault' },
      ])?.nodeRank,
    ).toBe(1);
    expect(
      rootCauseRank([
        { nodeRank: 0, failureClass: 'communication' },
        { nodeRank: 1, failureClass: 'communication' },
      ])?.nodeRank,
    ).toBe(0);
    expect(rootCauseRank([])).toBeUndefined();
    // A drain: node 1 was stopped, node 0 stopped with it.
    expect(
      rootCauseRank([
        { nodeRank: 0, failureClass: 'killed', followsPeer: true },
        { nodeRank: 1, failureClass: 'killed' },
      ])?.nodeRank,
    ).toBe(1);
  });

  it('takes iterations from the last node and saved checkpoints from node 0', () => {
    const merged = mergeRankResults([
      { logFile: 'r0.log', loadedIteration: 10, lastCheckpoint: { iteration: 40, dir: '/s/iter_0000040' }, timings: { saveMsTotal: 300, saves: 3 } },
      { logFile: 'r1.log', loadedIteration: 10, finalIteration: 40, timings: { startupMs: 900, msPerIteration: 20 } },
    ]);
    expect(merged).toMatchObject({
      loadedIteration: 10,
      finalIteration: 40,
      lastCheckpoint: { iteration: 40 },
      logFile: 'r1.log',
      logFiles: ['r0.log', 'r1.log'],
    });
    expect(merged.timings).toEqual({ startupMs: 900, msPerIteration: 20, saveMsTotal: 300, saves: 3 });
  });
});

/**
 * `linkflow validate --on-node NAME`: the checks that only the node where a stage runs can answer,
 * run by that node's worker. Reads only: its inputs and ModelLink's checkout, the entrypoint and the
 * launcher, the setup script (sourced, as an attempt sources it), and whether its devices are free
 * (the pool's health check, and the attempts this worker runs now).
 */
import fs from 'node:fs';
import path from 'node:path';
import { launchOf, renderLaunch } from '../frameworks/launch.ts';
import type { StagePlan } from '../plan/plan.ts';
import type { SpecProblem } from '../spec/spec.ts';
import { runningCount } from '../executors/nodes/io/process-group.ts';
import { loadSetupEnv } from '../node/setup-env.ts';
import { dataFiles } from './manifest.ts';
import { nodeName } from './node.ts';
import { checkNode } from './pool.ts';

export interface NodePreflight {
  node: string;
  problems: SpecProblem[];
  /** What was checked and found well. */
  checked: string[];
}

function onPath(program: string, env: Record<string, string | undefined>): boolean {
  if (program.includes('/')) return fs.existsSync(program);
  return (env.PATH ?? '').split(':').some((dir) => dir && fs.existsSync(path.join(dir, program)));
}

function checkStage(stage: StagePlan, problems: SpecProblem[], checked: Set<string>): void {
  const where = `${stage.specPath} (${stage.name})`;
  if (!fs.existsSync(stage.cwd)) problems.push({ path: where, message: `ModelLink's checkout ${stage.cwd} (modellink.root) does not exist on this node` });
  else if (!fs.existsSync(path.resolve(stage.cwd, stage.entrypoint)))
    problems.push({ path: where, message: `${stage.entrypoint} is not in ${stage.cwd}: modellink.root is not a ModelLink checkout here` });
  else checked.add(`ModelLink checkout ${stage.cwd}`);
  let env: Record<string, string | undefined> = process.env;
  if (stage.setupScript) {
    try {
      env = { ...process.env, ...loadSetupEnv(stage.setupScript) };
      checked.add(`setup script ${stage.setupScript}`);
    } catch (e) {
      problems.push({ path: `${where}: modellink.setupScript`, message: (e as Error).message });
    }
  }
  const program = renderLaunch(launchOf(stage))[0];
  if (program && !onPath(program, { ...env, ...stage.env }))
    problems.push({ path: where, message: `the launcher ${program} is not found on this node (PATH after the setup script)` });
  for (const input of stage.inputs) {
    if (input.fromStage) continue;
    const missing = dataFiles(input).filter((f) => !fs.existsSync(f));
    if (missing.length) problems.push({ path: input.specPath, message: `missing on this node: ${missing.join(', ')}` });
    else checked.add(input.path);
  }
}

export async function preflightOnNode(input: { stages: StagePlan[] }): Promise<NodePreflight> {
  const problems: SpecProblem[] = [];
  const checked = new Set<string>();
  for (const stage of input.stages) if (!stage.slurm) checkStage(stage, problems, checked);
  const health = await checkNode({});
  if (!health.healthy) problems.push({ path: 'node', message: `the pool's health check fails here: ${health.reason}` });
  else checked.add("the pool's health check (devices)");
  const running = runningCount();
  if (running > 0) problems.push({ path: 'node', message: `this node runs ${running} command(s) of linkflow now: its devices are not free until they end` });
  else checked.add('no command of linkflow runs here: its devices are free');
  return { node: nodeName(), problems, checked: [...checked] };
}

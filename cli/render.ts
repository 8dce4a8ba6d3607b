/** `linkflow render`: each stage's command as argv (JSON) or as a safely quoted shell line. */
import path from 'node:path';
import { flattenArgs } from '../frameworks/modellink/commands.ts';
import { launchOf, nodesOf, renderLaunch } from '../frameworks/launch.ts';
import { plannedArgv, type PipelinePlan, type StagePlan } from '../plan/plan.ts';
import { BATCH_SCRIPT, jobName, sbatchOptions, slurmLaunch } from '../executors/slurm/plan.ts';

/** POSIX single-quoting: safe for any value, including spaces, quotes and $. */
function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function renderPlan(plan: PipelinePlan, format: 'argv' | 'sh'): string {
  const out: string[] = [];
  for (const stage of plan.stages) {
    out.push(`# stage ${stage.name} (${stage.kind}) in ${stage.cwd}${stage.training ? '; later attempts resume with --load ' + stage.training.saveDir : ''}`);
    if (stage.slurm) out.push(...slurmSubmission(plan.name, stage));
    const argv = stage.slurm ? [...renderLaunch(slurmLaunch(launchOf(stage))), stage.entrypoint, ...flattenArgs(stage.args)] : plannedArgv(stage);
    if (format === 'argv') {
      out.push(JSON.stringify(argv));
      continue;
    }
    const env = Object.entries(stage.env).map(([k, v]) => `${k}=${shellQuote(v)}`);
    const source = stage.setupScript ? `source ${shellQuote(stage.setupScript)} && ` : '';
    out.push(`(cd ${shellQuote(stage.cwd)} && ${source}${[...env, ...argv.map(shellQuote)].join(' ')})`);
  }
  return out.join('\n');
}

/**
 * A Slurm stage's submission: sbatch's options and the constant batch script; the command below it
 * is what each node's task starts, with its rank and rendezvous filled in from the job.
 */
function slurmSubmission(pipeline: string, stage: StagePlan): string[] {
  const log = path.join(stage.logDir, 'attempt-N-<time>.log');
  const options = sbatchOptions({
    settings: stage.slurm!,
    nodes: nodesOf(launchOf(stage)),
    jobName: jobName(pipeline, stage.name, 1),
    usesDevices: launchOf(stage).kind === 'torchrun',
    logFile: log,
    cwd: stage.cwd,
  });
  const slurmDir = log.replace(/\.log$/, '.slurm');
  return [
    `# slurm: sbatch ${[...options, path.join(slurmDir, 'batch.sh'), 'node', 'executors/slurm/io/task.mjs', path.join(slurmDir, 'task.json')].map(shellQuote).join(' ')}`,
    '# slurm: batch.sh:',
    ...BATCH_SCRIPT.trimEnd()
      .split('\n')
      .map((l) => `#   ${l}`),
    "# slurm: each node's task (task.json, with the stage's environment and setup script) runs:",
  ];
}

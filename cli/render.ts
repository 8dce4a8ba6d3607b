/** `linkflow render`: each stage's command as argv (JSON) or as a safely quoted shell line. */
import path from 'node:path';
import { flattenArgs } from '../frameworks/modellink/commands.ts';
import { launchOf, nodesOf, renderLaunch } from '../frameworks/launch.ts';
import { plannedArgv, type PipelinePlan, type StagePlan } from '../plan/plan.ts';
import { BATCH_SCRIPT, jobName, sbatchOptions, slurmLaunch } from '../executors/slurm/plan.ts';
import YAML from 'yaml';
import { gangManifests, type KubeObject } from '../executors/kubernetes/manifests.ts';
import { gangName, rankLaunch } from '../executors/kubernetes/plan.ts';
import { stopGraceMs } from '../plan/stop-grace.ts';

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
    if (stage.kubernetes) {
      out.push(...kubernetesGang(plan.name, stage));
      continue;
    }
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

/**
 * A Kubernetes stage's first gang: its objects as the worker creates them (YAML), with a PodGroup
 * where the cluster serves Kubernetes' gang scheduling. Secrets appear by the Secret's name only.
 */
export function plannedGangObjects(pipeline: string, stage: StagePlan, attempt = 1): KubeObject[] {
  const launch = launchOf(stage);
  const rank = rankLaunch(launch, stage.kubernetes!.flavour);
  const log = path.join(stage.logDir, `attempt-${attempt}-<time>.log`);
  return gangManifests({
    settings: stage.kubernetes!,
    pipeline,
    stage: stage.name,
    attempt,
    launch,
    command: [stage.entrypoint, ...flattenArgs(stage.args)],
    cwd: stage.cwd,
    env: stage.env,
    setupScript: stage.setupScript,
    secretName: stage.secretEnv?.length ? `${gangName(pipeline, stage.name, attempt)}-env` : undefined,
    stopGraceSeconds: Math.ceil((stage.training ? stopGraceMs({ checkpointTimeoutMs: stage.training.hang.checkpointMs }) : 10_000) / 1000),
    usesDevices: rank.kind === 'torchrun',
    podGroups: true,
    rendezvousFile: path.join(log.replace(/\.log$/, '.k8s'), 'rendezvous'),
    fingerprint: '<fingerprint>',
  });
}

function kubernetesGang(pipeline: string, stage: StagePlan): string[] {
  const objects = plannedGangObjects(pipeline, stage);
  return [
    `# kubernetes: the gang of attempt 1 (${stage.kubernetes!.flavour}), created in this order by the worker:`,
    ...objects.map((o) => `---\n${YAML.stringify(o, { lineWidth: 0 }).trimEnd()}`),
    '---',
  ];
}

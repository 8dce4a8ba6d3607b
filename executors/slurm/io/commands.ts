/**
 * Slurm's client commands, each run as an argv (execFile, never a shell): sbatch submits, scontrol
 * (then sacct, once scontrol has forgotten the job) says where a job is, scancel ends it, sinfo and
 * squeue say what the partition holds. They find the cluster as they always do (slurm.conf, SLURM_CONF).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

async function slurm(argv: string[], extraEnv?: Record<string, string>): Promise<string> {
  try {
    const env = extraEnv ? { ...process.env, ...extraEnv } : undefined;
    return (await exec(argv[0], argv.slice(1), { maxBuffer: 16 * 1024 * 1024, ...(env ? { env } : {}) })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** Submits a batch script with its arguments; the job's id. `extraEnv` joins sbatch's environment, which the job inherits. */
export async function sbatch(options: string[], script: string, args: string[], extraEnv?: Record<string, string>): Promise<string> {
  const out = await slurm(['sbatch', ...options, script, ...args], extraEnv);
  // --parsable prints "id" or "id;cluster".
  const id = out.trim().split(';')[0];
  if (!/^\d+$/.test(id)) throw new Error(`sbatch printed no job id: ${out.trim()}`);
  return id;
}

/**
 * What Slurm knows of a job now, as scontrol's fields (JobState, Reason, ExitCode, NodeList; read by
 * ../plan.ts parseScontrolJob and jobInfo); undefined when neither scontrol nor sacct knows it.
 */
export async function jobFields(id: string): Promise<{ scontrol: string } | { sacct: Record<string, string> } | undefined> {
  try {
    const line = await slurm(['scontrol', 'show', 'job', '-o', id]);
    if (line.trim()) return { scontrol: line };
  } catch {
    // Forgotten after MinJobAge: accounting may still know it.
  }
  try {
    const out = await slurm(['sacct', '-j', id, '-X', '-n', '-P', '-o', 'JobID,State,ExitCode,NodeList,Reason']);
    const [jobId, state, exitCode, nodeList, reason] = out.trim().split('\n')[0]?.split('|') ?? [];
    if (jobId === id && state) return { sacct: { JobState: state, ExitCode: exitCode, NodeList: nodeList, Reason: reason } };
  } catch {
    // No accounting on this cluster.
  }
  return undefined;
}

/** scancel: the job, or with a signal every process of every step (--full includes the batch script). */
export async function scancel(id: string, signal?: 'KILL' | 'TERM'): Promise<void> {
  await slurm(['scancel', ...(signal ? ['--full', `--signal=${signal}`] : []), id]).catch(() => undefined);
}

/** Jobs queued or running whose name starts with the prefix (an earlier attempt of the same stage). */
export async function jobsNamed(prefix: string): Promise<string[]> {
  const out = await slurm(['squeue', '-h', '-o', '%i %j']);
  return out
    .split('\n')
    .map((l) => l.trim().split(' '))
    .filter(([id, name]) => id && name?.startsWith(prefix))
    .map(([id]) => id);
}

/** A node list ("n[1-3],gpu07") as names. */
export async function hostnames(list: string): Promise<string[]> {
  return (await slurm(['scontrol', 'show', 'hostnames', list])).split('\n').filter(Boolean);
}

/** The nodes of a partition. */
export async function partitionNodes(partition: string): Promise<string[]> {
  const list = (await slurm(['sinfo', '-h', '-p', partition, '-o', '%N'])).trim();
  return list ? hostnames(list.split('\n').join(',')) : [];
}

/** Which of these nodes Slurm has down, failing or not responding (sinfo's state with "*", down, fail). */
export async function failedNodes(nodes: string[]): Promise<string[]> {
  if (nodes.length === 0) return [];
  const out = await slurm(['sinfo', '-h', '-N', '-n', nodes.join(','), '-o', '%N %t']);
  return [
    ...new Set(
      out
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter(([name, state]) => name && state && /\*|down|fail|drain/.test(state))
        .map(([name]) => name),
    ),
  ];
}

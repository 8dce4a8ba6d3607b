/**
 * A real Slurm cluster on this machine for one test file: munged with its own key and socket, one
 * slurmctld and several slurmd daemons, each started as its own node (`slurmd -N NAME`, its own Port
 * and spool directory), all in a temporary directory. Debian's slurm-wlm 22.05 packages. Everything
 * runs in the foreground as a child of the test, each in its own process group (testkit/processes.ts), and is
 * stopped (and checked gone) by `stop()`.
 *
 * The nodes all are this host (NodeHostname=localhost, NodeAddr=127.0.0.1); each claims
 * `cpusPerNode` CPUs and `npusPerNode` generic resources `npu` (gres.conf with a Count and no File:
 * nothing to bind, which is all an emulator needs), so SlurmdParameters=config_overrides lets a node
 * say more than the machine has. Accounting is off (no slurmdbd): a finished job is known to
 * `scontrol show job` for MinJobAge, which is what linkflow reads first.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { getFreePort } from '../node/free-port.ts';
import { tempDir } from './specs.ts';
import { until } from './wait.ts';
import { spawnGroup } from './processes.ts';
import { descendantsAndSelf, parentOf, pids, processesWithEnv, readProc } from './proc.ts';

const run = promisify(execFile);

export interface SlurmCluster {
  dir: string;
  conf: string;
  partition: string;
  /** A partition whose jobs preempt the default partition's. */
  urgentPartition: string;
  nodes: string[];
  /** The environment the client commands need (SLURM_CONF). */
  env: Record<string, string>;
  /** A client command (sinfo, squeue, sbatch, scontrol…) against this cluster. */
  command(argv: string[]): Promise<string>;
  /**
   * A node dies: its slurmd is SIGKILLed and everything it runs for jobs (its slurmstepd and their
   * tasks) is frozen with SIGSTOP, as a machine that stopped answering. slurmctld marks it down after
   * SlurmdTimeout and ends its jobs with NODE_FAIL. The frozen processes are killed by `stop()`.
   */
  killNode(node: string): void;
  stop(): Promise<void>;
}

export interface SlurmClusterOptions {
  nodes?: number;
  cpusPerNode?: number;
  npusPerNode?: number;
}

/** Whether Debian's Slurm and munge are installed (`.ci/run` installs them). */
export function slurmInstalled(): boolean {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin'];
  return ['slurmctld', 'slurmd', 'munged', 'mungekey', 'sbatch'].every((p) => dirs.some((d) => fs.existsSync(path.join(d, p))));
}

export async function startSlurmCluster(options: SlurmClusterOptions = {}): Promise<SlurmCluster> {
  const dir = tempDir('slurm');
  const names = Array.from({ length: options.nodes ?? 3 }, (_, i) => `n${i + 1}`);
  const conf = path.join(dir, 'slurm.conf');
  const socket = path.join(dir, 'munge', 'munge.sock');
  const children: ChildProcess[] = [];
  const frozen: number[] = [];
  const env = { SLURM_CONF: conf };
  const command = async (argv: string[]) => (await run(argv[0], argv.slice(1), { env: { ...process.env, ...env } })).stdout;
  const daemon = (argv: string[], log: string, extraEnv: Record<string, string> = {}) => {
    const out = fs.openSync(path.join(dir, 'log', log), 'a');
    const child = spawnGroup(argv[0], argv.slice(1), { env: { ...process.env, ...env, ...extraEnv }, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    children.push(child);
    return child;
  };

  const cluster: SlurmCluster = {
    dir,
    conf,
    partition: 'debug',
    urgentPartition: 'urgent',
    nodes: names,
    env,
    command,
    killNode(node) {
      const slurmd = children.find((c) => c.spawnargs.includes(node) && c.spawnargs.includes('-N'));
      // The node's job tasks carry SLURMD_NODENAME; their parents are the node's slurmstepd.
      const tasks = processesWithEnv(`SLURMD_NODENAME=${node}`);
      const steps = [...new Set(tasks.map(parentOf).filter((p): p is number => p !== undefined && isStepd(p)))];
      for (const pid of [...steps, ...descendantsAndSelf(tasks)]) {
        try {
          process.kill(pid, 'SIGSTOP');
          frozen.push(pid);
        } catch {
          // gone already
        }
      }
      slurmd?.kill('SIGKILL');
    },
    async stop() {
      // Jobs first (their slurmstepd are not our children), then the daemons, then munge.
      for (const partition of [cluster.partition, cluster.urgentPartition]) {
        await command(['scancel', '--full', '--signal=KILL', `--partition=${partition}`]).catch(() => '');
        await command(['scancel', `--partition=${partition}`]).catch(() => '');
      }
      for (const pid of frozen) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await until('the cluster to have no job', async () => (await command(['squeue', '-h', '-o', '%i']).catch(() => '')).trim() === '', {
        timeoutMs: 30_000,
      }).catch(() => undefined);
      const munged = children[0];
      for (const child of children.slice(1).reverse()) await stopChild(child);
      await stopChild(munged);
      const left = stepdsUnder(dir);
      for (const pid of left) process.kill(pid, 'SIGKILL');
      if (left.length > 0) throw new Error(`slurmstepd processes were left running: ${left.join(', ')}`);
    },
  };

  try {
    for (const d of ['munge', 'state', 'log', ...names.map((n) => `spool/${n}`)]) fs.mkdirSync(path.join(dir, d), { recursive: true });
    fs.chmodSync(path.join(dir, 'munge'), 0o700);
    const key = path.join(dir, 'munge', 'munge.key');
    await run('mungekey', ['--create', `--keyfile=${key}`, '--force']);
    fs.chmodSync(key, 0o600);
    daemon(
      [
        'munged',
        '--foreground',
        '--force',
        `--socket=${socket}`,
        `--key-file=${key}`,
        `--log-file=${path.join(dir, 'log', 'munged.log')}`,
        `--pid-file=${path.join(dir, 'munge', 'munged.pid')}`,
        `--seed-file=${path.join(dir, 'munge', 'munged.seed')}`,
      ],
      'munged.out',
    );
    await until('munged to create its socket', async () => fs.existsSync(socket), { timeoutMs: 20_000 });

    const ports = { ctld: await getFreePort(), nodes: await Promise.all(names.map(() => getFreePort())) };
    fs.writeFileSync(conf, slurmConf({ dir, socket, names, ports, cpus: options.cpusPerNode ?? 8, npus: options.npusPerNode ?? 8 }));
    fs.writeFileSync(path.join(dir, 'gres.conf'), `NodeName=${names.join(',')} Name=npu Count=${options.npusPerNode ?? 8}\n`);
    // -i: ignore state files (there are none in a fresh directory; the daemon still looks).
    daemon(['slurmctld', '-D', '-i'], 'slurmctld.out');
    for (const n of names) daemon(['slurmd', '-D', '-N', n], `slurmd-${n}.out`);
    await until(
      `${names.length} Slurm nodes to be idle`,
      async () => {
        const out = await command(['sinfo', '-h', '-N', '-o', '%N %t']).catch(() => '');
        // One line per node and partition.
        return new Set(out.split('\n').filter((l) => /\sidle$/.test(l))).size === names.length;
      },
      { timeoutMs: 60_000, everyMs: 500 },
    );
    return cluster;
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    const logs = ['slurmctld.out', ...names.map((n) => `slurmd-${n}.out`)].map((f) => {
      const p = path.join(dir, 'log', f);
      return fs.existsSync(p) ? `--- ${f}\n${fs.readFileSync(p, 'utf8').slice(-2000)}` : '';
    });
    throw new Error(`the Slurm cluster did not come up: ${(err as Error).message}\n${logs.join('\n')}`);
  }
}

function slurmConf(o: { dir: string; socket: string; names: string[]; ports: { ctld: number; nodes: number[] }; cpus: number; npus: number }): string {
  const p = (f: string) => path.join(o.dir, f);
  return [
    'ClusterName=linkflowtest',
    'SlurmctldHost=localhost(127.0.0.1)',
    `SlurmctldPort=${o.ports.ctld}`,
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${o.socket}`,
    'SlurmUser=root',
    'SlurmdUser=root',
    `StateSaveLocation=${p('state')}`,
    `SlurmdSpoolDir=${p('spool')}/%n`,
    `SlurmctldPidFile=${p('slurmctld.pid')}`,
    `SlurmdPidFile=${p('spool')}/%n/slurmd.pid`,
    `SlurmctldLogFile=${p('log/slurmctld.log')}`,
    `SlurmdLogFile=${p('log')}/slurmd-%n.log`,
    // No cgroups in a container: processes are tracked by parentage, tasks are not bound.
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_CPU',
    'SchedulerType=sched/backfill',
    'SlurmdParameters=config_overrides',
    'ReturnToService=2',
    // A node that stops answering is down within seconds (the node-failure test), not 5 minutes.
    'SlurmdTimeout=5',
    'MinJobAge=600',
    'KillWait=5',
    'InactiveLimit=0',
    'MpiDefault=none',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'JobCompType=jobcomp/none',
    'GresTypes=npu',
    ...o.names.map(
      (n, i) => `NodeName=${n} NodeHostname=localhost NodeAddr=127.0.0.1 Port=${o.ports.nodes[i]} CPUs=${o.cpus} Gres=npu:${o.npus} State=UNKNOWN`,
    ),
    // A job of the urgent partition preempts (cancels) jobs of the default one: the preemption test.
    'PreemptType=preempt/partition_prio',
    'PreemptMode=CANCEL',
    `PartitionName=debug Nodes=${o.names.join(',')} Default=YES MaxTime=INFINITE State=UP PriorityTier=1`,
    `PartitionName=urgent Nodes=${o.names.join(',')} MaxTime=INFINITE State=UP PriorityTier=2`,
    '',
  ].join('\n');
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function isStepd(pid: number): boolean {
  return (readProc(pid, 'cmdline') ?? '').startsWith('slurmstepd');
}

/** slurmstepd processes of this cluster: their working directory or open files are under its directory. */
function stepdsUnder(dir: string): number[] {
  return pids().filter((pid) => {
    if (!isStepd(pid)) return false;
    try {
      return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(dir);
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

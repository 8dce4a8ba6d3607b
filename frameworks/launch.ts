/**
 * How a stage's processes start, as data (NeMo-Run's split: executors say where, launchers say how).
 * The plan carries a Launch; argv is rendered from it only at the edge (the attempt just before it
 * spawns, `linkflow render`). Every decision about a launch (how many nodes, which rank, which port,
 * whom a stop signals) reads these fields, never a rendered argv. Plain data: it crosses Temporal as JSON.
 */

/** torch's distributed launcher: torchrun, `python -m torch.distributed.run` or `.launch`, or a wrapper that takes their options. */
export interface TorchrunLaunch {
  kind: 'torchrun';
  /** What starts it, with the user's own options, as the spec gives it: ['torchrun'], ['python', '-m', 'torch.distributed.launch'], … */
  program: string[];
  /**
   * The program is torch's elastic agent (torchrun, `python -m torch.distributed.run` or `.launch`):
   * a stop signals its worker processes, not the agent. A wrapper of another name is the trainer itself.
   */
  elasticAgent: boolean;
  nprocPerNode: number;
  nnodes: number;
  /** A number when it runs (each rank its own); an imported script's variable (${NODE_RANK}) only for `render`. */
  nodeRank: number | string;
  /** The rendezvous: where node rank 0 listens. */
  masterAddr: string;
  /** A number when it runs; an imported script's variable (${MASTER_PORT}) only for `render`. */
  masterPort: number | string;
}

/** One process, no distributed launcher (preprocessing, conversion): the Python interpreter runs the entrypoint. */
export interface PythonLaunch {
  kind: 'python';
  program: string[];
}

export type Launch = TorchrunLaunch | PythonLaunch;

/** Whether a program is torch's elastic agent: torchrun (any path), or python -m torch.distributed.run / .launch. */
export function isElasticAgent(program: string[]): boolean {
  const [first] = program;
  if (first !== undefined && /(^|\/)torchrun$/.test(first)) return true;
  const module = program.indexOf('-m');
  return module >= 0 && ['torch.distributed.run', 'torch.distributed.launch'].includes(program[module + 1] ?? '');
}

export function torchrunLaunch(program: string[], fields: Omit<TorchrunLaunch, 'kind' | 'program' | 'elasticAgent'>): TorchrunLaunch {
  return { kind: 'torchrun', program: [...program], elasticAgent: isElasticAgent(program), ...fields };
}

export function pythonLaunch(python: string): PythonLaunch {
  return { kind: 'python', program: [python] };
}

/** The launcher's argv, up to (not including) the entrypoint: the program, then torchrun's options as ModelLink's scripts spell them. */
export function renderLaunch(launch: Launch): string[] {
  if (launch.kind === 'python') return [...launch.program];
  return [
    ...launch.program,
    '--nproc_per_node',
    String(launch.nprocPerNode),
    '--nnodes',
    String(launch.nnodes),
    '--node_rank',
    String(launch.nodeRank),
    '--master_addr',
    launch.masterAddr,
    '--master_port',
    String(launch.masterPort),
  ];
}

/** How many nodes a launch spans. */
export function nodesOf(launch: Launch): number {
  return launch.kind === 'torchrun' ? launch.nnodes : 1;
}

/** Whether a stage runs as a gang: its launch spans more than one node. */
export function launchesAcrossNodes(launch: Launch): boolean {
  return nodesOf(launch) > 1;
}

/**
 * Whether a stop signals the launcher's worker processes (torch's elastic agent passes nothing on in
 * time: its own shutdown SIGKILLs them after 30 s) rather than the launcher's whole process group.
 */
export function launchesElasticAgent(launch: Launch): boolean {
  return launch.kind === 'torchrun' && launch.elasticAgent;
}

/** One node rank of a gang: its rank, the gang's size and rank 0's address and port. */
export function launchForRank(launch: Launch, rank: { nodeRank: number; nodes: number; masterAddr: string; masterPort: number }): Launch {
  if (launch.kind !== 'torchrun') return launch;
  return { ...launch, nodeRank: rank.nodeRank, nnodes: rank.nodes, masterAddr: rank.masterAddr, masterPort: rank.masterPort };
}

/**
 * The launch with torchrun's master port at `port`. A single-node torchrun binds its store there too
 * (torch/distributed/elastic/rendezvous/static_tcp_rendezvous.py, TCPStore with is_master on
 * MASTER_PORT), so two jobs on one node with the scripts' fixed port 6000 collide: each attempt takes
 * a port that is free on its node.
 */
export function withMasterPort(launch: Launch, port: number): Launch {
  return launch.kind === 'torchrun' ? { ...launch, masterPort: port } : launch;
}

/** A stage plan as it may arrive: plans recorded before the typed launch carry only the rendered `launcher` argv. */
export interface LaunchCarrier {
  launch?: Launch;
  launcher?: string[];
}

/**
 * The stage's launch. Plans made before the typed launch existed (recorded histories, pipelines
 * started by an older linkflow) carry the rendered argv instead; it is read back once, here.
 */
export function launchOf(stage: LaunchCarrier): Launch {
  return stage.launch ?? launchFromArgv(stage.launcher ?? []);
}

const TORCHRUN_OPTIONS = ['--nproc_per_node', '--nnodes', '--node_rank', '--master_addr', '--master_port'];

/** The inverse of renderLaunch, for argv that renderLaunch wrote (older plans): anything else is a plain program. */
function launchFromArgv(argv: string[]): Launch {
  const tail = argv.slice(-2 * TORCHRUN_OPTIONS.length);
  const rendered = argv.length > tail.length && TORCHRUN_OPTIONS.every((flag, i) => tail[2 * i] === flag);
  if (!rendered) return { kind: 'python', program: [...argv] };
  const value = (i: number) => tail[2 * i + 1];
  const numeric = (v: string) => (/^\d+$/.test(v) ? Number(v) : v);
  // torchrun's --nnodes may be MIN:MAX (elastic): the gang has MAX nodes.
  const nnodes = Number(value(1).split(':').at(-1));
  return torchrunLaunch(argv.slice(0, argv.length - tail.length), {
    nprocPerNode: Number(value(0)),
    nnodes: Number.isInteger(nnodes) && nnodes > 0 ? nnodes : 1,
    nodeRank: numeric(value(2)),
    masterAddr: value(3),
    masterPort: numeric(value(4)),
  });
}

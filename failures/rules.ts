/**
 * The built-in rules: families of messages that real logs print (failures/corpus holds the logs, each
 * with its thread). A rule names a family, never one log: the corpus test lists rules that match a
 * single file.
 *
 * Tiers, tried in this order; the first rule of the first tier with a hit decides:
 * - `cause`: evidence of the root cause whatever the rank count (bad arguments, missing input, NaN,
 *   device OOM, the host's OOM killer, a segfault).
 * - `signal`: a launcher says a worker died of a signal (SIGKILL, SIGSEGV, SIGBUS): it printed nothing itself.
 * - `error`: a rank's own Python error ending its traceback, or a CANN code of the job's own fault.
 * - `network`: a link from this node could not be built (its port taken, a bind or listen failing, its
 *   HCCP/HCCL setup failing, its network unreachable): the machine's evidence.
 * - `rendezvous`: it waited for a peer that never came (a store or rendezvous timeout, `1/2 clients
 *   joined`, a refused connection to the master): also `communication`, but the fault is the missing
 *   peer's, not this node's (failures/blame.ts does not count it).
 * - `echo`: what ranks print when a peer failed or is stuck: collective watchdog timeouts (`hang`),
 *   then HCCL/NCCL errors (`communication`). However many, they never outvote a tier above.
 * - `fallback`: a bare error line or traceback header.
 */
import { CANN_CODES, cannCodePattern, type CannCode } from './cann-codes.ts';
import type { FailureClass } from './classes.ts';

export type RuleRole = 'cause' | 'signal' | 'error' | 'network' | 'rendezvous' | 'echo' | 'fallback';

export const ROLE_ORDER: readonly RuleRole[] = ['cause', 'signal', 'error', 'network', 'rendezvous', 'echo', 'fallback'];

export interface FailureRule {
  /** A short name for the family (shown by the corpus test). */
  name?: string;
  class: FailureClass;
  pattern: RegExp;
  /** Default `cause`. */
  role?: RuleRole;
  /** A further test of a matching line among its rank's lines. */
  accept?: (lines: readonly string[], index: number) => boolean;
  /** The CANN code the rule reads. */
  cann?: CannCode;
}

/** What every rank prints when a peer is gone, and what a real network fault prints too. */
export const COMMUNICATION_WORDS =
  'HCCL|NCCL|HCCP|EI0002|EI0006|ERR02200|ERR02005|connection reset|Connection reset by peer|Broken pipe|Connection refused|communication timeout|DistNetworkError|DistStoreError|DistBackendError|clients joined|ProcessGroup';

/** A link from this node that could not be built: its port taken, its bind or listen, its HCCP/HCCL setup, no route out. */
const LOCAL_LINK =
  /Network is unreachable|Address already in use|failed to bind|failed to listen|hccl initialize failed|hcclComm init error|HcclGetRootInfo|ncclSystemError|unhandled system error|Failed to initialize the HCCP/i;

/** It waited for a peer that did not come: refused or timed-out connections, a store or rendezvous that timed out. */
const PEER_WAIT =
  /Connection refused|No route to host|Connection timed out|DistNetworkError|DistStoreError|clients joined|socket.{0,60}(?:timed out|timeout)|ncclRemoteError|Timed out initializing process group|connect returned/i;

const NETWORK = new RegExp(`${LOCAL_LINK.source}|${PEER_WAIT.source}`, 'i');

/** Errors of the kinds a rank raises when its peer is gone (a RuntimeError naming HCCL, a DistBackendError …). */
function reportsLostPeer(line: string): boolean {
  return (
    /^(?:[\w.]+\.)?(?:RuntimeError|Dist\w*Error|ConnectionError|ConnectionResetError|BrokenPipeError|OSError|TimeoutError|Exception)\b/.test(line) &&
    new RegExp(COMMUNICATION_WORDS, 'i').test(line)
  );
}

/** A Python error line: `KeyError: …`, `torch.distributed.DistBackendError: …`, `AssertionError` alone. */
export const ERROR_LINE = /^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Interrupt)\b(?::|$)/;

/** Whether the line ends a Python traceback: above it only frames (indented) up to the header. */
export function endsTraceback(lines: readonly string[], index: number): boolean {
  for (let i = index - 1; i >= Math.max(0, index - 400); i--) {
    if (/^\s*Traceback \(most recent call last\)/.test(lines[i])) return true;
    if (lines[i].trim() === '' || !/^\s/.test(lines[i])) return false;
  }
  return false;
}

/** The frames of the traceback a line ends (the `File "…", line N, in f` lines). */
function framesAbove(lines: readonly string[], index: number): string[] {
  const frames: string[] = [];
  for (let i = index - 1; i >= Math.max(0, index - 400); i--) {
    if (/^\s*Traceback \(most recent call last\)/.test(lines[i])) break;
    if (/^\s*File "/.test(lines[i])) frames.push(lines[i]);
    else if (!/^\s/.test(lines[i])) break;
  }
  return frames;
}

/** Argument validation and model-build checks: a frame that validates arguments, or a message of that family. */
const VALIDATION_FRAME =
  /arguments\.py"|in (?:validate_args|_validate\w*|validate\w*|check_args|_check_\w*args\w*|parse_args|_parse_args|__post_init__|ensure_divisibility|divide)\b/;
const ARGUMENT_MESSAGE =
  /divisible by|must be (?:used|set|specified|enabled|disabled|provided|given|greater|less|equal|a multiple|one of|in \[)|should be (?:set|specified|greater|less|equal|divisible)|(?:is|are) not supported (?:with|when|together)|cannot be used (?:with|together)|(?:is|are) mutually exclusive|requires? (?:--|that --)|is required (?:when|for|with)|remaining_argv|value from checkpoint \(\d+\) is not equal to the input argument|should be a multiple of|Check batch related parameters|train_batch_size is not equal to|arguments are not used by the HfArgumentParser|invalid (?:value|choice) for|is not a valid (?:choice|option|value) for/i;

function argumentCheck(lines: readonly string[], index: number): boolean {
  const line = lines[index];
  if (!/^(?:[\w.]+\.)?(?:AssertionError|ValueError|ArgumentError|ArgumentTypeError|NotImplementedError|TypeError)\b/.test(line)) return false;
  if (ARGUMENT_MESSAGE.test(line)) return true;
  return /^(?:AssertionError|ValueError)\b/.test(line) && framesAbove(lines, index).some((f) => VALIDATION_FRAME.test(f));
}

/** `assert os.path.exists(path), path`: an AssertionError raised by a check that a path exists. */
function assertsExistence(lines: readonly string[], index: number): boolean {
  for (let i = index - 1; i >= Math.max(0, index - 4); i--)
    if (/os\.path\.(?:exists|isfile|isdir)|\.exists\(\)|\.is_file\(\)|\.is_dir\(\)/.test(lines[i])) return true;
  // Without its frames (a pasted last line): the message is a file name.
  return /^AssertionError: \S+\.(?:model|json|jsonl|bin|idx|pt|safetensors|yaml|txt|parquet|tokenizer)\s*$/.test(lines[index]);
}

/** Device memory in the words of each runtime; not the host's OOM killer (`Out of memory: Killed process`). */
const DEVICE_OOM =
  /NPU out of memory|CUDA out of memory|HIP out of memory|\bEL0004\b|Failed to allocate memory|rtMalloc\b.*(?:failed|out of memory)|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation|DefaultCPUAllocator: (?:can't allocate|not enough) memory|out of memory(?!: Killed process)/i;

/** A torch_npu / ACL wrapper of a device error: the CANN code near it says what happened. */
export const ACL_WRAPPER =
  /NPU function error|NPU error, error code is|error code is \d{6}|ACL stream synchronize failed|The Inner error is reported as above|PTA call acl api failed/;

const CANN_RULES: readonly FailureRule[] = cannRules();

function cannRules(): FailureRule[] {
  return CANN_CODES.filter((c) => c.class !== 'out-of-memory').map((c) => {
    const pattern = cannCodePattern(c.code);
    // Inner-error codes (E*9999) mean many things: the timeout families only with "timeout" said.
    const generic = /9999$/.test(c.code) && c.class === 'hang';
    const rule: FailureRule = {
      name: `CANN ${c.code}`,
      class: c.class,
      pattern,
      role: c.role === 'cause' ? 'error' : c.role,
      cann: c,
      // `EZ9999: Inner Error!` only announces the line that says what; inner-error codes (E*9999) of the
      // timeout families count only with "timeout" said.
      accept: (lines, i) => !/Inner Error!?\s*$/.test(lines[i]) && (!generic || lines.slice(i, i + 3).some((l) => /time ?out|stuck notify/i.test(l))),
    };
    return rule;
  });
}

export const BUILT_IN_RULES: readonly FailureRule[] = [
  // --- causes ---
  { name: 'argparse', class: 'bad-arguments', pattern: /error: (?:unrecognized arguments|argument \S+|the following arguments are required|invalid choice)/ },
  { name: 'argument check', class: 'bad-arguments', pattern: /(?:Error|Exception)\b/, accept: argumentCheck },
  {
    name: 'missing file',
    class: 'missing-input',
    pattern:
      /FileNotFoundError|No such file or directory|is not a directory or does not exist|'--exit-on-missing-checkpoint' set|Error no file named .* found in directory|\b(?:file|path|dataset|directory|folder|data|config)\b[^\n]{0,200}?\b(?:not found|does not exist|doesn't exist|not exist)|Expected a string path to an existing|does not appear to have a file named|Can't find (?:a |the )?(?:file|path|dataset|directory)|Repo id must be in the form .*: '(?:\/|\.\/|~)|Incorrect path_or_model_id/i,
    accept: (lines, i) => /error|exception|not found|does not exist|not exist|cannot|can't|fail|incorrect|Errno/i.test(lines[i]),
  },
  { name: 'existence check', class: 'missing-input', pattern: /^AssertionError\b/, accept: assertsExistence },
  {
    name: 'NaN loss',
    class: 'nan-loss',
    pattern:
      /found NaN in local (?:forward loss|grad norm)|Loss is NaN|nan in loss|loss(?:'|")?\s*[:=|]\s*(?:nan|inf(?:inity)?)\b|grad[ _]norm(?:'|")?\s*[:=|]\s*nan\b|Loss is (?:NaN|Infinity|inf)\b|Found NaN\b|Bad grad_?norm detected|returned nan values|Unexpected result nan|loss scale already at minimum|Attempted loss scale: 0,|number of nan iterations:\s*[1-9]|NaN or Inf found|Minimum loss scale reached|loss scale (?:has )?reached (?:the )?minimum|(?:detected|found) (?:a )?(?:NaN|Inf)\b|\b(?:nan or inf|inf or nan)\b|non-finite loss|loss is not finite|\bNaN loss\b|loss(?:'|")?\s*[:=]\s*tensor\((?:nan|inf)|grad[ _]norm(?:'|")?\s*[:=|]\s*inf\b|encountered (?:a )?(?:NaN|Inf)\b|Attempted loss scale: 1, reducing to 1\b/i,
  },
  {
    name: "host's OOM killer",
    class: 'killed',
    pattern: /Out of memory: Killed process|oom-kill event|killed by the cgroup out-of-memory|oom_kill_process|Memory cgroup out of memory/i,
  },
  { name: 'device out of memory', class: 'out-of-memory', pattern: DEVICE_OOM },
  { name: 'segmentation fault', class: 'segfault', pattern: /Segmentation fault|SIGSEGV|Signal 11\b|signal 11 \(SIGSEGV\)|Bus error|SIGBUS|segfault/i },
  {
    name: 'killed',
    class: 'killed',
    pattern:
      /is killed by signal: Killed|main process disappeared|(?:^|[\]\s:])Killed\s*$|^\S*: line \d+:\s+\d+ Killed\s|Signal 9 \(SIGKILL\)|received signal SIGKILL|died with <Signals\.SIGKILL/,
  },
  // --- a rank's own error ---
  ...CANN_RULES.filter((r) => r.role === 'error'),
  {
    name: 'own traceback',
    class: 'exception',
    pattern: /^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?<!ChildFailed)(?:Error|Exception)\b/,
    role: 'error',
    accept: (lines, i) => endsTraceback(lines, i) && !reportsLostPeer(lines[i]) && !NETWORK.test(lines[i]),
  },
  // --- a link that could not be built ---
  ...CANN_RULES.filter((r) => r.role === 'network'),
  {
    // A whole node went away: torch elastic's keep-alive to the rendezvous (dynamic_rendezvous.py), Ray's
    // heartbeat detector, Slurm's node failure (srun/salloc, NODE_FAIL).
    name: 'node lost',
    class: 'node-lost',
    role: 'network',
    pattern:
      /failed to send a keep-alive heartbeat to the rendezvous|missed too many heartbeats|has been marked dead|(?:srun|salloc|sbatch|slurmstepd): error: Node failure on|\bNODE_FAIL\b|due to (?:a )?node failure/i,
  },
  { name: 'network', class: 'communication', role: 'network', pattern: LOCAL_LINK },
  // The same family seen from the node that waited: the node that never came is the one at fault (a
  // DistNetworkError that failed to bind is caught by the rule above, tried first).
  { name: 'peer never came', class: 'communication', role: 'rendezvous', pattern: PEER_WAIT },
  // --- echoes: a stuck peer first, then a lost one ---
  ...CANN_RULES.filter((r) => r.role === 'echo'),
  {
    name: 'collective watchdog',
    class: 'hang',
    role: 'echo',
    pattern:
      /Watchdog caught collective operation timeout|ran for \d+ milliseconds before timing out|Timeout at NCCL work|timed out in blocking wait|collective operation timeout|wait execution of the Notify register times out|stuck notify|fftsplus task timeout|event wait timeout|Stream synchronize timeout|stream sync timeout|aicore (?:execution )?times? ?out|reason=\[task timeout\]|HCCL.{0,40}execute timeout|monitoredBarrier.*timed out/i,
  },
  {
    name: 'peer lost',
    class: 'communication',
    role: 'echo',
    pattern: new RegExp(COMMUNICATION_WORDS, 'i'),
    // An import or attribute error naming an HCCL symbol is the code's own error.
    accept: (lines, i) => !/^(?:[\w.]+\.)?(?:ImportError|ModuleNotFoundError|AttributeError|NameError|SyntaxError)\b/.test(lines[i]),
  },
  // --- anything else that says error ---
  {
    name: 'error line',
    class: 'exception',
    pattern: /(?<!ChildFailed)(?:Error|Exception): |^(?:[\w.]+\.)?[A-Z]\w*Error$|terminate called after throwing/,
    role: 'fallback',
  },
  // Python's header, or rich's boxed traceback (`╭─ Traceback (most recent call last) ─╮`, `│ ❱ 235 │`).
  {
    name: 'traceback',
    class: 'exception',
    pattern: /^\s*Traceback \(most recent call last\)|─ Traceback \(most recent call last\) ─|^│ ❱ \d+ │/,
    role: 'fallback',
  },
  // gdb's backtrace of a core dump (`#0  0x… in f () from lib.so`): a native crash.
  { name: 'core dump backtrace', class: 'segfault', pattern: /^#\d+\s+0x[0-9a-f]+ in \S+ \(/, role: 'fallback' },
];

/** The classes echo rules give: what ranks print when a peer is gone, so a gang blames another rank first. */
export const ECHO_CLASSES: ReadonlySet<FailureClass> = new Set(BUILT_IN_RULES.filter((r) => r.role === 'echo').map((r) => r.class));

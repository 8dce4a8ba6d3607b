/**
 * Whose line is it: a job of many ranks writes one interleaved log, each rank's lines tagged by
 * whoever gathered them — `[rank5]:` (torch ≥ 2.2 tags a rank's uncaught traceback), ` 5: ` (srun -l,
 * DeepSpeed's pdsh runner `worker-1: `), `[default3]:` (torchrun --tee / --log-dir's role tag),
 * `[1,3]<stderr>:` (mpirun --tag-output). Two ranks writing at once tear lines: one physical line
 * holds the end of one rank's line and the start of another's tag. Rules read each rank's lines in
 * its own order, without the tags.
 */

export interface RankLine {
  /** Index of the physical line in the lines given. */
  line: number;
  /** The rank (or node) the tags name, innermost first: `[rank5]` inside ` 2: ` is rank 5. */
  rank?: string;
  /** The text without its tags. */
  text: string;
}

/** A tag at the start of a line, with the rank it names (one capture group). */
const LEADING_TAGS: readonly RegExp[] = [
  /^\[rank(\d+)\]:\s?/,
  /^\[default(\d+)\]:\s?/,
  /^\[\d+,(\d+)\]<std(?:out|err)>:\s?/,
  /^\s*(\d{1,5}): /,
  // pdsh/DeepSpeed's multi-node runner: `worker-1: ` (a host name ending in -N).
  /^([A-Za-z][\w.]*-\d+): /,
];

/** Where a torn line starts another rank's tagged line (only the unambiguous bracket tags). */
const EMBEDDED_TAG = /(?<=\S)(?=\[(?:rank|default)\d+\]:)/g;

function stripTags(text: string): { rank?: string; text: string } {
  let rank: string | undefined;
  let rest = text;
  for (let guard = 0; guard < 4; guard++) {
    const tag = LEADING_TAGS.map((re) => re.exec(rest)).find((m) => m !== null);
    if (!tag) break;
    // The innermost tag names the rank; an outer ` 2: ` may be the node.
    rank = tag[1];
    rest = rest.slice(tag[0].length);
  }
  return rank === undefined ? { text: rest } : { rank, text: rest };
}

/** Every physical line split at torn tags, each part with its rank and without its tags. */
export function splitRanks(lines: readonly string[]): RankLine[] {
  const out: RankLine[] = [];
  lines.forEach((physical, line) => {
    const parts = physical.includes(']:') ? physical.split(EMBEDDED_TAG) : [physical];
    for (const part of parts) out.push({ line, ...stripTags(part) });
  });
  return out;
}

/** The lines of each rank, in order (untagged lines under `undefined`). */
export function byRank(lines: readonly RankLine[]): Map<string | undefined, RankLine[]> {
  const ranks = new Map<string | undefined, RankLine[]>();
  for (const l of lines) {
    const own = ranks.get(l.rank);
    if (own) own.push(l);
    else ranks.set(l.rank, [l]);
  }
  return ranks;
}

/** "rank 5" for a tagged line, "the log" otherwise. */
export function whose(rank: string | undefined): string {
  return rank === undefined ? 'an untagged line' : `rank ${rank}`;
}

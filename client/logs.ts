/**
 * `linkflow logs`: a stage's attempt log, read where it lives — here when the file is visible (the same
 * machine, shared storage), else through the worker of the node that wrote it — in bounded chunks, so
 * memory stays flat on a multi-GB log. With `follow`, the running attempt is read as it grows, and the
 * next attempt of the stage after it.
 */
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ActivityFailure } from '@temporalio/common';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { nodeQueue } from '../plan/gang.ts';
import { LOG_CHUNK_MAX_BYTES, readLogChunkWorkflowType, type ReadLogChunkWorkflow } from '../contracts/workflows.ts';
import { snapshot } from './pipeline.ts';
import { logTarget, type LogTarget, type LogWanted } from './log-target.ts';

/** Read at most this much at once from a local file. */
const LOCAL_CHUNK = 1024 * 1024;
const POLL_MS = 500;

/** Bytes of a log from an offset; an empty result means the end for now. */
export interface LogSource {
  describe: string;
  read(offset: number): Promise<Buffer>;
  close(): Promise<void>;
}

export function localSource(file: string): LogSource {
  const fd = fs.openSync(file, 'r');
  // One buffer for the whole read: the chunk is written out before the next read reuses it.
  const buffer = Buffer.alloc(LOCAL_CHUNK);
  return {
    describe: file,
    read: async (offset) => {
      const bytes = await new Promise<number>((resolve, reject) => fs.read(fd, buffer, 0, buffer.length, offset, (err, n) => (err ? reject(err) : resolve(n))));
      return buffer.subarray(0, bytes);
    },
    close: async () => fs.closeSync(fd),
  };
}

/** Chunks requested ahead through a node's worker: each is a workflow round trip, so a few run at once (memory stays bounded by these). */
const READ_AHEAD = 4;

/** Through the node's worker: one short workflow per chunk runs readLogChunk on the node's queue. */
export function nodeSource(client: Client, pool: string, node: string, file: string): LogSource {
  const fetchChunk = async (offset: number) => {
    try {
      const chunk = await client.workflow.execute<ReadLogChunkWorkflow>(readLogChunkWorkflowType, {
        taskQueue: pool,
        workflowId: `linkflow-log-${randomUUID()}`,
        args: [{ nodeQueue: nodeQueue(pool, node), file, offset }],
      });
      return { data: Buffer.from(chunk.data, 'base64'), size: chunk.size };
    } catch (e) {
      if (!(e instanceof WorkflowFailedError)) throw e;
      // The activity's own failure says why: no worker on the node's queue, an unreadable file.
      const why = e.cause instanceof ActivityFailure && e.cause.cause ? e.cause.cause.message : (e.cause?.message ?? e.message);
      throw new LogsError(
        `node ${node} did not serve ${file}: ${why}${/schedule_?to_?start/i.test(why) ? ` (no worker polls its queue ${nodeQueue(pool, node)}: is \`linkflow worker --node ${node}\` running?)` : ''}`,
      );
    }
  };
  const inFlight = new Map<number, Promise<{ data: Buffer; size: number }>>();
  let knownSize = 0;
  return {
    describe: `${file} on node ${node} (through its worker)`,
    read: async (offset) => {
      let request = inFlight.get(offset);
      if (request) inFlight.delete(offset);
      else {
        inFlight.clear(); // read-ahead for other offsets is of no use now
        request = fetchChunk(offset);
      }
      const { data, size } = await request;
      knownSize = Math.max(knownSize, size);
      // The next chunks, as far as the file is known to reach, are requested while this one is written out.
      if (data.length === LOG_CHUNK_MAX_BYTES)
        for (let next = offset + data.length; next < offset + READ_AHEAD * LOG_CHUNK_MAX_BYTES && next < knownSize; next += LOG_CHUNK_MAX_BYTES) {
          if (inFlight.has(next)) continue;
          const ahead = fetchChunk(next);
          ahead.catch(() => undefined); // awaited when read; a reader that stops early must not leave an unhandled rejection
          inFlight.set(next, ahead);
        }
      return data;
    },
    close: async () => inFlight.clear(),
  };
}

export interface LogsOptions extends LogWanted {
  follow?: boolean;
  /** Read through the node's worker even when the file is visible here. */
  viaNode?: boolean;
}

export interface LogsIo {
  /** Writes bytes out, resolving when the stream can take more (backpressure keeps memory flat). */
  write(data: Buffer): Promise<void>;
  /** A note between attempts, on standard error. */
  note(message: string): void;
}

export class LogsError extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sourceFor(client: Client, pool: string, target: Extract<LogTarget, { kind: 'log' }>, viaNode: boolean | undefined): LogSource {
  if (!viaNode && fs.existsSync(target.file)) return localSource(target.file);
  if (!target.node) throw new LogsError(`${target.file} is not readable here and its attempt does not say which node wrote it`);
  return nodeSource(client, pool, target.node, target.file);
}

/** Copies from the offset to the current end; returns the new offset. */
async function pump(source: LogSource, offset: number, io: LogsIo): Promise<number> {
  for (;;) {
    const data = await source.read(offset);
    if (data.length === 0) return offset;
    await io.write(data);
    offset += data.length;
  }
}

export async function streamLogs(client: Client, handle: WorkflowHandle, options: LogsOptions, io: LogsIo): Promise<void> {
  const pool = (await handle.describe()).taskQueue;
  const wanted: LogWanted = { stage: options.stage, attempt: options.attempt };
  let followed: string | undefined;
  for (;;) {
    const snap = await snapshot(handle);
    const ended = snap.workflowStatus !== 'RUNNING';
    const target = logTarget(snap.state, snap.live, wanted, ended);
    // Following, the stage ending without another attempt is the end of its log.
    if (target.kind === 'none' && followed) return;
    if (target.kind === 'none') throw new LogsError(target.why);
    if (target.kind === 'pending') {
      if (!options.follow) throw new LogsError(`${target.why}; -f waits for it`);
      await sleep(POLL_MS);
      continue;
    }
    if (followed) io.note(`--- linkflow: ${followed} ended; attempt ${target.attempt} of stage ${target.stage} follows ---`);
    // From here on this stage: -f goes on with its next attempt, not with another stage.
    wanted.stage = target.stage;
    const source = sourceFor(client, pool, target, options.viaNode);
    try {
      let offset = await pump(source, 0, io);
      if (!options.follow) return;
      offset = await followWhileRunning(handle, target, source, offset, io);
      await pump(source, offset, io);
    } finally {
      await source.close();
    }
    followed = `attempt ${target.attempt} of stage ${target.stage}`;
    wanted.attempt = target.attempt + 1;
  }
}

/** Reads the attempt's log as it grows until its heartbeats say it is no longer the running attempt. */
async function followWhileRunning(handle: WorkflowHandle, target: { stage: string; attempt: number }, source: LogSource, offset: number, io: LogsIo) {
  for (;;) {
    const snap = await snapshot(handle);
    const running = snap.live?.stage === target.stage && snap.live.attempt === target.attempt;
    offset = await pump(source, offset, io);
    if (!running) return offset;
    await sleep(POLL_MS);
  }
}

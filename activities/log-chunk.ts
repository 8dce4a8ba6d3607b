/**
 * A chunk of an attempt log on this node, by byte offset: how `linkflow logs` reads a log that lives on
 * a node's local disk (the activity runs on the node's own queue). Bounded chunks, so neither the
 * worker nor the payload ever holds a whole multi-GB log. Only attempt logs can be read this way:
 * the worker must not become a way to read any file of the node.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { LOG_CHUNK_MAX_BYTES } from '../contracts/workflows.ts';

/** The attempt logs linkflow writes: `<stage dir>/logs/attempt-N[-rank-K]-<time>.log` (run-stage.ts). */
const ATTEMPT_LOG = /\/logs\/attempt-\d+(-rank-\d+)?-[0-9TZ-]+\.log$/;

export interface LogChunk {
  /** The bytes from `offset`, base64 (a log may hold any bytes; a chunk may end inside a character). */
  data: string;
  /** The file's size when read: a reader is at the end when offset + bytes read reaches it. */
  size: number;
}

export async function readLogChunk(input: { file: string; offset: number; maxBytes?: number }): Promise<LogChunk> {
  const { file, offset } = input;
  if (!path.isAbsolute(file) || path.normalize(file) !== file || !ATTEMPT_LOG.test(file))
    throw ApplicationFailure.nonRetryable(`${file} is not an attempt log; only attempt logs can be read through a worker`, 'NotAnAttemptLog');
  const max = Math.min(input.maxBytes ?? LOG_CHUNK_MAX_BYTES, LOG_CHUNK_MAX_BYTES);
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (e) {
    throw ApplicationFailure.nonRetryable(`cannot read ${file} on this node: ${(e as Error).message}`, 'LogUnreadable');
  }
  try {
    const { size } = await handle.stat();
    const buffer = Buffer.alloc(Math.max(0, Math.min(max, size - offset)));
    const { bytesRead } = buffer.length > 0 ? await handle.read(buffer, 0, buffer.length, offset) : { bytesRead: 0 };
    return { data: buffer.subarray(0, bytesRead).toString('base64'), size };
  } finally {
    await handle.close();
  }
}

/**
 * A stage's secrets, resolved here on the worker that launches it: from the worker's own environment,
 * or from a file on it. The values live only in this process and the trainer's environment; what
 * leaves the worker (heartbeats, failures, the log file) passes through the masker first.
 */
import fs from 'node:fs';
import type { SecretRef, StagePlan } from '../../plan/plan.ts';
import { Masker, MIN_MASKED_LENGTH } from '../../node/mask.ts';

export interface ResolvedSecrets {
  env: Record<string, string>;
  masker: Masker;
  /** Secrets too short to mask, named in the attempt log. */
  unmasked: string[];
}

/** Thrown when a secret is not on this worker; the message names the spec field and where it was looked for, never a value. */
export class MissingSecretError extends Error {}

export function resolveSecrets(stage: StagePlan, workerEnv: NodeJS.ProcessEnv = process.env): ResolvedSecrets {
  const env: Record<string, string> = {};
  for (const ref of stage.secretEnv ?? []) env[ref.name] = resolveOne(ref, workerEnv);
  const values = Object.values(env);
  return {
    env,
    masker: new Masker(values),
    unmasked: Object.entries(env)
      .filter(([, v]) => v.length < MIN_MASKED_LENGTH)
      .map(([k]) => k),
  };
}

/** $NAME, else the file $NAME_FILE names (the convention of Docker secrets and many images), or the spec's own file. */
function resolveOne(ref: SecretRef, workerEnv: NodeJS.ProcessEnv): string {
  if (ref.file !== undefined) return readSecretFile(ref, ref.file);
  const direct = workerEnv[ref.name];
  if (direct !== undefined) return direct;
  const file = workerEnv[`${ref.name}_FILE`];
  if (file !== undefined) return readSecretFile(ref, file);
  throw new MissingSecretError(
    `${ref.specPath}: secret ${ref.name} is not set on this worker: set ${ref.name} or ${ref.name}_FILE in the worker's environment`,
  );
}

function readSecretFile(ref: SecretRef, file: string): string {
  try {
    // A file written by `echo` ends with a newline that is not part of the secret.
    return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new MissingSecretError(
      `${ref.specPath}: secret ${ref.name} could not be read from ${file} on this worker (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
}

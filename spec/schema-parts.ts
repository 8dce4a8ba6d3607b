/** The zod building blocks the spec, its feature sections and the benchmark suite share, with the messages a user reads. */
import { z } from 'zod';

import { IMPLS, nonEmpty, PARAMS_DTYPES, positiveInt, positiveNumber } from '../frameworks/schema.ts';

export { IMPLS, nonEmpty, PARAMS_DTYPES, positiveInt, positiveNumber };
/** Training precisions ModelLink's scripts use (--bf16, --fp16); weights may also be fp32 (PARAMS_DTYPES). */
export const PRECISIONS = ['bf16', 'fp16'] as const;

export const nonNegativeInt = z
  .number({ error: 'expected a non-negative integer' })
  .int('expected a non-negative integer')
  .min(0, 'expected a non-negative integer');

/** Environment variables a user sets: names as the shell allows them, values as strings. */
export const envSchema = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'),
  z.string({ error: 'expected a string value (quote numbers in YAML)' }),
);

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name');

/**
 * Secrets a stage needs in its environment, named, never valued: NAME takes the worker's own $NAME (or,
 * without it, the file $NAME_FILE names); { name, file } reads the file on the worker. Only the names
 * travel through Temporal; see activities/attempt/secrets.ts.
 */
export const secretEnvSchema = z.array(z.union([envName, z.strictObject({ name: envName, file: z.string().min(1, 'expected a file path') })]));
export type SecretEnvEntry = z.infer<typeof secretEnvSchema>[number];

/** The zod building blocks framework knowledge needs (the spec's feature sections, presets, architectures), with the messages a user reads. */
import { z } from 'zod';

/** Megatron-core or legacy models, as ModelLink's scripts (--use-mcore-models) and presets say. */
export const IMPLS = ['mcore', 'legacy'] as const;
export const PARAMS_DTYPES = ['bf16', 'fp16', 'fp32'] as const;

export const positiveInt = z.number({ error: 'expected a positive integer' }).int('expected a positive integer').positive('expected a positive integer');
export const positiveNumber = z.number({ error: 'expected a positive number' }).positive('expected a positive number');
export const nonEmpty = z.string({ error: 'expected a non-empty string' }).min(1, 'expected a non-empty string');

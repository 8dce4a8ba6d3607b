/**
 * Model presets: data, not code. Each preset is traceable to the ModelLink example script it
 * was read from (`source`), and is validated on load so a bad edit fails loudly.
 */
import { z } from 'zod';
import { architectureSchema, type Architecture } from './spec.ts';
import presetData from './presets.json' with { type: 'json' };

const presetSchema = z.strictObject({
  description: z.string(),
  source: z.string(),
  impls: z.array(z.enum(['mcore', 'legacy'])).min(1),
  architecture: architectureSchema,
  fused: z.strictObject({ rmsnorm: z.boolean(), swiglu: z.boolean(), rotaryPosEmb: z.boolean(), flashAttn: z.boolean() }),
  training: z.strictObject({ lr: z.number(), minLr: z.number(), initialLossScale: z.number(), adamBeta2: z.number() }),
  reference: z.strictObject({
    nodes: z.number().int(),
    devicesPerNode: z.number().int(),
    tp: z.number().int(),
    pp: z.number().int(),
    microBatchSize: z.number().int(),
    globalBatchSize: z.number().int(),
    precision: z.enum(['bf16', 'fp16']),
    tokensPerSecondPerDevice: z.number().optional(),
  }),
});

export type Preset = z.infer<typeof presetSchema> & { name: string };

const presets: Record<string, Preset> = Object.fromEntries(
  Object.entries(z.record(z.string(), presetSchema).parse(presetData)).map(([name, p]) => [name, { ...p, name }]),
);

export function presetNames(): string[] {
  return Object.keys(presets);
}

export function getPreset(name: string): Preset | undefined {
  return presets[name];
}

/** Defaults used when the spec writes an architecture instead of naming a preset. */
export function customPreset(architecture: Architecture): Preset {
  return {
    name: 'custom',
    description: 'architecture written in the spec',
    source: 'pipeline spec',
    impls: ['mcore', 'legacy'],
    architecture,
    fused: { rmsnorm: architecture.normalization === 'RMSNorm', swiglu: architecture.swiglu, rotaryPosEmb: architecture.positionEmbeddingType === 'rope', flashAttn: true },
    training: { lr: 1.25e-6, minLr: 1.25e-7, initialLossScale: 65536, adamBeta2: 0.95 },
    reference: { nodes: 1, devicesPerNode: 8, tp: 1, pp: 1, microBatchSize: 1, globalBatchSize: 8, precision: 'bf16' },
  };
}

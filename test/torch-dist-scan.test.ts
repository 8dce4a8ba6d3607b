/**
 * The resume scan over torch_dist folders (MindSpeed-LLM 26.1.0 --ckpt-format torch_dist): a folder counts once its
 * finalize wrote .metadata and metadata.json; one whose async save was never finalized is torn, and the scan goes back to
 * the newest complete one without touching anything.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findResumePoint } from '../activities/checkpoints.ts';
import { isDistCheckpointDir, missingDistFiles, resumePoint, type SaveDirView } from '../frameworks/modellink/checkpoint.ts';
import { tempDir } from '../testkit/specs.ts';

const COMPLETE = ['__0_0.distcp', '__1_0.distcp', 'common.pt', '.metadata', 'metadata.json'];
const TORN = ['__0_0.distcp', '__1_0.distcp', 'common.pt'];

describe('torch_dist folders', () => {
  it('tells torch_dist from the per-rank torch layout, as Megatron _get_checkpoint_format does', () => {
    expect(isDistCheckpointDir(COMPLETE)).toBe(true);
    expect(isDistCheckpointDir(TORN)).toBe(true);
    expect(isDistCheckpointDir(['common.pt'])).toBe(true);
    expect(isDistCheckpointDir(['mp_rank_00', 'mp_rank_01'])).toBe(false);
    expect(isDistCheckpointDir([])).toBe(false);
  });

  it('a folder is complete with its shards, common.pt, .metadata and metadata.json', () => {
    expect(missingDistFiles(COMPLETE)).toEqual([]);
    expect(missingDistFiles(TORN)).toEqual(['.metadata', 'metadata.json']);
    expect(missingDistFiles(['common.pt', '.metadata', 'metadata.json'])).toEqual(['*.distcp']);
  });

  it('resumes from the newest complete folder when the tracker names a torn one, and from the tracker otherwise', () => {
    const folders: Record<number, string[]> = { 10: COMPLETE, 20: COMPLETE, 30: TORN };
    const view = (tracker: number): SaveDirView => ({
      tracker: () => tracker,
      iterations: () => [10, 20, 30],
      missingShards: (i) => missingDistFiles(folders[i as number] ?? []),
    });
    expect(resumePoint('/s', view(20))).toEqual({ kind: 'tracker', iteration: 20, dir: '/s' });
    expect(resumePoint('/s', view(30))).toEqual({
      kind: 'older',
      iteration: 20,
      dir: '/s',
      reason: 'checkpoint iter_0000030 is incomplete (missing .metadata, metadata.json); resuming from iter_0000020',
    });
  });
});

describe('findResumePoint on disk', () => {
  function saveDir(tracker: string, folders: Record<string, string[]>): string {
    const dir = tempDir('dist-scan');
    for (const [name, files] of Object.entries(folders)) {
      fs.mkdirSync(path.join(dir, name), { recursive: true });
      for (const f of files) fs.writeFileSync(path.join(dir, name, f), '{}');
    }
    fs.writeFileSync(path.join(dir, 'latest_checkpointed_iteration.txt'), tracker);
    return dir;
  }

  const layout = { tp: 1, pp: 1 };

  it('an async save not finalized leaves the older tracker: the tracker names the newest complete folder', () => {
    const dir = saveDir('10', { iter_0000010: COMPLETE, iter_0000020: TORN });
    const before = fs.readdirSync(path.join(dir, 'iter_0000020'));
    expect(findResumePoint(dir, layout)).toEqual({ kind: 'tracker', iteration: 10, dir });
    // Nothing is removed or written by the scan.
    expect(fs.readdirSync(path.join(dir, 'iter_0000020'))).toEqual(before);
  });

  it('a tracker naming a torn folder falls back to the newest complete one', () => {
    const dir = saveDir('30', { iter_0000010: COMPLETE, iter_0000020: COMPLETE, iter_0000030: TORN });
    const point = findResumePoint(dir, layout);
    expect(point).toMatchObject({ kind: 'older', iteration: 20 });
    const only = saveDir('30', { iter_0000030: TORN });
    expect(findResumePoint(only, layout)).toEqual({
      kind: 'none',
      reason: 'checkpoint iter_0000030 is incomplete (missing .metadata, metadata.json), and no older complete checkpoint exists',
    });
  });

  it('the per-rank torch layout is still read shard by shard', () => {
    const dir = saveDir('10', { 'iter_0000010/mp_rank_00': ['model_optim_rng.pt'] });
    expect(findResumePoint(dir, { tp: 2, pp: 1 })).toEqual({
      kind: 'none',
      reason: 'checkpoint iter_0000010 is incomplete (missing mp_rank_01), and no older complete checkpoint exists',
    });
    expect(findResumePoint(dir, layout)).toEqual({ kind: 'tracker', iteration: 10, dir });
  });
});

/**
 * ModelLink's Megatron→HF saver reads the original HF model from --save-dir and writes mg2hf/
 * into it. The user's HF directory stays untouched: the stage gets its own directory of links.
 */
import fs from 'node:fs';
import path from 'node:path';
import { HF_CFG_FILE } from '../../frameworks/mindspeed-llm/convert-v2.ts';
import type { StagePlan } from '../../plan/plan.ts';

type HfView = NonNullable<StagePlan['hfView']>;

/** The weight files of a HF directory: a view for convert_ckpt_v2.py leaves them out, since it writes its own under the same names. */
const HF_WEIGHTS = /\.(safetensors|bin|pt|pth)$|^(model\.safetensors|pytorch_model\.bin)\.index\.json$/;

/**
 * Whether the view links an entry of the original HF directory. Never one the converter writes under the
 * same name: its weights (v2), and on 26.0.0 the files it copies from --hf-cfg-dir with open(dst, 'wb'),
 * which through a link would write into the user's own HF model.
 */
export function linksEntry(view: HfView, entry: string): boolean {
  if (entry === 'mg2hf') return false;
  if (view.weights === false && HF_WEIGHTS.test(entry)) return false;
  return !(view.configCopied && HF_CFG_FILE.test(entry));
}

export function linkHfView(view: HfView): void {
  fs.mkdirSync(view.dir, { recursive: true });
  for (const entry of fs.readdirSync(view.from)) {
    const link = path.join(view.dir, entry);
    if (linksEntry(view, entry)) {
      if (!fs.existsSync(link)) fs.symlinkSync(path.join(view.from, entry), link);
      continue;
    }
    // A link an earlier plan's view left where the converter now writes: only the link goes, never its target.
    if (isLinkInto(link, view.from)) fs.unlinkSync(link);
  }
}

function isLinkInto(link: string, dir: string): boolean {
  try {
    return fs.lstatSync(link).isSymbolicLink() && path.dirname(fs.readlinkSync(link)) === dir;
  } catch {
    return false;
  }
}

/**
 * The test cluster's images: built on this machine by scripts/build-k8s-images.sh (cached by their
 * inputs, so this takes well under a second after the first build) and imported into each node's
 * containerd. Nothing is pulled: pods name these refs with imagePullPolicy Never or IfNotPresent.
 * The images hold no linkflow code: the emulator and the workspace reach pods through hostPath.
 */
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ImageTarball {
  ref: string;
  tar: string;
}

export interface TestImages {
  /** busybox-static with a trap loop: the kubelet's sandbox (pause) image. */
  pause: ImageTarball;
  /** Debian bookworm's python3 (3.11): runs the emulator, mounted from the repository by hostPath. */
  python: ImageTarball;
}

/** Builds the images when their cached tarballs are missing (about 2 minutes once), else returns them. */
export function ensureImages(): TestImages {
  const out = execFileSync('bash', [path.join(REPO, 'scripts', 'build-k8s-images.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  const last = out.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as TestImages;
}

/** `ctr images import` into one node's containerd (the CRI plugin's k8s.io namespace). */
export async function importImages(containerdSocket: string, images: TestImages): Promise<void> {
  for (const image of [images.pause, images.python]) {
    await run('ctr', ['--address', containerdSocket, '--namespace', 'k8s.io', 'images', 'import', image.tar], { maxBuffer: 1 << 20 });
  }
}

// The processes under a process, from /proc (Linux): whom a stop signals. Shared by the supervisor
// (node workers) and the Slurm task launcher; plain JavaScript, as both start in milliseconds.
import fs from 'node:fs';

/** The processes whose parent is `pid`, from /proc/<pid>/stat (field 4, after the parenthesised name). */
export function childrenOf(pid) {
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/** `pid` and everything below it. */
export function treeOf(pid) {
  const found = [pid];
  for (let i = 0; i < found.length; i++) found.push(...childrenOf(found[i]));
  return found;
}

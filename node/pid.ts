// One machine's processes by id: whether one is still there.
/** Whether a process of this machine is still there (EPERM: it is, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

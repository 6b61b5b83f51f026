import { readFileSync } from 'node:fs';

/**
 * CPU time (ms) a process's main thread has used, from /proc (Linux; undefined elsewhere).
 * Per call it is a steadier figure than throughput on a shared machine: other processes take
 * the cores away and throughput with them, while the CPU a request costs changes much less.
 * The resolution is the kernel's clock tick (10 ms), so windows should hold a second or more of CPU.
 */
export function mainThreadCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

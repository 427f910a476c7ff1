// Whether the process may open enough files for the VM it is asked to run.
// Each vCPU worker is a Node environment with its own event loop (an epoll fd,
// eventfds, pipes) plus the vCPU fd; a limit below what they need makes Node
// abort or a worker die with EMFILE deep inside start-up, so the CLI checks
// before it starts workers, and Machine.create checks too. src/main.ts loads
// it before the rest of tsvmm: Node built-ins only.

import * as fs from 'node:fs';

/** Measured here: 1 vCPU starts at a limit of 32, 4 at 48, 8 at 80 (not 64); with room for devices and the console. */
function openFilesNeeded(cpus: number, devices: number): number {
  return 32 + 7 * cpus + 4 * devices;
}

/** The soft RLIMIT_NOFILE from /proc/self/limits; undefined when it cannot be read (then nothing is checked). */
function openFileLimit(): number | undefined {
  try {
    const limits = fs.readFileSync('/proc/self/limits', 'latin1');
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (!match) return undefined;
    return match[1] === 'unlimited' ? Infinity : Number(match[1]);
  } catch (error) {
    // Too few descriptors to read the limit is itself the answer.
    return (error as NodeJS.ErrnoException).code === 'EMFILE' ? 0 : undefined;
  }
}

/** One line saying how to raise the limit, or undefined when it is enough. */
export function openFilesProblem(cpus: number, devices: number): string | undefined {
  const limit = openFileLimit();
  const needed = openFilesNeeded(cpus, devices);
  if (limit === undefined || limit >= needed) return undefined;
  const shown = limit === 0 ? 'too low to read it' : String(limit);
  return `the open-file limit (ulimit -n) is ${shown}; a VM with ${cpus} vCPU${cpus === 1 ? '' : 's'} needs at least ${needed}: raise it with ulimit -n ${needed}`;
}

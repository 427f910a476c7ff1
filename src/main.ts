#!/usr/bin/env node
// tsvmm's command-line entry: `node dist/main.js --help`.
//
// The vCPU workers are started first, before the rest of tsvmm is loaded:
// their boot (a Node environment each) then overlaps module loading and VM
// construction on the main thread, which saves ~20 ms of start-up here.
import type { Worker } from 'node:worker_threads';

// Node opens its inspector (an unauthenticated debugger port on 127.0.0.1)
// when the process gets SIGUSR1 and nobody listens for it. tsvmm never wants
// that unless its user asked with --inspect, so it listens from the first
// line; once the VM runs, the CLI's own handler stops the VM on SIGUSR1.
process.on('SIGUSR1', () => {});

import { parseCli } from './main/cli/args';
import { openFilesProblem } from './main/vmm/open-files';
import { MAX_MPTABLE_CPUS } from './main/arch/mptable';
import { startVcpuWorker } from './main/vmm/vcpu-worker-start';

/** Workers started ahead; Machine.create starts any beyond these. */
const MAX_STARTED_AHEAD = 8;

function startWorkersAhead(argv: string[]): Worker[] {
  let cpus: number;
  try {
    const options = parseCli(argv);
    if (options.help || options.version) return [];
    cpus = options.cpus;
    // Before any worker: too few file descriptors would make Node abort in one of them.
    // A vCPU count past the MP table's limit is a usage error, reported by the CLI first.
    const problem = cpus <= MAX_MPTABLE_CPUS ? openFilesProblem(cpus, options.devices.length) : undefined;
    if (problem) {
      process.stderr.write(`tsvmm: ${problem}\n`);
      process.exit(1);
    }
  } catch {
    return []; // the CLI reports bad arguments itself
  }
  return Array.from({ length: Math.min(cpus, MAX_STARTED_AHEAD) }, (_, id) => startVcpuWorker(id));
}

const argv = process.argv.slice(2);
const startedWorkers = startWorkersAhead(argv);
// Loaded only now, so that the workers above are already booting.
const { main } = require('./main/cli/cli') as typeof import('./main/cli/cli');

main(argv, startedWorkers).then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`tsvmm: internal error: ${error.stack ?? error}\n`);
    process.exit(1);
  },
);

// Starting a vCPU worker thread. A worker boots its own Node environment and
// loads the run loop, ~30 ms of CPU here, and none of that depends on the VM.
// So the CLI starts its workers before it loads the rest of tsvmm (see
// src/main.ts), and the boot overlaps module loading and VM construction on
// the main thread; Machine.create hands each one its vCPU later. This module
// runs before anything else is loaded: keep its imports to Node built-ins.

import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

const WORKER_FILE = path.join(__dirname, '..', '..', 'vcpu-worker', 'worker.js');

/** Starts the worker for vCPU `vcpuId`; it waits for its configuration over comlink. */
export function startVcpuWorker(vcpuId: number): Worker {
  return new Worker(WORKER_FILE, { name: `vcpu${vcpuId}` });
}

// Nothing of a VM outlives its close() (issue 12 item 2): many create/run/close
// cycles in one process, with 1 and with 8 vCPUs, leave the process's threads,
// the kernel's per-VM threads, its mappings (kvm_run pages and guest RAM), its
// virtual size, its RSS and its fds where they were after the first cycle.
//
// The kernel keeps a VM alive while anything maps its vCPUs' kvm_run pages
// (or holds an fd), and each live VM has two kernel threads: "kvm-nx-lpage-re"
// (since 6.13 a vhost task, so one of this process's tasks) and
// "kvm-pit/<pid>" (a kernel thread with this process's pid in its name; only
// with the in-kernel PIT, which these machines use). Both are counted.

import * as fs from 'node:fs';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Machine } from '../../src/main/vmm/machine';
import { guest } from '../support/tsvmm';

/** Cycles per configuration (issue 12 asks for at least 200). */
const CYCLES = 200;
const MEMORY_MIB = 64;

/** Stated tolerances, after CYCLES cycles against the level after the first. */
const TOLERANCE = {
  /** libuv's pool (4 threads) may start after the first cycle; VM threads must not remain. */
  tasks: 4,
  /**
   * V8 grows its heap in 256 KiB pages, one mapping each, while the live heap
   * stays flat (measured: 5.2 MiB used, 9 -> 38 MiB total over 200 cycles,
   * 130 -> 254 lines). A leaking 1-vCPU VM adds 2 lines a cycle (RAM, kvm_run),
   * 400 in 200 cycles; an 8-vCPU one 9, 1,800. The VM's own mappings (shared
   * ones: guest RAM and kvm_run pages) are counted exactly below.
   */
  mapLines: 200,
  /** The same heap growth (~30 MiB); one leaked VM is 64 MiB of RAM alone. */
  vmSizeKiB: 64 * 1024,
  /** A few MiB of heap and JIT code (measured +2.7 and +4.8 MiB); 200 leaked VMs were +22 and +42 MiB. */
  rssKiB: 10 * 1024,
};

// global.gc without --expose-gc on the command line (the runner runs `node file.js`).
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

interface Usage {
  tasks: number;
  /** This process's own tasks named kvm-* (kvm-nx-lpage-re, one per live VM). */
  kvmTasks: number;
  /** Kernel threads named kvm-pit/<this pid> (one per live VM with the in-kernel PIT). */
  pitThreads: number;
  mapLines: number;
  vcpuMaps: number;
  /** MAP_SHARED mappings (rw-s): guest RAM ("/dev/zero (deleted)") and kvm_run pages; none is V8's. */
  sharedMaps: number;
  sharedKiB: number;
  vmSizeKiB: number;
  rssKiB: number;
  fds: number;
}

function statusField(status: string, name: string): number {
  const match = status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'));
  if (!match) throw new Error(`no ${name} in /proc/self/status`);
  return Number(match[1]);
}

function readComm(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return ''; // the task or process ended while we looked
  }
}

function pitThreadCount(): number {
  const name = `kvm-pit/${process.pid}`;
  let count = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (/^\d+$/.test(entry) && readComm(`/proc/${entry}/comm`) === name) count++;
  }
  return count;
}

async function settle(): Promise<void> {
  // Terminated workers' threads and finalizers go after a few turns of the loop.
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function usage(): Promise<Usage> {
  await settle();
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((line) => line.length > 0);
  const shared = maps.filter((line) => line.split(/\s+/)[1]?.endsWith('s'));
  const comms = fs.readdirSync('/proc/self/task').map((task) => readComm(`/proc/self/task/${task}/comm`));
  return {
    tasks: statusField(status, 'Threads'),
    kvmTasks: comms.filter((comm) => comm.startsWith('kvm')).length,
    pitThreads: pitThreadCount(),
    mapLines: maps.length,
    vcpuMaps: maps.filter((line) => line.includes('anon_inode:kvm-vcpu')).length,
    sharedMaps: shared.length,
    sharedKiB: shared.reduce((sum, line) => {
      const [start, end] = line.split(/\s+/)[0].split('-').map((hex) => BigInt(`0x${hex}`));
      return sum + Number((end - start) / 1024n);
    }, 0),
    vmSizeKiB: statusField(status, 'VmSize'),
    rssKiB: statusField(status, 'VmRSS'),
    fds: fs.readdirSync('/proc/self/fd').length,
  };
}

/** One create/run/close cycle; resolves with the exit kind and COM1's output. */
async function cycle(kernel: Uint8Array, cpus: number): Promise<{ kind: string; output: string }> {
  let output = '';
  const machine = await Machine.create({ cpus, memoryMiB: MEMORY_MIB, bootProtocol: 'linux' }, {
    kernel,
    serialOutput: (bytes) => { output += Buffer.from(bytes).toString('latin1'); },
  });
  try {
    const exit = await machine.run();
    return { kind: exit.kind, output };
  } finally {
    await machine.close();
  }
}

function compare(first: Usage, last: Usage): string[] {
  const problems: string[] = [];
  const exact = ['kvmTasks', 'pitThreads', 'vcpuMaps', 'sharedMaps', 'sharedKiB', 'fds'] as const;
  for (const key of exact) {
    if (last[key] !== first[key]) problems.push(`${key} ${first[key]} -> ${last[key]} (must be equal)`);
  }
  for (const key of Object.keys(TOLERANCE) as Array<keyof typeof TOLERANCE>) {
    if (last[key] - first[key] > TOLERANCE[key]) problems.push(`${key} ${first[key]} -> ${last[key]} (tolerance +${TOLERANCE[key]})`);
  }
  return problems;
}

const HELLO = { name: 'hello', expect: 'hello: long mode ok\n' };
/** The smp guest starts every AP (INIT, SIPI, SIPI), so all 8 vCPUs really run. */
const SMP = { name: 'smp', expect: 'smp: 8 of 8 CPUs online\n' };

/**
 * The guest of each cycle. An 8-vCPU smp cycle takes ~0.65 s on the 2-core
 * development host (1.4 s when it is busy) against ~0.36 s for hello on 8
 * vCPUs (its APs are created, mapped and run, waiting for a SIPI), so the
 * 8-vCPU case runs smp every fourth cycle, the first included, to keep this
 * file well inside the runner's 5-minute limit.
 */
const CASES = [
  { cpus: 1, guests: [HELLO], label: 'hello guest' },
  { cpus: 8, guests: [SMP, HELLO, HELLO, HELLO], label: 'smp guest every fourth cycle, hello between' },
];

for (const { cpus, guests, label } of CASES) {
  test(`${CYCLES} create/run/close cycles of a ${cpus}-vCPU VM (${label}): threads, kernel VM threads, mappings, virtual size, RSS and fds stay at their level after the first`, async () => {
    const kernels = guests.map((g) => ({ ...g, kernel: new Uint8Array(fs.readFileSync(guest(g.name))) }));
    const started = Date.now();
    let first: Usage | undefined;
    for (let i = 0; i < CYCLES; i++) {
      const { name, kernel, expect } = kernels[i % kernels.length];
      const run = await cycle(kernel, cpus);
      if (run.kind !== 'reset' || !run.output.includes(expect)) {
        assert.unreachable(`cycle ${i + 1} (${name}): ${run.kind}, output ${JSON.stringify(run.output)}`);
      }
      first ??= await usage();
    }
    const last = await usage();
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const heap = v8.getHeapStatistics();
    console.log(`  ${cpus} vCPU x ${CYCLES} in ${seconds} s; after the first cycle ${JSON.stringify(first)}; after ${CYCLES} ${JSON.stringify(last)}; V8 heap used ${(heap.used_heap_size / 2 ** 20).toFixed(1)} MiB of ${(heap.total_heap_size / 2 ** 20).toFixed(1)} MiB`);
    const problems = compare(first!, last);
    // A closed VM leaves nothing of itself: no kvm_run mapping, no kernel thread.
    for (const key of ['vcpuMaps', 'sharedMaps', 'pitThreads', 'kvmTasks'] as const) {
      if (first![key] !== 0) problems.push(`${key} is ${first![key]} after the first close (must be 0)`);
    }
    assert.ok(problems.length === 0, `after ${CYCLES} cycles: ${problems.join('; ')}`);
  });
}

test.run();

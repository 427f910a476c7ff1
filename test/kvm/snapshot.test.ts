// Snapshot and restore end to end, as a user does it: tsvmm runs a guest
// with --api-socket, the test pauses it and takes a snapshot through the
// control API (PUT vm.pause, vm.snapshot, vm.shutdown), and a new process
// continues it with --restore. guests/counter prints one counter line per
// CPU every few milliseconds: the lines before and after must join with the
// next value, no repeat and no gap, on 1 and 8 vCPUs and with the split
// irqchip; guests/echo answers console input typed after the restore, and
// a line typed while paused and held in tsvmm's COM1 queue;
// guests/blk-counter does virtio-blk I/O across the snapshot; a chain of
// snapshot/restore cycles ends with the output of an uninterrupted run, and
// one with the split irqchip keeps a PIC interrupt KVM held at the pause.
// Both new guests are proven under QEMU first.

import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { findQemu, runQemu } from '../support/qemu';
import { MAIN, ROOT, guest, runTsvmm } from '../support/tsvmm';
import { makeTempImage } from '../support/virtio-image';

const TIMEOUT_MS = 60_000;
/** Cycles of the snapshot/restore chain; each costs about a second here (see the README). */
const CHAIN_CYCLES = 50;
/** Cycles of the split-irqchip chain: enough that a lost ExtINT vector (one restore in four, before it was saved) shows. */
const SPLIT_CHAIN_CYCLES = 16;

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-snapshot-test-'));
}

/** One request to the control API; resolves with the status and the parsed body. */
function api(socket: string, method: string, route: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath: socket, method, path: `/api/v1/${route}`, headers: { 'content-type': 'application/json' } }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) }));
    });
    request.on('error', reject);
    request.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A running `node dist/main.js`: its output so far, a wait for a condition on it, and its end. */
class Tsvmm {
  stdout = '';
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  private readonly timer: NodeJS.Timeout;

  constructor(args: string[], stdin: 'ignore' | 'pipe' = 'ignore') {
    this.child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: [stdin, 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => { this.stdout += chunk.toString('latin1'); });
    this.child.stderr!.on('data', (chunk: Buffer) => { this.stderr += chunk.toString('utf8'); });
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
    this.timer = setTimeout(() => this.child.kill('SIGKILL'), TIMEOUT_MS);
    void this.exited.then(() => clearTimeout(this.timer));
  }

  async waitFor(what: string, ready: (stdout: string) => boolean): Promise<void> {
    const deadline = Date.now() + TIMEOUT_MS;
    while (!ready(this.stdout)) {
      if (this.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`tsvmm ended or timed out before ${what}; stdout ${JSON.stringify(this.stdout.slice(-300))}, stderr ${this.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Waits for the API socket to appear (the process creates it before the guest runs). */
  async waitForSocket(socket: string): Promise<void> {
    await this.waitFor(`the API socket ${socket}`, () => fs.existsSync(socket));
  }

  async stop(): Promise<number | null> {
    this.child.kill('SIGTERM');
    return this.exited;
  }
}

/**
 * Pauses the VM behind `socket`, runs `whilePaused` if given, snapshots it
 * into `directory` and shuts it down (through the API, each route answering
 * 200); resolves with its exit code.
 */
async function snapshotAndShutDown(vm: Tsvmm, socket: string, directory: string, whilePaused?: () => Promise<void>): Promise<number | null> {
  const put = async (route: string, body?: unknown) => {
    const answer = await api(socket, 'PUT', route, body);
    assert.is(answer.status, 200, `${route} answered ${answer.status} ${JSON.stringify(answer.body)}; stderr ${vm.stderr}`);
  };
  await put('vm.pause');
  await whilePaused?.();
  await put('vm.snapshot', { destination_url: `file://${directory}` });
  await put('vm.shutdown');
  return vm.exited;
}

/** The complete counter lines of `output` (a partial last line is left out) as cpu -> values in order. */
function counts(output: string): Map<number, number[]> {
  const lines = output.split('\n').slice(0, -1);
  const byCpu = new Map<number, number[]>();
  for (const line of lines) {
    const match = /^cpu(\d+) (\d+)$/.exec(line);
    if (!match) continue;
    const values = byCpu.get(Number(match[1])) ?? [];
    values.push(Number(match[2]));
    byCpu.set(Number(match[1]), values);
  }
  return byCpu;
}

/** Each CPU's values are 0, 1, 2, ... with nothing repeated or left out. */
function assertConsecutive(byCpu: Map<number, number[]>, cpus: number): void {
  assert.equal([...byCpu.keys()].sort((a, b) => a - b), Array.from({ length: cpus }, (_, i) => i), 'every CPU counts');
  for (const [cpu, values] of byCpu) {
    const wrong = values.findIndex((value, i) => value !== i);
    assert.is(wrong, -1, `cpu${cpu} goes ${values.slice(Math.max(0, wrong - 2), wrong + 2).join(', ')} at line ${wrong}`);
  }
}

/** At least `lines` lines from every one of `cpus` CPUs. */
const linesPerCpu = (cpus: number, lines: number) => (stdout: string) => {
  const byCpu = counts(stdout);
  return byCpu.size === cpus && [...byCpu.values()].every((values) => values.length >= lines);
};

/** Runs the counter guest, snapshots it, restores it in a new process; checks the joined output. */
async function counterAcrossSnapshot(cpus: number, extraArgs: string[] = []): Promise<void> {
  const dir = tempDir();
  try {
    const socket = path.join(dir, 'api.sock');
    const first = new Tsvmm(['--kernel', guest('counter'), '--cpus', String(cpus), '--mem', '64', '--api-socket', socket, ...extraArgs]);
    await first.waitFor('the first lines', linesPerCpu(cpus, 5));
    assert.is(await snapshotAndShutDown(first, socket, path.join(dir, 'snap')), 0, first.stderr);
    const before = counts(first.stdout);
    const second = new Tsvmm(['--restore', path.join(dir, 'snap')]);
    await second.waitFor('lines after the restore', (stdout) => [...before].every(([cpu, values]) => (counts(first.stdout + stdout).get(cpu)?.length ?? 0) >= values.length + 5));
    await second.stop();
    assert.not.match(second.stderr, /error|fail/i);
    assertConsecutive(counts(first.stdout + second.stdout), cpus);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const qemu = findQemu();

test('counter under QEMU: with -smp 2 each CPU prints 0, 1, 2, ... (the guest is right before tsvmm runs it)', async () => {
  if (!qemu) return console.log('not checked: qemu-system-x86_64 is not installed');
  const run = await runQemu(qemu, guest('counter'), ['-smp', '2'], 20_000);
  // SeaBIOS's last escape codes may share the first line; what is left is counted.
  const byCpu = counts(run.output.replace(/^[^]*?(?=cpu\d+ 0\n)/, ''));
  assertConsecutive(byCpu, 2);
  assert.ok(byCpu.get(0)!.length >= 20 && byCpu.get(1)!.length >= 5, JSON.stringify([...byCpu].map(([cpu, v]) => [cpu, v.length])));
});

test('blk-counter under QEMU: step after step of virtio-blk writes, read-backs and reads, all ok', async () => {
  if (!qemu) return console.log('not checked: qemu-system-x86_64 is not installed');
  const { dir, image } = makeTempImage();
  try {
    const run = await runQemu(qemu, guest('blk-counter'), ['-drive', `file=${image},if=none,id=d0,format=raw`, '-device', 'virtio-blk-pci,drive=d0,disable-legacy=on'], 20_000);
    const steps = run.lines.filter((line) => line.startsWith('blk '));
    assert.ok(steps.length >= 10, run.output.slice(-300));
    steps.slice(0, -1).forEach((line, i) => assert.is(line, `blk ${i} ok`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('counter: snapshot while running, restore in a new process: the count goes on with the next value', async () => {
  await counterAcrossSnapshot(1);
});

test('counter with --cpus 8: every CPU goes on with its next value', async () => {
  await counterAcrossSnapshot(8);
});

test('counter with --split-irqchip: the userspace PIC, IOAPIC and PIT come back too', async () => {
  await counterAcrossSnapshot(2, ['--split-irqchip']);
});

test('echo: console input typed after the restore is answered', async () => {
  const dir = tempDir();
  try {
    const socket = path.join(dir, 'api.sock');
    const first = new Tsvmm(['--kernel', guest('echo'), '--mem', '32', '--api-socket', socket]);
    await first.waitFor('echo: ready', (stdout) => stdout.includes('echo: ready'));
    assert.is(await snapshotAndShutDown(first, socket, path.join(dir, 'snap')), 0, first.stderr);
    const second = new Tsvmm(['--restore', path.join(dir, 'snap')], 'pipe');
    second.child.stdin!.write('after restore\n');
    await second.waitFor('the echo', (stdout) => stdout.includes('echo: AFTER RESTORE'));
    second.child.stdin!.write('quit\n');
    assert.is(await second.exited, 0, second.stderr);
    assert.not.match(second.stdout, /echo: ready/, 'the guest did not start again');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('echo: a line typed while the VM is paused, longer than the UART\'s FIFO, is whole after the restore', async () => {
  // The UART's FIFO takes 64 bytes; the rest waits in tsvmm's COM1 queue, which the snapshot keeps.
  const line = `typed while paused, longer than the 64-byte fifo ${'0123456789'.repeat(6)}`; // 110 bytes; the guest takes 126
  const dir = tempDir();
  try {
    const socket = path.join(dir, 'api.sock');
    const first = new Tsvmm(['--kernel', guest('echo'), '--mem', '32', '--api-socket', socket], 'pipe');
    await first.waitFor('echo: ready', (stdout) => stdout.includes('echo: ready'));
    const typeLine = async () => {
      first.child.stdin!.write(`${line}\n`);
      await new Promise((resolve) => setTimeout(resolve, 300)); // for tsvmm to read it and fill the FIFO
    };
    assert.is(await snapshotAndShutDown(first, socket, path.join(dir, 'snap'), typeLine), 0, first.stderr);
    assert.not.match(first.stdout, /TYPED/, 'the paused guest echoed nothing');
    const second = new Tsvmm(['--restore', path.join(dir, 'snap')], 'pipe');
    await second.waitFor('the echo', (stdout) => stdout.includes(`echo: ${line.toUpperCase()}\n`));
    second.child.stdin!.write('quit\n');
    assert.is(await second.exited, 0, second.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('blk-counter: virtio-blk I/O across the snapshot goes on with the next step, every check ok', async () => {
  const { dir, image } = makeTempImage();
  try {
    const socket = path.join(dir, 'api.sock');
    const steps = (stdout: string) => stdout.split('\n').filter((line) => line.startsWith('blk ')).length;
    const first = new Tsvmm(['--kernel', guest('blk-counter'), '--mem', '32', '--disk', `path=${image}`, '--api-socket', socket]);
    await first.waitFor('some steps', (stdout) => steps(stdout) >= 10);
    assert.is(await snapshotAndShutDown(first, socket, path.join(dir, 'snap')), 0, first.stderr);
    const second = new Tsvmm(['--restore', path.join(dir, 'snap')]);
    await second.waitFor('steps after the restore', (stdout) => steps(first.stdout + stdout) >= steps(first.stdout) + 10);
    await second.stop();
    const lines = (first.stdout + second.stdout).split('\n').slice(0, -1).filter((line) => line.startsWith('blk '));
    lines.forEach((line, i) => assert.is(line, `blk ${i} ok`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * `cycles` snapshot/restore cycles of the counter guest in `dir`: each
 * process restores the last one's snapshot (the first boots with
 * `bootArgs`; restore `cycle` adds `restoreArgs(cycle)`), prints at least 3
 * more lines, and is snapshotted and shut down. Resolves with the output of
 * them all.
 */
async function counterChain(dir: string, cycles: number, bootArgs: string[], restoreArgs: (cycle: number) => string[] = () => []): Promise<string> {
  let output = '';
  let previous: string | undefined;
  for (let cycle = 0; cycle < cycles; cycle++) {
    const socket = path.join(dir, `api${cycle}.sock`);
    const snapshot = path.join(dir, `snap${cycle}`);
    const source = previous === undefined ? ['--kernel', guest('counter'), ...bootArgs] : ['--restore', previous, ...restoreArgs(cycle)];
    const vm = new Tsvmm([...source, '--api-socket', socket]);
    const had = counts(output).get(0)?.length ?? 0;
    await vm.waitFor(`cycle ${cycle}'s lines`, (stdout) => (counts(output + stdout).get(0)?.length ?? 0) >= had + 3);
    assert.is(await snapshotAndShutDown(vm, socket, snapshot), 0, vm.stderr);
    output += vm.stdout;
    if (previous !== undefined) fs.rmSync(previous, { recursive: true, force: true });
    previous = snapshot;
  }
  return output;
}

test(`a chain of ${CHAIN_CYCLES} snapshot/restore cycles ends with the output of an uninterrupted run`, async () => {
  const dir = tempDir();
  try {
    const started = Date.now();
    const output = await counterChain(dir, CHAIN_CYCLES, ['--mem', '16']);
    const chainMs = Date.now() - started;
    const lines = output.split('\n').slice(0, -1);
    const whole = await runTsvmm(['--kernel', guest('counter'), '--mem', '16'], {
      stopWhen: (stdout) => stdout.split('\n').length > lines.length + 1,
      timeoutMs: TIMEOUT_MS,
    });
    assert.equal(lines, whole.stdout.split('\n').slice(0, lines.length), 'the chain printed what one run prints');
    assertConsecutive(counts(output), 1);
    console.log(`${CHAIN_CYCLES} cycles in ${(chainMs / 1000).toFixed(1)} s (${(chainMs / CHAIN_CYCLES).toFixed(0)} ms each), ${lines.length} lines`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(`a chain of ${SPLIT_CHAIN_CYCLES} cycles with --split-irqchip: a PIC interrupt KVM still held at the pause reaches the restored guest`, async () => {
  // The boot vCPU spends its time halted between PIT ticks, and a pause often
  // lands just after the tick's KVM_INTERRUPT: then the vector is parked in
  // KVM, and the PIC has it in service. Before the worker reported parked
  // vectors, one restore in four here had a cpu0 that never counted again.
  const dir = tempDir();
  try {
    // Every other restore runs the native exit loop, which injects through the same worker code.
    const output = await counterChain(dir, SPLIT_CHAIN_CYCLES, ['--mem', '16', '--split-irqchip'], (cycle) => (cycle % 2 === 1 ? ['--hand-off', 'native'] : []));
    assertConsecutive(counts(output), 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--restore refuses, in one line with exit 2: options that shape the VM, a missing snapshot, a damaged one', async () => {
  const dir = tempDir();
  try {
    const socket = path.join(dir, 'api.sock');
    const first = new Tsvmm(['--kernel', guest('counter'), '--mem', '16', '--api-socket', socket]);
    await first.waitFor('a line', linesPerCpu(1, 1));
    const snapshot = path.join(dir, 'snap');
    assert.is(await snapshotAndShutDown(first, socket, snapshot), 0);
    const refusals: Array<[string[], RegExp]> = [
      [['--restore', snapshot, '--kernel', guest('hello')], /--restore and --kernel cannot be combined/],
      [['--restore', snapshot, '--cpus', '2'], /--restore and --cpus cannot be combined/],
      [['--restore', path.join(dir, 'nothing')], /manifest\.json: it does not exist/],
    ];
    for (const [args, message] of refusals) {
      const run = await runTsvmm(args);
      assert.is(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.is(run.stderr.trim().split('\n').length, 1, run.stderr);
    }
    fs.truncateSync(path.join(snapshot, 'memory.bin'), 4096);
    const truncated = await runTsvmm(['--restore', snapshot]);
    assert.is(truncated.code, 2);
    assert.match(truncated.stderr, /memory\.bin has 4096 bytes, the manifest says 16777216; the file is truncated/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

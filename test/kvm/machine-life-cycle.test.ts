// The Machine's life cycle as a library sees it (issue 12 item 5): every call
// returns or fails at once, in any state; none hangs. close() on a running
// guest (idle in hlt, or spinning without a single exit) stops it and run()
// resolves "stopped by request"; run() is once per machine; pause() twice is
// one pause; resume(), registers() and pause() in the wrong state fail with a
// usage error; close() twice is fine.
//
// Every wait races a timer, so a hang fails the test instead of stalling it.

import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TsvmmError } from '../../src/shared/errors';
import { Machine } from '../../src/main/vmm/machine';
import { guest } from '../support/tsvmm';

/** How long any call may take before it counts as a hang. */
const PROMPT_MS = 5000;
/** "At once": a refusal may not wait for the guest. */
const AT_ONCE_MS = 500;

type Settled<T> = { how: 'resolved'; value: T; ms: number } | { how: 'rejected'; error: unknown; ms: number } | { how: 'timeout'; ms: number };

/** How a promise (or a call that may throw) settles within `ms`. */
async function within<T>(ms: number, call: () => Promise<T> | T): Promise<Settled<T>> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), ms); });
  try {
    const result = await Promise.race([Promise.resolve().then(call), timeout]);
    if (result === 'timeout') return { how: 'timeout', ms: Date.now() - started };
    return { how: 'resolved', value: result as T, ms: Date.now() - started };
  } catch (error) {
    return { how: 'rejected', error, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

function describe(settled: Settled<unknown>): string {
  if (settled.how === 'resolved') return `resolved after ${settled.ms} ms with ${JSON.stringify(settled.value, (_key, value) => (typeof value === 'bigint' ? `0x${value.toString(16)}` : value))}`;
  if (settled.how === 'rejected') return `rejected after ${settled.ms} ms: ${(settled.error as Error)?.message ?? settled.error}`;
  return `still pending after ${settled.ms} ms`;
}

function assertUsageRejection(settled: Settled<unknown>, what: string): void {
  assert.is(settled.how, 'rejected', `${what}: ${describe(settled)}`);
  const error = (settled as { error: unknown }).error;
  assert.instance(error, TsvmmError, `${what}: ${String(error)}`);
  assert.is((error as TsvmmError).kind, 'usage', `${what}: ${String(error)}`);
  assert.ok(settled.ms < AT_ONCE_MS, `${what}: took ${settled.ms} ms`);
}

/** A call that must fail at once with a usage error, whether it throws or returns a rejected promise. */
async function assertRefused(what: string, call: () => unknown): Promise<void> {
  assertUsageRejection(await within(AT_ONCE_MS * 2, () => call() as Promise<unknown>), what);
}

function assertStoppedByRequest(settled: Settled<unknown>, what: string): void {
  assert.is(settled.how, 'resolved', `${what}: ${describe(settled)}`);
  assert.equal((settled as { value: unknown }).value, { kind: 'stopped', cause: { by: 'request' } }, what);
}

/**
 * The hello guest with its entry instruction replaced by `jmp .` (eb fe): a
 * vCPU that spins in the guest without ever exiting to tsvmm.
 */
function spinningKernel(): { kernel: Uint8Array; entry: bigint } {
  const elf = Buffer.from(fs.readFileSync(guest('hello')));
  const entry = elf.readBigUInt64LE(0x18);
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    const PT_LOAD = 1;
    if (elf.readUInt32LE(ph) !== PT_LOAD) continue;
    const offset = elf.readBigUInt64LE(ph + 8);
    const paddr = elf.readBigUInt64LE(ph + 24);
    const filesz = elf.readBigUInt64LE(ph + 32);
    if (entry >= paddr && entry + 2n <= paddr + filesz) {
      const at = Number(offset + entry - paddr);
      elf[at] = 0xeb;
      elf[at + 1] = 0xfe;
      return { kernel: new Uint8Array(elf), entry };
    }
  }
  throw new Error('hello.elf: no PT_LOAD segment holds the entry point');
}

interface Booted {
  machine: Machine;
  output: () => string;
  /** Resolves once COM1 has printed the text. */
  printed: (text: string) => Promise<void>;
}

async function boot(kernel: Uint8Array, cpus = 1): Promise<Booted> {
  let output = '';
  const waiters: Array<() => void> = [];
  const machine = await Machine.create({ cpus, memoryMiB: 64, bootProtocol: 'linux' }, {
    kernel,
    serialOutput: (bytes) => {
      output += Buffer.from(bytes).toString('latin1');
      for (const wake of waiters.splice(0)) wake();
    },
  });
  const printed = async (text: string) => {
    const deadline = Date.now() + PROMPT_MS * 2;
    while (!output.includes(text)) {
      if (Date.now() > deadline) throw new Error(`the guest did not print ${JSON.stringify(text)}; it printed ${JSON.stringify(output)}`);
      await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, 100); });
    }
  };
  return { machine, output: () => output, printed };
}

const file = (name: string) => new Uint8Array(fs.readFileSync(guest(name)));

/** close() with a deadline, for the finally blocks: a hung close must not stall the file. */
async function closeSoon(machine: Machine): Promise<void> {
  await within(PROMPT_MS, () => machine.close());
}

for (const cpus of [1, 2]) {
  test(`close() on an idle running guest (echo, ${cpus} vCPU${cpus > 1 ? 's' : ''}, in hlt) resolves promptly and run() resolves "stopped by request"`, async () => {
    const { machine, printed } = await boot(file('echo'), cpus);
    try {
      const running = machine.run();
      await printed('echo: ready\n');
      const closed = await within(PROMPT_MS, () => machine.close());
      assert.is(closed.how, 'resolved', `close(): ${describe(closed)}`);
      assertStoppedByRequest(await within(AT_ONCE_MS, () => running), 'run() after close()');
      assert.is(machine.state, 'closed');
    } finally {
      await closeSoon(machine);
    }
  });

  test(`close() on a spinning guest (jmp . at the entry, ${cpus} vCPU${cpus > 1 ? 's' : ''}, no exits) resolves promptly and run() resolves "stopped by request"`, async () => {
    const { kernel, entry } = spinningKernel();
    const { machine } = await boot(kernel, cpus);
    try {
      const running = machine.run();
      await new Promise((resolve) => setTimeout(resolve, 300));
      // It really spins at the entry: pause, look, go on.
      const paused = await within(PROMPT_MS, () => machine.pause());
      assert.is(paused.how, 'resolved', `pause(): ${describe(paused)}`);
      const regs = await within(PROMPT_MS, () => machine.registers(0));
      assert.is(regs.how, 'resolved', `registers(0): ${describe(regs)}`);
      assert.is((regs as { value: { rip: bigint } }).value.rip, entry, 'the boot vCPU spins on its entry instruction');
      machine.resume();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const closed = await within(PROMPT_MS, () => machine.close());
      assert.is(closed.how, 'resolved', `close(): ${describe(closed)}`);
      assertStoppedByRequest(await within(AT_ONCE_MS, () => running), 'run() after close()');
      assert.is(machine.state, 'closed');
    } finally {
      await closeSoon(machine);
    }
  });
}

test('run() after close() rejects at once with a usage error (a machine that never ran, and one that did)', async () => {
  const never = await boot(file('hello'));
  await closeSoon(never.machine);
  await assertRefused('run() on a closed machine that never ran', () => never.machine.run());

  const ran = await boot(file('hello'));
  try {
    const exit = await within(PROMPT_MS * 2, () => ran.machine.run());
    assert.is(exit.how, 'resolved', `run(): ${describe(exit)}`);
    assert.equal((exit as { value: unknown }).value, { kind: 'reset', source: 'i8042' });
    const closed = await within(PROMPT_MS, () => ran.machine.close());
    assert.is(closed.how, 'resolved', `close(): ${describe(closed)}`);
    await assertRefused('run() on a closed machine that ran', () => ran.machine.run());
  } finally {
    await closeSoon(ran.machine);
  }
});

test('run() twice: the second rejects at once with a usage error, the first still ends as the guest does', async () => {
  const { machine, output } = await boot(file('hello'));
  try {
    const first = machine.run();
    await assertRefused('a second run() while the first runs', () => machine.run());
    const exit = await within(PROMPT_MS * 2, () => first);
    assert.is(exit.how, 'resolved', `the first run(): ${describe(exit)}`);
    assert.equal((exit as { value: unknown }).value, { kind: 'reset', source: 'i8042' });
    assert.is(output(), 'hello: long mode ok\n');
    await assertRefused('run() after the guest ended', () => machine.run());
  } finally {
    await closeSoon(machine);
  }
});

test('pause() twice in a row: both resolve, as one pause; resume() lets the guest carry on', async () => {
  const { machine, printed, output } = await boot(file('echo'), 2);
  try {
    const running = machine.run();
    await printed('echo: ready\n');
    const one = machine.pause();
    const two = machine.pause();
    const [first, second] = await Promise.all([within(PROMPT_MS, () => one), within(PROMPT_MS, () => two)]);
    assert.is(first.how, 'resolved', `the first pause(): ${describe(first)}`);
    assert.is(second.how, 'resolved', `the second pause(): ${describe(second)}`);
    assert.is(machine.state, 'paused');
    const third = await within(PROMPT_MS, () => machine.pause());
    assert.is(third.how, 'resolved', `pause() on a paused machine: ${describe(third)}`);
    const regs = await within(PROMPT_MS, () => machine.registers(0));
    assert.is(regs.how, 'resolved', `registers(0) while paused: ${describe(regs)}`);
    machine.resume();
    assert.is(machine.state, 'running');
    machine.sendInput(new TextEncoder().encode('after two pauses\nquit\n'));
    const exit = await within(PROMPT_MS * 2, () => running);
    assert.is(exit.how, 'resolved', `run(): ${describe(exit)}`);
    assert.equal((exit as { value: unknown }).value, { kind: 'reset', source: 'i8042' });
    assert.is(output(), 'echo: ready\necho: AFTER TWO PAUSES\necho: bye\n');
  } finally {
    await closeSoon(machine);
  }
});

test('resume() and registers() on a running machine throw a usage error at once', async () => {
  const { machine, printed } = await boot(file('echo'));
  try {
    const running = machine.run();
    await printed('echo: ready\n');
    await assertRefused('resume() on a running machine', () => machine.resume());
    await assertRefused('registers(0) on a running machine', () => machine.registers(0));
    assert.is(machine.state, 'running', 'the refusals changed nothing');
    const closed = await within(PROMPT_MS, () => machine.close());
    assert.is(closed.how, 'resolved', `close(): ${describe(closed)}`);
    assertStoppedByRequest(await within(AT_ONCE_MS, () => running), 'run() after close()');
  } finally {
    await closeSoon(machine);
  }
});

test('pause() after the guest ended rejects at once with a usage error', async () => {
  const { machine } = await boot(file('hello'));
  try {
    const exit = await within(PROMPT_MS * 2, () => machine.run());
    assert.is(exit.how, 'resolved', `run(): ${describe(exit)}`);
    await assertRefused('pause() after the guest reset', () => machine.pause());
    await assertRefused('resume() after the guest reset', () => machine.resume());
    await assertRefused('registers(0) after the guest reset', () => machine.registers(0));
  } finally {
    await closeSoon(machine);
  }
});

test('pause() before run() and after close() reject at once with a usage error', async () => {
  const { machine } = await boot(file('hello'));
  try {
    await assertRefused('pause() on a machine that has not run', () => machine.pause());
    await closeSoon(machine);
    await assertRefused('pause() on a closed machine', () => machine.pause());
  } finally {
    await closeSoon(machine);
  }
});

test('close() twice, in a row and at once, is fine', async () => {
  const idle = await boot(file('echo'));
  const running = idle.machine.run();
  await idle.printed('echo: ready\n');
  const [a, b] = await Promise.all([within(PROMPT_MS, () => idle.machine.close()), within(PROMPT_MS, () => idle.machine.close())]);
  assert.is(a.how, 'resolved', `the first close(): ${describe(a)}`);
  assert.is(b.how, 'resolved', `a concurrent close(): ${describe(b)}`);
  assertStoppedByRequest(await within(AT_ONCE_MS, () => running), 'run() after close()');
  const c = await within(PROMPT_MS, () => idle.machine.close());
  assert.is(c.how, 'resolved', `close() on a closed machine: ${describe(c)}`);

  const built = await boot(file('hello'));
  const d = await within(PROMPT_MS, () => built.machine.close());
  const e = await within(PROMPT_MS, () => built.machine.close());
  assert.is(d.how, 'resolved', `close() on a machine that never ran: ${describe(d)}`);
  assert.is(e.how, 'resolved', `close() again: ${describe(e)}`);
  assert.is(built.machine.state, 'closed');
});

// A hung machine (a failure above) keeps worker threads alive; do not let it hold the process.
test.after(() => {
  setTimeout(() => process.exit(), 5000).unref();
});

test.run();

// The control path: pause every vCPU, read registers through each worker
// (comlink), resume, and read the shared exit counters — on a running guest.

import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KvmUnavailableError } from '../../src/main/kvm/kvm';
import { Machine } from '../../src/main/vmm/machine';
import { startVcpuWorker } from '../../src/main/vmm/vcpu-worker-start';
import { guest } from '../support/tsvmm';

const GUEST_IMAGE_START = 0x100000; // guests are linked at 1 MiB
const GUEST_IMAGE_END = 0x200000;

test('pause, read registers over comlink, resume: the guest carries on', async () => {
  let output = '';
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => { ready = resolve; });
  const machine = await Machine.create({ cpus: 2, memoryMiB: 64, bootProtocol: 'linux' }, {
    kernel: new Uint8Array(fs.readFileSync(guest('echo'))),
    serialOutput: (bytes) => {
      output += Buffer.from(bytes).toString('latin1');
      if (output.includes('echo: ready\n')) ready();
    },
  });
  try {
    const running = machine.run();
    await isReady;
    await machine.pause();
    const bsp = await machine.registers(0);
    // The BSP is in the guest's code (its idle loop), not at the entry or in the tables.
    assert.ok(bsp.rip >= BigInt(GUEST_IMAGE_START) && bsp.rip < BigInt(GUEST_IMAGE_END), `rip 0x${bsp.rip.toString(16)}`);
    assert.ok(bsp.rsp > BigInt(GUEST_IMAGE_START), 'on the guest runtime\'s own stack, not the boot stack at 0x8000');
    // The AP never received a SIPI from this guest: it still holds its reset state.
    const ap = await machine.registers(1);
    assert.is(ap.rip, 0xfff0n, 'AP at the reset vector offset');
    machine.resume();
    machine.sendInput(new TextEncoder().encode('paused and back\nquit\n'));
    const exit = await running;
    assert.equal(exit, { kind: 'reset', source: 'i8042' });
    assert.is(output, 'echo: ready\necho: PAUSED AND BACK\necho: bye\n');
    const [stats] = machine.stats();
    assert.ok(stats.forwarded > 0, 'forwarded accesses counted');
    assert.is(stats.forwarded, stats.ioExits - stats.unclaimed + stats.mmioExits, 'every exit is either forwarded or answered in place');
    assert.ok(machine.deviceStats.served >= stats.forwarded, 'the device thread served them');
  } finally {
    await machine.close();
  }
});

test('registers() refuses while the guest runs', async () => {
  const machine = await Machine.create({ cpus: 1, memoryMiB: 64, bootProtocol: 'linux' }, {
    kernel: new Uint8Array(fs.readFileSync(guest('hello'))),
  });
  try {
    assert.throws(() => machine.registers(0), /only while the machine is paused/);
    const exit = await machine.run();
    assert.equal(exit, { kind: 'reset', source: 'i8042' });
  } finally {
    await machine.close();
  }
});

test('workers started ahead are adopted; spare ones end, missing ones are started', async () => {
  const hello = new Uint8Array(fs.readFileSync(guest('hello')));
  const config = { memoryMiB: 64, bootProtocol: 'linux' } as const;
  // Three ready for a one-vCPU machine: two are spare and must end.
  const ahead = [0, 1, 2].map(startVcpuWorker);
  const ended = ahead.map((worker) => new Promise<number>((resolve) => worker.once('exit', resolve)));
  let output = '';
  const one = await Machine.create({ ...config, cpus: 1 }, { kernel: hello, startedWorkers: ahead, serialOutput: (b) => { output += Buffer.from(b).toString('latin1'); } });
  try {
    await Promise.all(ended.slice(1));
    assert.is((await one.run()).kind, 'reset');
    assert.is(output, 'hello: long mode ok\n');
  } finally {
    await one.close();
  }
  await ended[0];
  // One ready for the smp guest on three vCPUs: two more are started.
  output = '';
  const three = await Machine.create({ ...config, cpus: 3 }, { kernel: new Uint8Array(fs.readFileSync(guest('smp'))), startedWorkers: [startVcpuWorker(0)], serialOutput: (b) => { output += Buffer.from(b).toString('latin1'); } });
  try {
    assert.is((await three.run()).kind, 'reset');
    assert.ok(output.includes('smp: 3 of 3 CPUs online'), output);
  } finally {
    await three.close();
  }
});

test('started workers end when the machine cannot be built', async () => {
  const ahead = [startVcpuWorker(0)];
  const ended = new Promise<number>((resolve) => ahead[0].once('exit', resolve));
  const failure = await Machine.create({ cpus: 1, memoryMiB: 64, bootProtocol: 'linux' }, {
    kernel: new Uint8Array(16), kvmDevice: '/dev/null/no-kvm', startedWorkers: ahead,
  }).then(() => undefined, (error: Error) => error);
  assert.instance(failure, KvmUnavailableError);
  await ended;
});

test.run();

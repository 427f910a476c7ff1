// The exit channel's protocol: sequence numbers, the parked flags, and a real
// cross-thread hand-off (a worker plays the vCPU and blocks in Atomics.wait).

import { Worker } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CHANNEL_SLOT, DOORBELL_SLOT, Doorbell, ExitChannel, MIN_SPIN, NO_INTERRUPT, REQUEST_KIND, waitCounters,
} from '../../../src/shared/exit-channel';
import { DeviceLoop } from '../../../src/main/vmm/device-loop';
import { Bus } from '../../../src/devices/bus/bus';
import { Access, KvmRunView, emptyAccess } from '../../../src/shared/kvm-run';
import { KVM_RUN } from '../../../src/shared/kvm-abi';

/** A one-byte port read whose data is at the start of the page's second half. */
const PORT_READ: Access = { kind: REQUEST_KIND.ioRead, address: 0x3f8, size: 1, count: 1, dataOffset: 4096 };

test('a hand-off is pending for the device side until completed', () => {
  const doorbell = new Doorbell();
  const vcpuSide = new ExitChannel(undefined, doorbell);
  const deviceSide = new ExitChannel(vcpuSide.buffer);
  assert.is(deviceSide.pendingSequence(), undefined);
  const sequence = vcpuSide.handOff(PORT_READ);
  assert.is(sequence, 1);
  assert.is(deviceSide.pendingSequence(), 1);
  assert.is(vcpuSide.isComplete(1), false);
  deviceSide.complete(1);
  assert.is(deviceSide.pendingSequence(), undefined);
  assert.is(vcpuSide.isComplete(1), true);
  assert.is(vcpuSide.handOff(PORT_READ), 2);
  assert.is(Atomics.load(doorbell.words, DOORBELL_SLOT.rings), 0, 'a polling device thread is not rung');
  doorbell.beginPark();
  deviceSide.complete(2);
  vcpuSide.handOff(PORT_READ);
  assert.is(Atomics.load(doorbell.words, DOORBELL_SLOT.rings), 1, 'a parked device thread is rung');
});

test('an INTA request carries its kind there and its vector back', () => {
  const vcpuSide = new ExitChannel();
  const deviceSide = new ExitChannel(vcpuSide.buffer);
  const sequence = vcpuSide.requestInterruptAcknowledge();
  assert.is(deviceSide.requestKind(), REQUEST_KIND.interruptAcknowledge);
  deviceSide.complete(sequence, 0x24);
  assert.ok(vcpuSide.isComplete(sequence));
  assert.is(vcpuSide.result, 0x24);
  vcpuSide.handOff(PORT_READ);
  assert.is(deviceSide.requestKind(), REQUEST_KIND.ioRead, 'an access hand-off carries its access kind');
});

test('the access descriptor crosses the channel whole, addresses above 4 GiB exact', () => {
  const vcpuSide = new ExitChannel();
  const deviceSide = new ExitChannel(vcpuSide.buffer);
  const access: Access = { kind: REQUEST_KIND.mmioWrite, address: 0xff_ffff_f008, size: 8, count: 1, dataOffset: KVM_RUN.mmio_data };
  vcpuSide.handOff(access);
  const seen = emptyAccess();
  deviceSide.readAccess(seen);
  assert.equal(seen, access);
});

test('the device loop serves by the descriptor alone: string I/O element by element, MMIO in place', () => {
  const channel = new ExitChannel();
  const page = new ArrayBuffer(3 * 4096);
  const run = new KvmRunView(page);
  const written: number[] = [];
  const io = new Bus('io');
  io.insert(0x3f8, 1, { name: 'sink', read: (_offset, data) => data.fill(0x5a), write: (_offset, data) => { written.push(data[0]); } });
  const mmio = new Bus('mmio');
  mmio.insert(0xd000_0000, 8, { name: 'regs', read: (offset, data) => data.forEach((_, i) => { data[i] = offset + i + 1; }), write: () => {} });
  const loop = new DeviceLoop(new Doorbell(), [{ channel, run }], { io, mmio, acknowledgeInterrupt: () => undefined, endOfInterrupt: () => {} });
  new Uint8Array(page).set([1, 2, 3], 4096);
  channel.handOff({ kind: REQUEST_KIND.ioWrite, address: 0x3f8, size: 1, count: 3, dataOffset: 4096 });
  loop.serveAll();
  assert.equal(written, [1, 2, 3]);
  channel.handOff({ kind: REQUEST_KIND.mmioRead, address: 0xd000_0004, size: 4, count: 1, dataOffset: KVM_RUN.mmio_data });
  loop.serveAll();
  assert.equal([...new Uint8Array(page, KVM_RUN.mmio_data, 4)], [5, 6, 7, 8]);
});

test('the device loop answers an INTA from the PIC, or NO_INTERRUPT without one', () => {
  const channel = new ExitChannel();
  const run = new KvmRunView(new ArrayBuffer(3 * 4096));
  let acknowledged = 0;
  const withPic = new DeviceLoop(new Doorbell(), [{ channel, run }], {
    io: new Bus('io'), mmio: new Bus('mmio'), acknowledgeInterrupt: () => { acknowledged++; return 0x21; }, endOfInterrupt: () => {},
  });
  let sequence = channel.requestInterruptAcknowledge();
  assert.is(withPic.serveAll(), 1);
  assert.ok(channel.isComplete(sequence));
  assert.is(channel.result, 0x21);
  assert.is(acknowledged, 1);
  const withoutPic = new DeviceLoop(new Doorbell(), [{ channel, run }], { io: new Bus('io'), mmio: new Bus('mmio'), acknowledgeInterrupt: () => undefined, endOfInterrupt: () => {} });
  sequence = channel.requestInterruptAcknowledge();
  withoutPic.serveAll();
  assert.is(channel.result, NO_INTERRUPT);
});

test('sequence numbers stay positive and wrap before 2^30', () => {
  const channel = new ExitChannel();
  Atomics.store(channel.words, CHANNEL_SLOT.requested, 0x3fff_fffe);
  const wrapped = new ExitChannel(channel.buffer);
  assert.is(wrapped.handOff(PORT_READ), 0x3fff_ffff);
  assert.is(wrapped.handOff(PORT_READ), 1);
});

test('a completed hand-off found while spinning counts as a spin hit, not a park', () => {
  const channel = new ExitChannel();
  const sequence = channel.handOff(PORT_READ);
  channel.complete(sequence);
  const counters = waitCounters(100);
  counters.spinBudget = 40;
  channel.waitForCompletion(sequence, 100, counters);
  assert.equal(counters, { spinHits: 1, parks: 0, spinBudget: 80 }, 'a hit doubles the budget');
  channel.complete(channel.handOff(PORT_READ));
  channel.waitForCompletion(2, 100, counters);
  assert.is(counters.spinBudget, 100, 'never above the limit');
});

/**
 * A worker that plays the device thread: it completes each hand-off only once
 * the vCPU side has parked on it. It looks for the pending hand-off before
 * the parked flag, so a flag still set from the previous round (the vCPU may
 * clear it and park again faster than this thread is scheduled) is never
 * mistaken for a park on the new one. A deadline completes the hand-off anyway
 * and reports it, so a protocol bug fails the test instead of hanging it.
 */
function completeWhenParked(channel: ExitChannel, count: number): { worker: Worker; timedOut: Promise<boolean> } {
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { ExitChannel, CHANNEL_SLOT } = require(workerData.module);
    const channel = new ExitChannel(workerData.buffer);
    let timedOut = false;
    for (let done = 0; done < workerData.count; done++) {
      const deadline = Date.now() + 10000;
      for (;;) {
        const sequence = channel.pendingSequence();
        if (sequence !== undefined && Atomics.load(channel.words, CHANNEL_SLOT.vcpuParked) === 1) {
          channel.complete(sequence);
          break;
        }
        if (sequence !== undefined && Date.now() > deadline) {
          timedOut = true;
          channel.complete(sequence);
          break;
        }
      }
    }
    parentPort.postMessage(timedOut);
  `;
  const worker = new Worker(source, {
    eval: true,
    workerData: { buffer: channel.buffer, count, module: require.resolve('../../../src/shared/exit-channel') },
  });
  return { worker, timedOut: new Promise<boolean>((resolve) => worker.once('message', resolve)) };
}

test('a park halves the spin budget, down to a floor', async () => {
  const channel = new ExitChannel();
  const device = completeWhenParked(channel, 2);
  const counters = waitCounters(4000);
  channel.waitForCompletion(channel.handOff(PORT_READ), 4000, counters);
  assert.is(counters.parks, 1);
  assert.is(counters.spinBudget, 2000, 'halved after the park');
  counters.spinBudget = 70;
  channel.waitForCompletion(channel.handOff(PORT_READ), 4000, counters);
  assert.is(counters.spinBudget, MIN_SPIN, 'halving stops at the floor');
  assert.is(await device.timedOut, false, 'the device worker saw each park');
  await device.worker.terminate();
});

test('with the device thread parked the vCPU parks at once instead of spinning', () => {
  const doorbell = new Doorbell();
  doorbell.beginPark();
  const channel = new ExitChannel(undefined, doorbell);
  const sequence = channel.handOff(PORT_READ);
  channel.complete(sequence); // completed already: the park returns at once
  const counters = waitCounters(1_000_000);
  channel.waitForCompletion(sequence, 1_000_000, counters);
  assert.equal(counters, { spinHits: 0, parks: 1, spinBudget: 1_000_000 }, 'no spin, so the budget is kept');
  assert.is(Atomics.load(channel.words, CHANNEL_SLOT.vcpuParked), 0, 'the parked flag is cleared after waking');
});

test('a parked device thread is woken by the doorbell (Atomics.waitAsync)', async () => {
  const doorbell = new Doorbell();
  const seen = doorbell.beginPark();
  const waited = Atomics.waitAsync(doorbell.words, DOORBELL_SLOT.rings, seen, 5000);
  assert.ok(waited.async);
  new ExitChannel(undefined, doorbell).handOff(PORT_READ);
  assert.is(await waited.value, 'ok');
  doorbell.endPark();
  assert.is(doorbell.deviceParked, false);
});

test('cross-thread: a vCPU worker parked in Atomics.wait is woken by complete()', async () => {
  const channel = new ExitChannel();
  // The worker hands off, parks at once (spin limit 0), and reports what it saw.
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { ExitChannel } = require(workerData.module);
    const channel = new ExitChannel(workerData.buffer);
    const counters = { spinHits: 0, parks: 0, spinBudget: 0 };
    const sequence = channel.handOff(workerData.access);
    channel.waitForCompletion(sequence, 0, counters);
    parentPort.postMessage({ sequence, counters });
  `;
  const worker = new Worker(source, {
    eval: true,
    workerData: { buffer: channel.buffer, access: PORT_READ, module: require.resolve('../../../src/shared/exit-channel') },
  });
  const reply = new Promise<{ sequence: number; counters: { parks: number } }>((resolve) => worker.once('message', resolve));
  // Wait until the worker has handed off and is parked, then complete.
  const deadline = Date.now() + 20000;
  while (Atomics.load(channel.words, CHANNEL_SLOT.vcpuParked) !== 1 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.is(Atomics.load(channel.words, CHANNEL_SLOT.vcpuParked), 1, 'the worker parked');
  const sequence = channel.pendingSequence();
  assert.is(sequence, 1);
  channel.complete(sequence!);
  const { counters } = await reply;
  assert.is(counters.parks, 1);
  await worker.terminate();
});

test.run();

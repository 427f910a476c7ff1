// The device loop's park and its two ways out: the doorbell (vCPUs in
// JavaScript) and wake() (the native exit loop's device waker, which cannot
// reach Atomics.waitAsync's waiters).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Bus } from '../../../../src/devices/bus/bus';
import { DeviceLoop } from '../../../../src/main/vmm/device-loop';
import { Doorbell, ExitChannel, REQUEST_KIND } from '../../../../src/shared/exit-channel';
import { KvmRunView } from '../../../../src/shared/kvm-run';

/** Lets queued tasks run (a resolved Atomics.waitAsync resumes the loop from one). */
const turns = () => new Promise((resolve) => setTimeout(resolve, 50));

test('wake() ends a park at once and serves; the park\'s stale doorbell wait does not end the next park', async () => {
  const doorbell = new Doorbell();
  const device = new ExitChannel(undefined, doorbell);
  // A vCPU side that does not ring, as the native loop's hand-offs reach a parked device thread only through wake().
  const vcpu = new ExitChannel(device.buffer);
  const io = new Bus('io');
  const reads: number[] = [];
  io.insert(0x3f8, 1, { name: 'port', read: (_offset, data) => { reads.push(1); data[0] = 0x5a; }, write: () => {} });
  const loop = new DeviceLoop(doorbell, [{ channel: device, run: new KvmRunView(new ArrayBuffer(8192)) }],
    { io, mmio: new Bus('mmio'), acknowledgeInterrupt: () => undefined, endOfInterrupt: () => {} },
    { idleSpinMicros: 0, sliceMicros: 1_000_000, poll: true });
  loop.start();
  await turns();
  assert.is(loop.parks, 1, 'idle: parked');
  const first = vcpu.handOff({ kind: REQUEST_KIND.ioRead, address: 0x3f8, size: 1, count: 1, dataOffset: 4096 });
  await turns();
  assert.not.ok(vcpu.isComplete(first), 'no ring, no wake: still parked');
  loop.wake();
  assert.ok(vcpu.isComplete(first), 'served before wake() returned');
  assert.is(loop.parks, 2, 'and parked again once idle');
  const second = vcpu.handOff({ kind: REQUEST_KIND.ioRead, address: 0x3f8, size: 1, count: 1, dataOffset: 4096 });
  await turns();
  assert.not.ok(vcpu.isComplete(second), 'the first park\'s doorbell wait resolved without ending the second park');
  loop.wake();
  assert.ok(vcpu.isComplete(second));
  assert.is(reads.length, 2);
  loop.stop();
  await turns();
  loop.wake(); // stopped: nothing to end, nothing served
  assert.is(reads.length, 2);
});

test.run();

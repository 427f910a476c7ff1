// How a vCPU in the native exit loop wakes a parked device thread. The device
// thread parks on the doorbell with Atomics.waitAsync, which a raw futex wake
// from C++ cannot reach (V8 keeps its own waiter lists), so the addon gives
// the native loops a waker instead: a threadsafe function on this thread,
// whose call is one event-loop wake-up that runs `wake` here.

import { check, native } from '../../shared/native';

export class DeviceWaker {
  /** What the vCPU workers' native loops ring (a process-wide id). */
  readonly id: number;
  private closed = false;

  constructor(wake: () => void) {
    this.id = check('device waker create', native().deviceWakerCreate(wake));
  }

  /** After every vCPU has stopped; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    check('device waker close', native().deviceWakerClose(this.id));
  }
}

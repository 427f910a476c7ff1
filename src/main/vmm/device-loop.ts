// The device thread's side of the exit channels: it serves the accesses
// vCPU workers hand over, on the main thread, against the I/O and MMIO buses.
//
// While work keeps arriving it polls every channel (a hand-off is then seen
// within a fraction of a microsecond); after `idleSpinMicros` without work it
// parks on the doorbell with Atomics.waitAsync, so an idle guest costs
// nothing. It never blocks the event loop for more than `sliceMicros`: stdin,
// signals, timers and comlink replies still get their turn.

import { performance } from 'node:perf_hooks';
import type { Bus } from '../../devices/bus/bus';
import { DOORBELL_SLOT, Doorbell, ExitChannel, NO_INTERRUPT, REQUEST_KIND } from '../../shared/exit-channel';
import { Access, KvmRunView, emptyAccess } from '../../shared/kvm-run';

export interface ServedVcpu {
  channel: ExitChannel;
  run: KvmRunView;
}

export interface DeviceLoopOptions {
  /** How long to keep polling after the last access before parking. */
  idleSpinMicros: number;
  /** The longest stretch of polling before yielding to the event loop. */
  sliceMicros: number;
  /** Poll and park at all (false when exits arrive by message instead). */
  poll: boolean;
}

/** Empty polls between two looks at the clock while spinning. */
const CLOCK_EVERY_POLLS = 32;

export const DEFAULT_DEVICE_LOOP_OPTIONS: DeviceLoopOptions = {
  idleSpinMicros: 200,
  sliceMicros: 2000,
  poll: true,
};

/** Where served accesses go. */
export interface DeviceTargets {
  io: Bus;
  mmio: Bus;
  /** KVM_EXIT_IOAPIC_EOI: the userspace IOAPIC's EOI input (split irqchip only). */
  endOfInterrupt(vector: number): void;
  /** The userspace PIC's INTA cycle: the vector to inject, or undefined when there is none (split irqchip only). */
  acknowledgeInterrupt(): number | undefined;
}

export class DeviceLoop {
  private running = false;
  private parked = false;
  /** Accesses served, and times the loop parked (for stats). */
  served = 0;
  parks = 0;

  constructor(
    private readonly doorbell: Doorbell,
    private readonly vcpus: ServedVcpu[],
    private readonly targets: DeviceTargets,
    private readonly options: DeviceLoopOptions = DEFAULT_DEVICE_LOOP_OPTIONS,
  ) {}

  start(): void {
    this.running = true;
    if (this.options.poll) setImmediate(() => this.pump());
  }

  stop(): void {
    this.running = false;
    if (this.parked) this.doorbell.wake();
  }

  /** Serves every access waiting in any channel; returns how many. */
  serveAll(): number {
    let count = 0;
    const vcpus = this.vcpus;
    for (let i = 0; i < vcpus.length; i++) {
      const { channel } = vcpus[i];
      const sequence = channel.pendingSequence();
      if (sequence !== undefined) {
        this.serve(vcpus[i], sequence);
        count++;
      }
    }
    this.served += count;
    return count;
  }

  /** Serves vCPU `index`'s access `sequence` (for the message-based hand-offs). */
  serveOne(index: number, sequence: number): void {
    const vcpu = this.vcpus[index];
    if (vcpu.channel.pendingSequence() !== sequence) return;
    this.serve(vcpu, sequence);
    this.served++;
  }

  private serve({ channel, run }: ServedVcpu, sequence: number): void {
    const access = this.access;
    channel.readAccess(access);
    const { io, mmio } = this.targets;
    switch (access.kind) {
      case REQUEST_KIND.ioRead:
      case REQUEST_KIND.ioWrite: {
        const { address, size } = access;
        const end = access.dataOffset + size * access.count;
        // String I/O (rep ins/outs) arrives as one exit with `count` elements.
        for (let offset = access.dataOffset; offset < end; offset += size) {
          if (access.kind === REQUEST_KIND.ioWrite) io.write(address, run.bytesAt(offset, size));
          else io.read(address, run.bytesAt(offset, size));
        }
        break;
      }
      case REQUEST_KIND.mmioRead:
        mmio.read(access.address, run.bytesAt(access.dataOffset, access.size));
        break;
      case REQUEST_KIND.mmioWrite:
        mmio.write(access.address, run.bytesAt(access.dataOffset, access.size));
        break;
      case REQUEST_KIND.eoi:
        this.targets.endOfInterrupt(access.address);
        break;
      case REQUEST_KIND.interruptAcknowledge:
        channel.complete(sequence, this.targets.acknowledgeInterrupt() ?? NO_INTERRUPT);
        return;
    }
    channel.complete(sequence);
  }

  /** The descriptor of the access being served (reused: serving allocates nothing). */
  private readonly access: Access = emptyAccess();

  private pump(): void {
    if (!this.running) return;
    const { idleSpinMicros, sliceMicros } = this.options;
    const sliceStart = performance.now();
    let lastWork = sliceStart;
    let idlePolls = 0;
    for (;;) {
      if (this.serveAll() > 0) {
        lastWork = performance.now();
        idlePolls = 0;
        if (!this.running) return;
        continue;
      }
      // The clock costs ~40 ns, several empty polls: look at it now and then.
      if (++idlePolls % CLOCK_EVERY_POLLS !== 0) continue;
      const now = performance.now();
      if ((now - lastWork) * 1000 > idleSpinMicros) break;
      if ((now - sliceStart) * 1000 > sliceMicros) {
        setImmediate(() => this.pump());
        return;
      }
    }
    this.park();
  }

  private park(): void {
    const seen = this.doorbell.beginPark();
    // Anything handed over between the last poll and beginPark is served now,
    // so the wait below can only miss work that also rings the doorbell.
    if (this.serveAll() > 0) {
      this.doorbell.endPark();
      setImmediate(() => this.pump());
      return;
    }
    this.parked = true;
    this.parks++;
    const park = ++this.parkNumber;
    const waited = Atomics.waitAsync(this.doorbell.words, DOORBELL_SLOT.rings, seen);
    // A park that wake() ended already resolves later, perhaps during a newer park: it must not end that one.
    const resume = () => { if (park === this.parkNumber) this.unpark(); };
    if (waited.async) waited.value.then(resume);
    else setImmediate(resume);
  }

  /** Counts parks, so that a stale doorbell wait cannot end a newer park. */
  private parkNumber = 0;

  /**
   * Ends a park from outside the doorbell: a vCPU in the native exit loop
   * cannot reach Atomics.waitAsync's waiters and calls this through its
   * device waker instead. Does nothing unless parked.
   */
  wake(): void {
    if (!this.parked) return;
    // Resolve the doorbell wait now (it would otherwise wait for the next
    // ring); its resume then sees a newer park number, or no park, and does nothing.
    this.parkNumber++;
    Atomics.notify(this.doorbell.words, DOORBELL_SLOT.rings);
    this.unpark();
  }

  private unpark(): void {
    this.parked = false;
    this.doorbell.endPark();
    this.pump();
  }
}

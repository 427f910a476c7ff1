// The hand-off of an I/O or MMIO exit from a vCPU worker to the device
// thread, through SharedArrayBuffer words and Atomics.
//
// The exit's data is not copied: the device thread has its own view of every
// vCPU's kvm_run page and reads and writes the access's bytes there. The vCPU
// decodes the exit once (kvm-run.ts decodeAccess) and writes the descriptor
// (kind, address, size, count, data offset) into its channel line; the device
// thread dispatches on that alone. Beside it cross a pair of ever-increasing
// sequence numbers per vCPU: `requested` (bumped by the vCPU when its line
// holds an access for the device thread) and `completed` (bumped by the
// device thread when it is done). A vCPU has at most one access in flight, because x86 port
// I/O and MMIO reads are synchronous: the instruction cannot retire before the
// device answers, and running the guest on would reorder its accesses.
//
// Waiting is adaptive: the vCPU spins on `completed` for a bounded number of
// iterations (the device thread answers in well under a microsecond when it is
// awake) and then parks with Atomics.wait; the device thread notifies only a
// vCPU that says it is parked. The device thread, symmetrically, spins for a
// while after its last piece of work and then parks on the shared doorbell
// (Atomics.waitAsync, so its event loop keeps running). On this host a futex
// wake costs ~60 us against ~9 us for the exit itself, so the spin is what
// keeps the forwarded exit close to an inline one; the parking is what keeps
// an idle guest from burning a core.

import { ACCESS_KIND, Access } from './kvm-run';

/** Int32 slots of one vCPU's channel. Each lives on its own 64-byte line so the two sides never share a cache line they write. */
export const CHANNEL_SLOT = {
  /** Sequence number of the last access the vCPU handed over. */
  requested: 0,
  /** What the vCPU asks for (a REQUEST_KIND), written before `requested`. */
  kind: 1,
  /** The access's address (port, guest-physical address, or EOI vector): low and high 32 bits. */
  addressLow: 2,
  addressHigh: 3,
  /** Bytes per element, elements, and where the first one is in the kvm_run mapping. */
  size: 4,
  count: 5,
  dataOffset: 6,
  /** Sequence number of the last access the device thread finished. */
  completed: 16,
  /** The answer to a request that has one (the vector of an INTA), written before `completed`. */
  result: 17,
  /** 1 while the vCPU sleeps in Atomics.wait on `completed`. */
  vcpuParked: 32,
} as const;
const CHANNEL_BYTES = 48 * 4;

/** What a hand-off asks the device thread to do: one of the access kinds, or an INTA cycle. */
export const REQUEST_KIND = {
  ...ACCESS_KIND,
  /** Acknowledge the userspace PIC's interrupt (an INTA cycle); the vector comes back in `result`. */
  interruptAcknowledge: 6,
} as const;

/** The `result` of an INTA when the PIC has nothing to deliver after all. */
export const NO_INTERRUPT = -1;

/** Int32 slots of the doorbell all vCPUs share with the device thread. */
export const DOORBELL_SLOT = {
  /** Bumped on every hand-off; the device thread parks on it. */
  rings: 0,
  /** 1 while the device thread is parked waiting on `rings`. */
  deviceParked: 16,
} as const;
const DOORBELL_BYTES = 32 * 4;

/** Sequence numbers run 1..MAX_SEQUENCE and wrap. */
export const MAX_SEQUENCE = 0x3fff_ffff;

/** How a vCPU waits for the device thread's answer. */
export type WaitStrategy = 'spin-park' | 'park';

/**
 * The most spin iterations before parking; one iteration is an Atomics.load,
 * about 8 ns here, so ~30 us: a device thread that has a core answers in
 * well under a microsecond, and one that has none will not answer sooner.
 */
export const DEFAULT_SPIN_LIMIT = 4_000;
/** The least a vCPU spins once spinning keeps failing: a quick look, then park. */
export const MIN_SPIN = 64;

export class Doorbell {
  readonly words: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(DOORBELL_BYTES)) {
    this.words = new Int32Array(buffer);
  }

  /**
   * vCPU side, after publishing a hand-off: wakes the device thread if it
   * parked. A polling device thread needs nothing, and skipping the atomic
   * add keeps every vCPU off this shared cache line. No wake-up is lost:
   * the vCPU stores `requested` then loads `deviceParked`; the device thread
   * stores `deviceParked` then re-reads every `requested` (beginPark); with
   * sequentially consistent atomics one of them sees the other.
   */
  ring(): void {
    if (Atomics.load(this.words, DOORBELL_SLOT.deviceParked) !== 0) {
      Atomics.add(this.words, DOORBELL_SLOT.rings, 1);
      Atomics.notify(this.words, DOORBELL_SLOT.rings);
    }
  }

  get deviceParked(): boolean {
    return Atomics.load(this.words, DOORBELL_SLOT.deviceParked) !== 0;
  }

  /**
   * Device side: begin parking. Returns the doorbell value to wait on; the
   * caller must re-check every channel after this and before waiting, so an
   * access handed over in between is never slept through.
   */
  beginPark(): number {
    Atomics.store(this.words, DOORBELL_SLOT.deviceParked, 1);
    return Atomics.load(this.words, DOORBELL_SLOT.rings);
  }

  endPark(): void {
    Atomics.store(this.words, DOORBELL_SLOT.deviceParked, 0);
  }

  /** Wake a parked device thread without work (for shutdown). */
  wake(): void {
    Atomics.add(this.words, DOORBELL_SLOT.rings, 1);
    Atomics.notify(this.words, DOORBELL_SLOT.rings);
  }
}

/**
 * What the vCPU side keeps about its waits: the counters the stats path reads
 * and the current spin budget.
 */
export interface WaitCounters {
  spinHits: number;
  parks: number;
  /**
   * Spin iterations to try next time. It adapts like an adaptive mutex: it
   * doubles after an answer found while spinning and halves after a park, so
   * spinning stops when the device thread is off-CPU (more runnable threads
   * than cores) and comes back when it has a core again.
   */
  spinBudget: number;
}

export function waitCounters(spinLimit: number): WaitCounters {
  return { spinHits: 0, parks: 0, spinBudget: spinLimit };
}

/**
 * How the device side wakes a vCPU parked on `completed`. Atomics.notify by
 * default; a vCPU parked in the native exit loop sleeps in a raw futex, which
 * Atomics.notify cannot reach (V8 keeps its own waiter lists), so the device
 * side of such a channel wakes it through the addon instead.
 */
export type VcpuWaker = (words: Int32Array, slot: number) => void;

const notifyVcpu: VcpuWaker = (words, slot) => { Atomics.notify(words, slot); };

export class ExitChannel {
  readonly words: Int32Array;
  /** The same line as unsigned words, for the descriptor's fields. */
  private readonly fields: Uint32Array;

  constructor(
    readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(CHANNEL_BYTES),
    private readonly doorbell?: Doorbell,
    private readonly wakeVcpu: VcpuWaker = notifyVcpu,
  ) {
    this.words = new Int32Array(buffer);
    this.fields = new Uint32Array(buffer);
  }

  // ---- vCPU side -------------------------------------------------------

  /**
   * Hands `access` (its bytes are in kvm_run) to the device thread and
   * returns at once with its sequence number: always positive, wrapping long
   * before 2^31.
   */
  handOff(access: Access): number {
    // Plain stores, published by the atomic store of `requested` in publish().
    const fields = this.fields;
    fields[CHANNEL_SLOT.addressLow] = access.address >>> 0;
    fields[CHANNEL_SLOT.addressHigh] = Math.floor(access.address / 0x1_0000_0000);
    fields[CHANNEL_SLOT.size] = access.size;
    fields[CHANNEL_SLOT.count] = access.count;
    fields[CHANNEL_SLOT.dataOffset] = access.dataOffset;
    return this.publish(access.kind);
  }

  /** Asks the device thread for the userspace PIC's INTA cycle; the vector comes back in `result`. */
  requestInterruptAcknowledge(): number {
    return this.publish(REQUEST_KIND.interruptAcknowledge);
  }

  private publish(kind: number): number {
    // From the word, not a copy: the native exit loop publishes on the same
    // channel. Only the vCPU thread writes it, so a plain read is current.
    const sequence = (this.words[CHANNEL_SLOT.requested] % MAX_SEQUENCE) + 1;
    this.words[CHANNEL_SLOT.kind] = kind; // published by the atomic store of `requested` below
    Atomics.store(this.words, CHANNEL_SLOT.requested, sequence);
    this.doorbell?.ring();
    return sequence;
  }

  /** True once the device thread has finished hand-off `sequence` (one is in flight at a time). */
  isComplete(sequence: number): boolean {
    return Atomics.load(this.words, CHANNEL_SLOT.completed) === sequence;
  }

  /**
   * Blocks the vCPU thread until hand-off `sequence` is complete: spins up to
   * its adaptive budget (at most `spinLimit` loads), then parks. A device thread that was parked when the
   * access was handed over needs a futex wake-up (tens of microseconds) before
   * it can answer, so spinning would be wasted and the vCPU parks at once.
   */
  waitForCompletion(sequence: number, spinLimit: number, counters: WaitCounters): void {
    const words = this.words;
    const deviceAsleep = this.doorbell?.deviceParked ?? false;
    if (!deviceAsleep && spinLimit > 0) {
      const budget = counters.spinBudget;
      for (let i = 0; i < budget; i++) {
        if (Atomics.load(words, CHANNEL_SLOT.completed) === sequence) {
          counters.spinHits++;
          counters.spinBudget = Math.min(spinLimit, budget * 2);
          return;
        }
      }
      counters.spinBudget = Math.max(Math.min(MIN_SPIN, spinLimit), budget >> 1);
    }
    counters.parks++;
    Atomics.store(words, CHANNEL_SLOT.vcpuParked, 1);
    for (;;) {
      const completed = Atomics.load(words, CHANNEL_SLOT.completed);
      if (completed === sequence) break;
      Atomics.wait(words, CHANNEL_SLOT.completed, completed);
    }
    Atomics.store(words, CHANNEL_SLOT.vcpuParked, 0);
  }

  // ---- device side -----------------------------------------------------

  /** Device side: the sequence number of a hand-off not yet served, if any. */
  pendingSequence(): number | undefined {
    const requested = Atomics.load(this.words, CHANNEL_SLOT.requested);
    return requested !== Atomics.load(this.words, CHANNEL_SLOT.completed) ? requested : undefined;
  }

  /** Device side: what hand-off `pendingSequence()` asks for. */
  requestKind(): number {
    return this.words[CHANNEL_SLOT.kind];
  }

  /** Device side: the pending access's descriptor, into `access` (no allocation). */
  readAccess(access: Access): void {
    const fields = this.fields;
    access.kind = fields[CHANNEL_SLOT.kind];
    access.address = fields[CHANNEL_SLOT.addressLow] + fields[CHANNEL_SLOT.addressHigh] * 0x1_0000_0000;
    access.size = fields[CHANNEL_SLOT.size];
    access.count = fields[CHANNEL_SLOT.count];
    access.dataOffset = fields[CHANNEL_SLOT.dataOffset];
  }

  /** The answer of the last completed request (read after isComplete / waitForCompletion). */
  get result(): number {
    return this.words[CHANNEL_SLOT.result];
  }

  /** Device side: hand-off `sequence` is done, with an optional answer; wake the vCPU if it sleeps. */
  complete(sequence: number, result = 0): void {
    this.words[CHANNEL_SLOT.result] = result; // published by the atomic store of `completed` below
    Atomics.store(this.words, CHANNEL_SLOT.completed, sequence);
    if (Atomics.load(this.words, CHANNEL_SLOT.vcpuParked) !== 0) {
      this.wakeVcpu(this.words, CHANNEL_SLOT.completed);
    }
  }
}

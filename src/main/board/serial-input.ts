// Host input on its way into COM1's receive FIFO: held here until the guest
// is ready for it, delivered no faster than the UART's line rate to a guest
// that takes it by interrupt, and bounded, so a host that writes faster than
// the guest reads is told to stop.

/** What the queue needs of the UART (Serial has all of it). */
export interface SerialReceiver {
  /** Offers bytes to the receive FIFO; returns how many leading bytes it took. */
  enqueueInput(bytes: Uint8Array): number;
  /** The guest is ready for input (it enabled the received-data interrupt or read LSR since the last receive-FIFO clear). */
  readonly inputReady: boolean;
  /** The guest takes input by the received-data interrupt, not by polling. */
  readonly receiveInterruptEnabled: boolean;
  /** The programmed line rate, in characters per second. */
  readonly charactersPerSecond: number;
  /** A count of the guest's register accesses (any wrapping counter): when it moves, the guest is busy with the UART. */
  readonly accessCount: number;
}

/** The queue's only clock: a monotonic time in ms and a one-shot timer. Tests pass a fake. */
export interface InputTimer {
  now(): number;
  later(callback: () => void, ms: number): { cancel(): void };
}

const realTimer: InputTimer = {
  now: () => performance.now(),
  later: (callback, ms) => {
    const timer = setTimeout(callback, ms);
    timer.unref(); // held-back input alone does not keep tsvmm alive
    return { cancel: () => clearTimeout(timer) };
  },
};

/** The most host input held (64 KiB); push() returns false at or above it. */
const SERIAL_INPUT_LIMIT = 64 * 1024;
/** How soon input the UART could not take (not ready, full FIFO not drained by a read) is offered again. */
const INPUT_RETRY_MS = 5;
/** The shortest pause between two paced deliveries. */
const PACE_TICK_MS = 2;
/**
 * The most characters one paced delivery carries after the line was idle (a
 * 16550A's FIFO), or one tick's worth at the line rate when that is more.
 */
export const PACE_BURST = 16;
/** The longest a paced delivery waits for a guest that keeps using the UART; then it goes anyway. */
export const BUSY_WAIT_LIMIT_MS = 200;

export interface SerialInputOptions {
  /** The bound on held input in bytes (default SERIAL_INPUT_LIMIT). */
  limit?: number;
  timer?: InputTimer;
}

/**
 * Host input waiting for COM1's receive FIFO.
 *
 * - **Readiness:** nothing is offered until the UART says the guest is
 *   ready (`inputReady`), so input piped before the guest programs the UART
 *   is not discarded by its first FIFO clear.
 * - **Pacing:** to a guest that takes input by the received-data interrupt,
 *   input goes on timer ticks, no faster than the programmed line rate and
 *   never from inside the guest's read that emptied the FIFO: a refill there
 *   keeps the handler's `while (LSR.DR) read` loop reading until this queue
 *   is empty, overflowing the guest's own buffer. And a tick delivers only
 *   when the guest has not touched the UART since the previous tick (or
 *   after BUSY_WAIT_LIMIT_MS of that, so a chatty guest still gets input): a
 *   guest reads and echoes what it got before more comes, like a terminal's
 *   "wait for echo" paste. The line rate alone is not enough: each UART
 *   access is a VM exit of tens of microseconds (50 us measured on a loaded
 *   host), so a guest that reads a byte with two exits (LSR, RBR) can barely
 *   keep up with 115200 baud in its interrupt handler, its main loop starves,
 *   and its buffer overflows.
 *   A polling guest (receive interrupt off) is refilled as soon as its read
 *   empties the FIFO: it reads only when it wants to, and so gets bulk input
 *   at the speed of its reads.
 * - **Bound:** push() returns false once `limit` bytes or more are held; the
 *   bytes are still kept. When the queue is back down to half the limit,
 *   every onSpace callback runs. A caller that ignores false is not stopped.
 */
export class SerialInputQueue {
  private chunks: Uint8Array[] = [];
  private held = 0;
  private timer?: { cancel(): void };
  private full = false;
  private readonly spaceListeners = new Set<() => void>();
  /** Paced mode: characters the line has carried but not yet delivered, and when that was last counted. */
  private credit = 0;
  private creditAt?: number;
  /** Paced mode: the guest's UART access count at the previous tick, and since when it has kept moving. */
  private lastAccesses?: number;
  private busySince?: number;
  private readonly limit: number;
  private readonly clock: InputTimer;

  /** `receiver` gives the UART (undefined while the board is not built yet). */
  constructor(private readonly receiver: () => SerialReceiver | undefined, options: SerialInputOptions = {}) {
    this.limit = options.limit ?? SERIAL_INPUT_LIMIT;
    this.clock = options.timer ?? realTimer;
  }

  /** Bytes held, not yet in the UART. */
  get pending(): number {
    return this.held;
  }

  /** A copy of the bytes held, in order (what a snapshot keeps; a restore push()es them again). */
  heldBytes(): Uint8Array {
    return Buffer.concat(this.chunks, this.held);
  }

  /** Queues host input; false when the queue is at or above its bound (stop, and wait for onSpace). */
  push(bytes: Uint8Array): boolean {
    if (bytes.length > 0) {
      this.chunks.push(bytes);
      this.held += bytes.length;
      this.feed();
    }
    if (this.held >= this.limit) this.full = true;
    return !this.full;
  }

  /** Calls `callback` each time the queue has room again after push() returned false; returns a remover. */
  onSpace(callback: () => void): () => void {
    this.spaceListeners.add(callback);
    return () => { this.spaceListeners.delete(callback); };
  }

  /**
   * The UART may take more (a read emptied its FIFO, the guest became
   * ready) or new input arrived: a polling guest gets what fits now; a paced
   * guest's next tick is scheduled.
   */
  feed(): void {
    if (this.held === 0) return;
    const uart = this.receiver();
    if (!uart) return;
    if (uart.inputReady && !uart.receiveInterruptEnabled) {
      this.creditAt = undefined;
      this.deliver(uart, Infinity);
      if (this.held > 0) this.schedule(INPUT_RETRY_MS); // a guest that clears its FIFO instead of reading it
      return;
    }
    this.schedule(uart.inputReady ? 0 : INPUT_RETRY_MS);
  }

  dispose(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.chunks = [];
    this.held = 0;
    this.spaceListeners.clear();
  }

  private schedule(ms: number): void {
    this.timer ??= this.clock.later(() => { this.timer = undefined; this.tick(); }, ms);
  }

  private tick(): void {
    if (this.held === 0) return;
    const uart = this.receiver();
    if (!uart) return;
    if (!uart.inputReady || !uart.receiveInterruptEnabled) {
      this.feed();
      return;
    }
    const now = this.clock.now();
    const perMs = uart.charactersPerSecond / 1000;
    const nextTickMs = Math.max(PACE_TICK_MS, Math.ceil(1 / perMs));
    if (this.creditAt === undefined) {
      this.credit = 0; // the line starts now
      this.lastAccesses = undefined;
      this.busySince = undefined;
    } else {
      this.credit = Math.min(Math.max(PACE_BURST, Math.ceil(perMs * nextTickMs)), this.credit + (now - this.creditAt) * perMs);
    }
    this.creditAt = now;
    const accesses = uart.accessCount;
    const busy = this.lastAccesses !== undefined && accesses !== this.lastAccesses;
    this.lastAccesses = accesses;
    if (busy) {
      this.busySince ??= now;
      if (now - this.busySince < BUSY_WAIT_LIMIT_MS) {
        this.schedule(nextTickMs);
        return;
      }
    }
    this.busySince = undefined;
    this.credit -= this.deliver(uart, Math.floor(this.credit));
    if (this.held > 0) this.schedule(nextTickMs);
  }

  /** Offers up to `most` bytes, in order; returns how many the UART took. */
  private deliver(uart: SerialReceiver, most: number): number {
    let delivered = 0;
    while (this.chunks.length > 0 && delivered < most) {
      const next = this.chunks[0];
      const offer = most - delivered < next.length ? next.subarray(0, most - delivered) : next;
      const accepted = uart.enqueueInput(offer);
      delivered += accepted;
      if (accepted < next.length) {
        this.chunks[0] = next.subarray(accepted);
        if (accepted < offer.length) break; // the FIFO is full
      } else {
        this.chunks.shift();
      }
    }
    this.held -= delivered;
    if (this.full && this.held <= this.limit / 2) {
      this.full = false;
      for (const listener of [...this.spaceListeners]) listener();
    }
    return delivered;
  }
}

// Host input on its way into COM1's receive FIFO: held here while the FIFO
// is full, offered again when the guest reads it empty or after a short delay.

/** How soon to offer COM1 host input again when its FIFO was full. */
const INPUT_RETRY_MS = 5;

function retryAfterDelay(callback: () => void): { cancel(): void } {
  const timer = setTimeout(callback, INPUT_RETRY_MS);
  timer.unref(); // held-back input alone does not keep tsvmm alive
  return { cancel: () => clearTimeout(timer) };
}

/**
 * Host input waiting for COM1's receive FIFO. What the FIFO cannot take now
 * is offered again when the guest reads it empty (feed), and after a short
 * delay too, for a guest that clears its FIFO instead of reading it.
 */
export class SerialInputQueue {
  private pending: Uint8Array[] = [];
  private retry?: { cancel(): void };

  /**
   * `accept` offers bytes to the UART and returns how many it took;
   * `later` runs a callback after a short delay (a timer, or a test's hand).
   */
  constructor(
    private readonly accept: (bytes: Uint8Array) => number,
    private readonly later: (callback: () => void) => { cancel(): void } = retryAfterDelay,
  ) {}

  push(bytes: Uint8Array): void {
    this.pending.push(bytes);
    this.feed();
  }

  feed(): void {
    while (this.pending.length > 0) {
      const next = this.pending[0];
      const accepted = this.accept(next);
      if (accepted < next.length) {
        this.pending[0] = next.subarray(accepted);
        this.retry ??= this.later(() => { this.retry = undefined; this.feed(); });
        return;
      }
      this.pending.shift();
    }
  }

  dispose(): void {
    this.retry?.cancel();
    this.retry = undefined;
    this.pending = [];
  }
}

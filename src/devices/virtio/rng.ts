// virtio-rng (entropy device, virtio 1.2 section 5.4): one queue of
// device-writable buffers that the device fills with random bytes. The
// source is injected (the host's /dev/urandom in tsvmm, a counter in tests).

import { VirtioBackend, VirtioContext, isChainError } from './pci-transport';

const VIRTIO_ID_ENTROPY = 4;
/** PCI class "other system peripheral" (0x08, 0x80), as crosvm gives its rng. */
const PCI_CLASS_SYSTEM_PERIPHERAL: readonly [number, number] = [0x08, 0x80];
/** The most one request gets: a guest asking for more gets what fits (the spec lets the device write less). */
const MAX_BYTES_PER_REQUEST = 64 * 1024;

export class VirtioRng implements VirtioBackend {
  readonly type = VIRTIO_ID_ENTROPY;
  readonly name = 'rng';
  readonly queueSizes = [256];
  readonly pciClass = PCI_CLASS_SYSTEM_PERIPHERAL;
  readonly features = 0n;
  readonly configSize = 0;
  private context?: VirtioContext;
  /** Bytes handed to the guest. */
  bytesServed = 0;

  constructor(private readonly fill: (into: Uint8Array) => void) {}

  readConfig(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  activate(context: VirtioContext): void {
    this.context = context;
    this.queueNotified(0);
  }

  queueNotified(index: number): void {
    const context = this.context;
    if (!context || index !== 0) return;
    const queue = context.queues[0];
    let interrupt = false;
    for (;;) {
      let chain;
      try {
        chain = queue.pop(context.memory, context.queueFeatures);
      } catch (error) {
        if (!isChainError(error)) throw error;
        context.needsReset(`a malformed request: ${error.message}`);
        return;
      }
      if (!chain) break;
      let written = 0;
      for (const buffer of chain.buffers) {
        if (!buffer.writable || written >= MAX_BYTES_PER_REQUEST) continue;
        const length = Math.min(buffer.length, MAX_BYTES_PER_REQUEST - written);
        this.fill(context.memory.slice(buffer.address, length));
        written += length;
      }
      this.bytesServed += written;
      interrupt = queue.push(context.memory, chain.head, written, context.queueFeatures) || interrupt;
    }
    if (interrupt) context.interruptQueue(0);
  }

  reset(): void {
    this.context = undefined;
  }
}

// virtio-console with one port (virtio 1.2 section 5.3), without
// VIRTIO_CONSOLE_F_MULTIPORT: queue 0 receives (host to guest), queue 1
// transmits (guest to host). Host input waits, bounded, until the guest
// posts receive buffers; output goes to an injected sink.

import { StateFields, boundedBytesField, checkFields, loadFields, saveFields } from '../snapshot';
import { VirtioBackend, VirtioBackendState, VirtioContext, isChainError } from './pci-transport';
import type { DescriptorChain } from './queue';

const VIRTIO_ID_CONSOLE = 3;
/** PCI class "simple communication controller, other" (0x07, 0x80), as crosvm gives its console. */
const PCI_CLASS_COMMUNICATION: readonly [number, number] = [0x07, 0x80];
const RECEIVE_QUEUE = 0;
const TRANSMIT_QUEUE = 1;
/** Host input held while the guest has no receive buffer; past this, input is refused (the host stops reading). */
const CONSOLE_INPUT_LIMIT = 64 * 1024;
/** The most one transmit buffer may carry to the sink (a guest cannot make the host copy more at once). */
const MAX_TRANSMIT_BYTES = 64 * 1024;

/** What a snapshot keeps of the console beyond its queues: host input the guest had not taken yet, base64. */
export interface VirtioConsoleState {
  pendingInput: string;
}

const CONSOLE_STATE_FIELDS: StateFields<{ pendingInput: Uint8Array }, VirtioConsoleState> = {
  pendingInput: boundedBytesField(CONSOLE_INPUT_LIMIT),
};

export class VirtioConsole implements VirtioBackend {
  readonly type = VIRTIO_ID_CONSOLE;
  readonly name = 'console';
  readonly queueSizes = [256, 256];
  readonly pciClass = PCI_CLASS_COMMUNICATION;
  readonly features = 0n;
  /** cols, rows, max_nr_ports, emerg_wr: valid only with features tsvmm does not offer; they read as zero. */
  readonly configSize = 12;
  private context?: VirtioContext;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** A sendInput call took less than it was given: say so to the space listeners once the guest has read. */
  private inputRefused = false;
  private readonly spaceListeners = new Set<() => void>();
  readonly counters = { transmitted: 0, received: 0 };

  constructor(private readonly output: (bytes: Uint8Array) => void) {}

  readonly state: VirtioBackendState<VirtioConsoleState> = {
    save: () => saveFields({ pendingInput: Buffer.concat(this.pending, this.pendingBytes) }, CONSOLE_STATE_FIELDS),
    check: (state, path) => checkFields(state, CONSOLE_STATE_FIELDS, path),
    load: (state) => {
      const live = { pendingInput: new Uint8Array(0) };
      loadFields(live, state, CONSOLE_STATE_FIELDS);
      this.pending = live.pendingInput.length > 0 ? [live.pendingInput] : [];
      this.pendingBytes = live.pendingInput.length;
    },
  };

  readConfig(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  activate(context: VirtioContext): void {
    this.context = context;
    this.queueNotified(TRANSMIT_QUEUE);
    this.deliverInput();
  }

  reset(): void {
    this.context = undefined;
  }

  /** Host input for the guest; returns how many bytes were taken (fewer once the holding area is full). */
  sendInput(bytes: Uint8Array): number {
    const room = CONSOLE_INPUT_LIMIT - this.pendingBytes;
    const taken = Math.min(room, bytes.length);
    if (taken > 0) {
      this.pending.push(bytes.slice(0, taken));
      this.pendingBytes += taken;
      this.deliverInput();
    }
    if (taken < bytes.length) this.inputRefused = true;
    return taken;
  }

  /** Calls `callback` each time the guest made room after a sendInput that took less than it was given; returns a remover. */
  onInputSpace(callback: () => void): () => void {
    this.spaceListeners.add(callback);
    return () => this.spaceListeners.delete(callback);
  }

  queueNotified(index: number): void {
    if (index === RECEIVE_QUEUE) this.deliverInput();
    else if (index === TRANSMIT_QUEUE) this.transmit();
  }

  private transmit(): void {
    const context = this.context;
    if (!context) return;
    const queue = context.queues[TRANSMIT_QUEUE];
    let interrupt = false;
    for (;;) {
      const chain = this.pop(context, TRANSMIT_QUEUE);
      if (!chain) break;
      let sent = 0;
      for (const buffer of chain.buffers) {
        if (buffer.writable || sent >= MAX_TRANSMIT_BYTES) continue;
        const length = Math.min(buffer.length, MAX_TRANSMIT_BYTES - sent);
        this.output(context.memory.slice(buffer.address, length).slice());
        sent += length;
      }
      this.counters.transmitted += sent;
      interrupt = queue.push(context.memory, chain.head, 0, context.queueFeatures) || interrupt;
    }
    if (interrupt) context.interruptQueue(TRANSMIT_QUEUE);
  }

  private deliverInput(): void {
    const context = this.context;
    if (!context || this.pendingBytes === 0) return;
    const queue = context.queues[RECEIVE_QUEUE];
    let interrupt = false;
    while (this.pendingBytes > 0) {
      const chain = this.pop(context, RECEIVE_QUEUE);
      if (!chain) break;
      let written = 0;
      for (const buffer of chain.buffers) {
        if (!buffer.writable) continue;
        let room = buffer.length;
        while (room > 0 && this.pending.length > 0) {
          const next = this.pending[0];
          const take = Math.min(room, next.length);
          context.memory.slice(buffer.address + (buffer.length - room), take).set(next.subarray(0, take));
          room -= take;
          written += take;
          if (take === next.length) this.pending.shift();
          else this.pending[0] = next.subarray(take);
        }
      }
      this.pendingBytes -= written;
      this.counters.received += written;
      interrupt = queue.push(context.memory, chain.head, written, context.queueFeatures) || interrupt;
    }
    if (interrupt) context.interruptQueue(RECEIVE_QUEUE);
    if (this.inputRefused && this.pendingBytes < CONSOLE_INPUT_LIMIT) {
      this.inputRefused = false;
      for (const listener of [...this.spaceListeners]) listener();
    }
  }

  private pop(context: VirtioContext, index: number): DescriptorChain | undefined {
    try {
      return context.queues[index].pop(context.memory, context.queueFeatures);
    } catch (error) {
      if (!isChainError(error)) throw error;
      context.needsReset(`a malformed ${index === RECEIVE_QUEUE ? 'receive' : 'transmit'} chain: ${error.message}`);
      return undefined;
    }
  }
}

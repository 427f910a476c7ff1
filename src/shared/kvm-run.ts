// Typed access to one vCPU's struct kvm_run page. Both the vCPU worker (to
// classify an exit) and the device thread (to serve a forwarded access) read
// it through their own view of the same mapping.

import { IO_DIRECTION_OUT, KVM_RUN } from './kvm-abi';

export class KvmRunView {
  readonly bytes: Uint8Array;
  readonly data: DataView;

  /** Views handed out by bytesAt, by (offset, length): exits reuse the same few. */
  private readonly views = new Map<number, Uint8Array>();

  constructor(readonly buffer: ArrayBuffer) {
    this.bytes = new Uint8Array(buffer);
    this.data = new DataView(buffer);
  }

  /**
   * A view of `length` bytes at `offset` in the page. Cached, because a
   * typed-array allocation per exit is a measurable part of the exit path
   * and the same few (offset, length) pairs come back every time.
   */
  bytesAt(offset: number, length: number): Uint8Array {
    const key = offset * 0x10000 + length;
    let view = this.views.get(key);
    if (view === undefined) {
      view = new Uint8Array(this.buffer, offset, length);
      this.views.set(key, view);
    }
    return view;
  }

  /**
   * A u64 field whose value fits in a double (offsets, guest addresses):
   * two u32 reads, because getBigUint64 allocates a BigInt on every exit.
   */
  private u64(offset: number): number {
    return this.data.getUint32(offset, true) + this.data.getUint32(offset + 4, true) * 0x1_0000_0000;
  }

  /** Where the data of a port access starts inside the mapping. */
  get ioDataOffset(): number { return this.u64(KVM_RUN.io_data_offset); }

  get exitReason(): number { return this.data.getUint32(KVM_RUN.exit_reason, true); }

  set immediateExit(on: boolean) { this.bytes[KVM_RUN.immediate_exit] = on ? 1 : 0; }
  get immediateExit(): boolean { return this.bytes[KVM_RUN.immediate_exit] !== 0; }
  /**
   * Clears immediate_exit with a full fence (an atomic store), so that a
   * load that follows cannot be answered before the clear is visible.
   */
  clearImmediateExit(): void { Atomics.store(this.bytes, KVM_RUN.immediate_exit, 0); }

  // Interrupt injection by userspace (a userspace PIC with the split irqchip)
  set requestInterruptWindow(on: boolean) { this.bytes[KVM_RUN.request_interrupt_window] = on ? 1 : 0; }
  get readyForInterruptInjection(): boolean { return this.bytes[KVM_RUN.ready_for_interrupt_injection] !== 0; }
  get interruptsEnabled(): boolean { return this.bytes[KVM_RUN.if_flag] !== 0; }

  // KVM_EXIT_IO
  get ioIsWrite(): boolean { return this.bytes[KVM_RUN.io_direction] === IO_DIRECTION_OUT; }
  get ioSize(): number { return this.bytes[KVM_RUN.io_size]; }
  get ioPort(): number { return this.data.getUint16(KVM_RUN.io_port, true); }
  get ioCount(): number { return this.data.getUint32(KVM_RUN.io_count, true); }

  // KVM_EXIT_MMIO
  get mmioAddress(): number { return this.u64(KVM_RUN.mmio_phys_addr); }
  get mmioLength(): number { return this.data.getUint32(KVM_RUN.mmio_len, true); }
  get mmioIsWrite(): boolean { return this.bytes[KVM_RUN.mmio_is_write] !== 0; }
  mmioData(): Uint8Array { return this.bytesAt(KVM_RUN.mmio_data, this.mmioLength); }

  // KVM_EXIT_INTERNAL_ERROR
  get internalSuberror(): number { return this.data.getUint32(KVM_RUN.internal_suberror, true); }
  get internalNdata(): number { return this.data.getUint32(KVM_RUN.internal_ndata, true); }
  internalData(): bigint[] {
    const count = Math.min(this.internalNdata, 16);
    return Array.from({ length: count }, (_, i) => this.data.getBigUint64(KVM_RUN.internal_data + i * 8, true));
  }

  // KVM_EXIT_FAIL_ENTRY
  get failEntryReason(): bigint { return this.data.getBigUint64(KVM_RUN.fail_entry_reason, true); }

  // KVM_EXIT_IOAPIC_EOI (split irqchip: the guest ended a level-triggered interrupt)
  get eoiVector(): number { return this.bytes[KVM_RUN.eoi_vector]; }

  // KVM_EXIT_SYSTEM_EVENT
  get systemEventType(): number { return this.data.getUint32(KVM_RUN.system_event_type, true); }
}

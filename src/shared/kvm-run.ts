// Typed access to one vCPU's struct kvm_run page. Both the vCPU worker (to
// classify an exit) and the device thread (to serve a forwarded access) read
// it through their own view of the same mapping.

import { EXIT, IO_DIRECTION_OUT, KVM_RUN } from './kvm-abi';

const EXIT_IO = EXIT.IO;
const EXIT_MMIO = EXIT.MMIO;
const EXIT_IOAPIC_EOI = EXIT.IOAPIC_EOI;

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

  // KVM_EXIT_INTERNAL_ERROR
  get internalSuberror(): number { return this.data.getUint32(KVM_RUN.internal_suberror, true); }
  get internalNdata(): number { return this.data.getUint32(KVM_RUN.internal_ndata, true); }
  internalData(): bigint[] {
    const count = Math.min(this.internalNdata, 16);
    return Array.from({ length: count }, (_, i) => this.data.getBigUint64(KVM_RUN.internal_data + i * 8, true));
  }

  // KVM_EXIT_FAIL_ENTRY
  get failEntryReason(): bigint { return this.data.getBigUint64(KVM_RUN.fail_entry_reason, true); }

  // KVM_EXIT_SYSTEM_EVENT
  get systemEventType(): number { return this.data.getUint32(KVM_RUN.system_event_type, true); }
}

/** What a forwarded access is, as the vCPU decodes it once and the device thread dispatches on it. */
export const ACCESS_KIND = {
  /** Not an access: an exit the vCPU handles itself. */
  none: 0,
  ioRead: 1,
  ioWrite: 2,
  mmioRead: 3,
  mmioWrite: 4,
  /** KVM_EXIT_IOAPIC_EOI: `address` holds the vector (split irqchip). */
  eoi: 5,
} as const;

/**
 * One access, decoded from kvm_run: reused by its owner for every exit, so
 * decoding allocates nothing. `dataOffset` is where its bytes are in the
 * kvm_run mapping; `count` elements of `size` bytes (string I/O has several).
 */
export interface Access {
  kind: number;
  address: number;
  size: number;
  count: number;
  dataOffset: number;
}

export function emptyAccess(): Access {
  return { kind: ACCESS_KIND.none, address: 0, size: 0, count: 0, dataOffset: 0 };
}

/**
 * Decodes the I/O, MMIO or IOAPIC EOI exit in a kvm_run page into `access`:
 * its kind and address only (kind none for any other exit), which is all an
 * unclaimed write needs. decodeAccessData adds size, count and data offset,
 * for an access that is forwarded or read. Fields are read straight from the
 * page: this runs on every exit, and under PVM each field, object or page
 * touched after the world switch costs cycles.
 */
export function decodeAccess(bytes: Uint8Array, data: DataView, access: Access): void {
  const reason = data.getUint32(KVM_RUN.exit_reason, true);
  if (reason === EXIT_IO) {
    access.kind = bytes[KVM_RUN.io_direction] === IO_DIRECTION_OUT ? ACCESS_KIND.ioWrite : ACCESS_KIND.ioRead;
    access.address = data.getUint16(KVM_RUN.io_port, true);
  } else if (reason === EXIT_MMIO) {
    access.kind = bytes[KVM_RUN.mmio_is_write] !== 0 ? ACCESS_KIND.mmioWrite : ACCESS_KIND.mmioRead;
    access.address = data.getUint32(KVM_RUN.mmio_phys_addr, true) + data.getUint32(KVM_RUN.mmio_phys_addr + 4, true) * 0x1_0000_0000;
  } else if (reason === EXIT_IOAPIC_EOI) {
    access.kind = ACCESS_KIND.eoi;
    access.address = bytes[KVM_RUN.eoi_vector];
  } else {
    access.kind = ACCESS_KIND.none;
  }
}

/** The rest of an access decodeAccess found: size, count and where its data is in the page. */
export function decodeAccessData(bytes: Uint8Array, data: DataView, access: Access): void {
  const kind = access.kind;
  if (kind === ACCESS_KIND.ioRead || kind === ACCESS_KIND.ioWrite) {
    access.size = bytes[KVM_RUN.io_size];
    access.count = data.getUint32(KVM_RUN.io_count, true);
    access.dataOffset = data.getUint32(KVM_RUN.io_data_offset, true) + data.getUint32(KVM_RUN.io_data_offset + 4, true) * 0x1_0000_0000;
  } else if (kind === ACCESS_KIND.mmioRead || kind === ACCESS_KIND.mmioWrite) {
    access.size = data.getUint32(KVM_RUN.mmio_len, true);
    access.count = 1;
    access.dataOffset = KVM_RUN.mmio_data;
  } else {
    access.size = 0;
    access.count = 0;
    access.dataOffset = 0;
  }
}

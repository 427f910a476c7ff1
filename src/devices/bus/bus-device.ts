// The contracts between tsvmm's buses and its device models. A device model
// sees only offsets from its own base and byte buffers: it knows nothing of
// KVM, vCPU threads or where the access came from.

/**
 * A device that claims a range of I/O ports or MMIO addresses on a Bus.
 * Offsets are relative to the base the device was inserted at.
 */
export interface BusDevice {
  readonly name: string;
  /** Fill data (its length is the access width: 1, 2, 4 or 8) with the value at `offset` from the device's base. */
  read(offset: number, data: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
}

/**
 * A device made of byte-wide registers (UART, CMOS, i8042, PIT). It never
 * sees a wider access: ByteWidthAdapter (width-adapter.ts) turns it into a
 * BusDevice and rejects the rest, so the models stay simple.
 */
export interface ByteRegisterDevice {
  readonly name: string;
  /** The register at `offset` from the device's base, 0..255. */
  readRegister(offset: number): number;
  /** `value` is 0..255. */
  writeRegister(offset: number, value: number): void;
}

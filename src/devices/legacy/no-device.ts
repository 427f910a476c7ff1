// Claimed-but-empty port ranges. Linux touches a few legacy ports that no
// tsvmm device implements; claiming them keeps those accesses off the
// "unclaimed" counters and answers reads the way crosvm does.
//
// Followed: crosvm x86_64/src/lib.rs, setup_io_bus() (before the 2022
// refactor that moved the PIT into the irqchip):
//   io_bus.insert(nul_device.clone(), 0x040, 0x8).unwrap(); // ignore pit
//   io_bus.insert(nul_device.clone(), 0x0ed, 0x1).unwrap(); // most likely this one does nothing
//   io_bus.insert(nul_device.clone(), 0x0f0, 0x2).unwrap(); // ignore fpu
//   io_bus.insert(nul_device, 0xcf8, 0x8).unwrap();          // ignore pci (only when there is no PCI root)
// crosvm's NoDevice keeps BusDevice's default read, which leaves the buffer
// untouched; crosvm zeroes that buffer before dispatch, so reads are 0.

import { BusDevice } from '../bus/bus-device';

/** A range that ignores writes and reads as zero at any width. */
export class NoDevice implements BusDevice {
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  write(_offset: number, _data: Uint8Array): void {
    // Deliberately ignored: nothing is behind these ports.
  }
}

/** A port range crosvm claims with its NoDevice. */
export interface NullPortRange {
  name: string;
  base: number;
  length: number;
}

/** The PIT's ports when KVM's in-kernel PIT serves them (crosvm: 0x40, length 8, "ignore pit"). */
export const PIT_NULL_PORTS: NullPortRange = { name: 'pit (in kernel)', base: 0x40, length: 8 };
/** The POST code / I/O delay port Linux writes to slow down port I/O (crosvm: 0xed, length 1). */
export const IO_DELAY_NULL_PORTS: NullPortRange = { name: 'io-delay', base: 0xed, length: 1 };
/** The FPU error ports (clear busy / reset coprocessor) (crosvm: 0xf0, length 2). */
export const FPU_NULL_PORTS: NullPortRange = { name: 'fpu', base: 0xf0, length: 2 };
/** PCI configuration mechanism #1, for a machine without a PCI root (crosvm: 0xcf8, length 8). */
export const PCI_CONFIG_NULL_PORTS: NullPortRange = { name: 'pci config (absent)', base: 0xcf8, length: 8 };

/** The ranges tsvmm claims with a NoDevice on every machine (PIT and PCI ranges depend on the configuration). */
export const ALWAYS_NULL_PORTS: readonly NullPortRange[] = [IO_DELAY_NULL_PORTS, FPU_NULL_PORTS];

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

// The PIIX3 south bridge's parts that firmware touches (QEMU's hw/isa/piix.c,
// the chip of -M pc): the PCI-to-ISA bridge function 8086:7000 at 00:01.0,
// where SeaBIOS programs the PIRQ routing registers (0x60-0x63), and the
// reset control register at port 0xcf9, where SeaBIOS's reset() and GRUB's
// reboot end (writing 0x02 then 0x06).

import { ByteRegisterDevice } from '../bus/bus-device';
import { PciConfigSpace, PciFunction } from './config-space';

/** The first byte past the type-0 header; the chipset's own registers start here. */
const DEVICE_REGISTERS_START = 0x40;
const DEVICE_REGISTERS_LENGTH = 0x100 - DEVICE_REGISTERS_START;
/** PIRQA..PIRQD route control: bit 7 set means "not routed", the value after reset. */
const PIRQ_ROUTE_START = 0x60;
const PIRQ_COUNT = 4;
const PIRQ_NOT_ROUTED = 0x80;

/**
 * The ISA bridge function. Its device registers read back what the guest
 * wrote, as in QEMU. The PIRQ routes are recorded but do not steer
 * interrupts: each PCI device's INTx stays on the GSI tsvmm gave it.
 */
export class Piix3IsaBridge implements PciFunction {
  readonly name = 'piix3-isa';
  readonly config = new PciConfigSpace({
    vendorId: 0x8086, deviceId: 0x7000, classCode: 0x06, subclass: 0x01, subsystemVendorId: 0x1af4, subsystemId: 0x1100, multiFunction: true,
  });

  constructor() {
    this.config.allowWrites(DEVICE_REGISTERS_START, DEVICE_REGISTERS_LENGTH);
    for (let i = 0; i < PIRQ_COUNT; i++) this.config.setByte(PIRQ_ROUTE_START + i, PIRQ_NOT_ROUTED);
  }

  barRegion(): undefined {
    return undefined;
  }
}

/** Bit 1: the reset a bit-2 write asks for is a hard one (recorded only: every reset ends the VM). */
const RESET_HARD = 0x02;
/** Bit 2: a write with it set resets the system. */
const RESET_CPU = 0x04;

/** The reset control register (RCR): a byte at port 0xcf9, inside the PCI configuration ports. */
export class ResetControl implements ByteRegisterDevice {
  readonly name = 'reset-control';
  private value = 0;

  constructor(private readonly onReset: () => void) {}

  readRegister(): number {
    return this.value;
  }

  writeRegister(_offset: number, value: number): void {
    if (value & RESET_CPU) {
      this.onReset();
      return;
    }
    this.value = value & RESET_HARD;
  }
}

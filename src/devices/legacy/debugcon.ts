// QEMU's ISA debug console (hw/char/debugcon.c), where firmware writes its
// log one byte per OUT: SeaBIOS sends its debug output to port 0x402 once a
// read of that port returns 0xe9 (QEMU's "readback" value), and otherwise
// keeps quiet. Writes of any width send their low byte, as QEMU does.

import { BusDevice } from '../bus/bus-device';

export const DEBUGCON_PORT_COUNT = 1;
/** What a read returns: the value SeaBIOS checks for before it logs here. */
const DEBUGCON_READBACK = 0xe9;

export class Debugcon implements BusDevice {
  readonly name = 'debugcon';

  /** `output` gets each byte written; it must not block (the device thread calls it). */
  constructor(private readonly output: (bytes: Uint8Array) => void) {}

  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
    data[0] = DEBUGCON_READBACK;
  }

  write(_offset: number, data: Uint8Array): void {
    // A copy: the bus reuses its buffer for the next access.
    this.output(Uint8Array.of(data[0]));
  }
}

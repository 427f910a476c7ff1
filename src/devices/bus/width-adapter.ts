// The thin adapter between a bus and a byte-register device (Firecracker's
// legacy serial wrapper): the legacy PC devices have only 8-bit registers, so
// a 2-, 4- or 8-byte access to them is a guest bug we count and ignore rather
// than something every model has to reason about.

import { BusDevice, ByteRegisterDevice } from './bus-device';

/** What each byte of a rejected (too wide) read returns, like an unclaimed bus read. */
const REJECTED_READ_BYTE = 0xff;
/** The only access width byte-register devices accept. */
const REGISTER_WIDTH = 1;

/**
 * A BusDevice that forwards 1-byte accesses to a ByteRegisterDevice and
 * rejects wider ones: a rejected read returns all ones, a rejected write is
 * dropped, and both are counted.
 */
class ByteWidthAdapter implements BusDevice {
  readonly name: string;
  readonly device: ByteRegisterDevice;
  /** Reads wider than one byte, answered with all ones. */
  rejectedReads = 0;
  /** Writes wider than one byte, dropped. */
  rejectedWrites = 0;

  constructor(device: ByteRegisterDevice) {
    this.device = device;
    this.name = device.name;
  }

  read(offset: number, data: Uint8Array): void {
    if (data.length !== REGISTER_WIDTH) {
      data.fill(REJECTED_READ_BYTE);
      this.rejectedReads++;
      return;
    }
    data[0] = this.device.readRegister(offset);
  }

  write(offset: number, data: Uint8Array): void {
    if (data.length !== REGISTER_WIDTH) {
      this.rejectedWrites++;
      return;
    }
    this.device.writeRegister(offset, data[0]);
  }
}

/** Wraps a byte-register device for insertion on a Bus. */
export function byteRegisters(device: ByteRegisterDevice): ByteWidthAdapter {
  return new ByteWidthAdapter(device);
}

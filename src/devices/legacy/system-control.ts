// System control port A (0x92, "fast A20 and reset" on PS/2-era PCs and on
// QEMU's -M pc, hw/i386/pc.c port92_*). Firmware reads it at every switch
// between real and protected mode and writes it back with bit 1 (the A20
// gate) set or cleared; writing bit 0 as 1 after it read 0 resets the CPU.
// KVM always runs with A20 enabled, so the gate bit is only remembered.

import { ByteRegisterDevice } from '../bus/bus-device';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import { StatefulDevice, StateFields, byteField, restoreFields, saveFields } from '../snapshot';

export const SYSTEM_CONTROL_PORT_COUNT = 1;

/** Bit 0: a 0 -> 1 write pulses the CPU reset line; it always reads 0. */
const FAST_RESET = 0x01;

class SystemControlError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

export interface SystemControlState {
  /** What the port reads as: the last value written, bit 0 clear. */
  value: number;
}

const SYSTEM_CONTROL_FIELDS: StateFields<SystemControlState, SystemControlState> = { value: byteField };

export class SystemControlPortA implements ByteRegisterDevice, StatefulDevice<SystemControlState> {
  readonly name = 'system-control-a';
  private readonly state: SystemControlState = { value: 0 };

  constructor(private readonly onReset: () => void) {}

  readRegister(): number {
    return this.state.value;
  }

  writeRegister(_offset: number, value: number): void {
    this.state.value = value & ~FAST_RESET;
    // The register's bit 0 reads 0, so a set bit written is always a 0 -> 1 edge.
    if (value & FAST_RESET) this.onReset();
  }

  snapshot(): SystemControlState {
    return saveFields(this.state, SYSTEM_CONTROL_FIELDS);
  }

  restore(state: SystemControlState): void {
    restoreFields(this.state, state, SYSTEM_CONTROL_FIELDS,
      (problem) => new SystemControlError(`cannot restore port 0x92 state: ${problem}; pass a state produced by SystemControlPortA.snapshot()`));
    this.state.value &= ~FAST_RESET; // bit 0 always reads 0
  }
}

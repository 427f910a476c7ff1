// Local APIC wiring of the two local interrupt pins, as a PC chipset wires
// them: LINT0 receives the legacy PIC's output (ExtINT) and LINT1 receives
// NMI. Linux relies on this "virtual wire" setup while it still uses the
// 8259 PIC. Works on the 1024-byte register page of struct kvm_lapic_state
// (KVM_GET_LAPIC / KVM_SET_LAPIC), as crosvm's interrupts.rs set_lint.
// Register layout: Intel SDM Vol. 3A, 11.5.1 "Local Vector Table".

import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/** KVM_APIC_REG_SIZE: bytes in struct kvm_lapic_state. */
const LAPIC_STATE_BYTES = 0x400;
/** LVT LINT0 register offset in the APIC page. */
const APIC_LVT_LINT0 = 0x350;
/** LVT LINT1 register offset in the APIC page. */
const APIC_LVT_LINT1 = 0x360;

/** LVT bits 10:8 select the delivery mode. */
const DELIVERY_MODE_SHIFT = 8;
const DELIVERY_MODE_MASK = 0x700;
/** Delivery mode 0b100: deliver as NMI (the vector is ignored). */
const DELIVERY_MODE_NMI = 0x4;
/** Delivery mode 0b111: ExtINT, the interrupt and its vector come from an external 8259 PIC. */
const DELIVERY_MODE_EXTINT = 0x7;

export class LocalInterruptError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('internal', message, options);
  }
}

/** Replaces bits 10:8 of an LVT register value with `mode`, keeping every other bit. */
function withDeliveryMode(register: number, mode: number): number {
  return ((register & ~DELIVERY_MODE_MASK) | (mode << DELIVERY_MODE_SHIFT)) >>> 0;
}

/**
 * Sets LVT LINT0 to ExtINT and LVT LINT1 to NMI delivery in `lapicRegs`
 * (a kvm_lapic_state buffer read with KVM_GET_LAPIC), changing only the
 * delivery-mode bits so the mask bit and the rest KVM reset stay as they
 * were. Modifies the buffer in place and returns it for KVM_SET_LAPIC.
 */
export function setLocalInterrupts(lapicRegs: Uint8Array): Uint8Array {
  if (lapicRegs.length !== LAPIC_STATE_BYTES) {
    throw new LocalInterruptError(
      `LAPIC state is ${lapicRegs.length} bytes, not the ${LAPIC_STATE_BYTES} of struct kvm_lapic_state; pass the buffer KVM_GET_LAPIC filled`,
    );
  }
  const view = new DataView(lapicRegs.buffer, lapicRegs.byteOffset, lapicRegs.byteLength);
  for (const [offset, mode] of [[APIC_LVT_LINT0, DELIVERY_MODE_EXTINT], [APIC_LVT_LINT1, DELIVERY_MODE_NMI]]) {
    view.setUint32(offset, withDeliveryMode(view.getUint32(offset, true), mode), true);
  }
  return lapicRegs;
}

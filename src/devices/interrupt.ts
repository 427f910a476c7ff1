// How device models raise interrupts, without knowing what carries them: an
// irqfd into KVM, the userspace PIC and IOAPIC, or a test's counter.

/** An edge-triggered line (ISA devices: the UARTs, the PIT, the RTC). */
export interface InterruptLine {
  trigger(): void;
}

/**
 * A level-triggered line (PCI INTx): held asserted until the device lowers
 * it. trigger() pulses it. Whoever carries the line re-delivers an asserted
 * level after the guest's EOI (KVM's irqfd resample), so the model only says
 * what its level is.
 */
export interface LevelInterruptLine extends InterruptLine {
  setLevel(asserted: boolean): void;
}

/** A level line that sets its level through `setLevel`; trigger() is a pulse (raise, then lower). */
export function levelLine(setLevel: (asserted: boolean) => void): LevelInterruptLine {
  return { setLevel, trigger: () => { setLevel(true); setLevel(false); } };
}

/** A message-signalled interrupt: a 32-bit write of `data` to `address` (MSI, MSI-X, the IOAPIC's output). */
export interface MsiMessage {
  address: number;
  data: number;
}

/** Where a device's MSIs go. */
export interface MsiSink {
  signal(message: MsiMessage): void;
}

// Where PCI devices go on the board: a slot, an INTx GSI and BAR addresses,
// chosen at build time from layout.ts as crosvm does (the guest may move
// BARs later; the board follows). Pure: the same devices give the same plan.

import { GSI_PCI_INTX_START, IOAPIC_PINS, PCI_IO_END, PCI_IO_START, PCI_MMIO32_END, PCI_MMIO32_START } from '../layout';
import type { PciInterruptRoute } from '../arch/mptable';
import { PCI_SLOTS } from '../../devices/pci/pci-root';
import { TsvmmError } from '../../shared/errors';

/** A PCI device's place: slot (device number on bus 0) and the GSI its INTA line drives. */
export interface PciPlacement {
  id: string;
  slot: number;
  irq: number;
}

/** GSIs PCI INTx may use: 9 up to the IOAPIC's last pin; devices share them round-robin past that. */
const INTX_GSIS = IOAPIC_PINS - GSI_PCI_INTX_START;

/** The PIIX3 ISA bridge's slot, as on QEMU's pc machine (00:01.0); slot 0 is the host bridge. */
export const ISA_BRIDGE_SLOT = 1;
const FIRST_DEVICE_SLOT = ISA_BRIDGE_SLOT + 1;

/** Device i gets slot i + 2 (after the host and ISA bridges) and GSI 9 + i (shared once the pins run out). */
export function planPci(ids: readonly string[]): PciPlacement[] {
  const slots = PCI_SLOTS - FIRST_DEVICE_SLOT;
  if (ids.length > slots) {
    throw new TsvmmError('usage', `${ids.length} PCI devices do not fit on bus 0 (slots ${FIRST_DEVICE_SLOT}..${PCI_SLOTS - 1}); give at most ${slots}`);
  }
  return ids.map((id, i) => ({ id, slot: FIRST_DEVICE_SLOT + i, irq: GSI_PCI_INTX_START + (i % INTX_GSIS) }));
}

/** The MP table's INTSRC entries for the plan: each device's INTA on its GSI. */
export function pciInterruptRoutes(plan: readonly PciPlacement[]): PciInterruptRoute[] {
  return plan.map(({ slot, irq }) => ({ device: slot, pin: 'INTA', irq }));
}

/** A bump allocator for BAR addresses, naturally aligned, from the layout's windows. */
export class BarAllocator {
  private nextIo = PCI_IO_START;
  private nextMmio32 = PCI_MMIO32_START;

  io(size: number): number {
    const address = alignUp(this.nextIo, size);
    if (address + size > PCI_IO_END) throw new TsvmmError('usage', `no I/O space left for a ${size}-byte PCI BAR; use fewer devices`);
    this.nextIo = address + size;
    return address;
  }

  mmio32(size: number): number {
    const address = alignUp(this.nextMmio32, size);
    if (address + size > PCI_MMIO32_END) throw new TsvmmError('usage', `no 32-bit MMIO space left for a ${size}-byte PCI BAR; use fewer devices`);
    this.nextMmio32 = address + size;
    return address;
  }
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

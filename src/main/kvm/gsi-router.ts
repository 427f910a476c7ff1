// KVM's GSI routing table has one owner. KVM_SET_GSI_ROUTING replaces the
// whole table, so the userspace IOAPIC's routes (split irqchip) and, later,
// MSI-X vectors must all be set through one place that knows every entry.

import { GSI_LEGACY_END, GSI_MSI_START, IOAPIC_PINS } from '../layout';
import { KVM_IRQCHIP } from '../../shared/kvm-abi';
import type { MsiMessage } from '../../devices/interrupt';
import { TsvmmError } from '../../shared/errors';

export type GsiRoute =
  | { gsi: number; kind: 'irqchip'; chip: number; pin: number }
  | { gsi: number; kind: 'msi'; message: MsiMessage };

/** KVM's GSI numbers are u32; tsvmm stops well before that, at a table KVM accepts (KVM_MAX_IRQ_ROUTES is 4096). */
const GSI_LIMIT = 4096;

/**
 * The routes KVM installs by itself for the in-kernel irqchip
 * (kvm_setup_default_irq_routing): GSI 0-15 to the PIC pin and the IOAPIC
 * pin of the same number, GSI 16-23 to the IOAPIC alone. A table tsvmm sets
 * must keep them, or ISA interrupts stop.
 */
export function defaultIrqchipRoutes(): GsiRoute[] {
  const routes: GsiRoute[] = [];
  for (let gsi = 0; gsi < IOAPIC_PINS; gsi++) {
    if (gsi < GSI_LEGACY_END) {
      routes.push({ gsi, kind: 'irqchip', chip: gsi < 8 ? KVM_IRQCHIP.PIC_MASTER : KVM_IRQCHIP.PIC_SLAVE, pin: gsi % 8 });
    }
    routes.push({ gsi, kind: 'irqchip', chip: KVM_IRQCHIP.IOAPIC, pin: gsi });
  }
  return routes;
}

export class GsiRouter {
  private readonly fixed: GsiRoute[];
  private readonly msiRoutes = new Map<number, MsiMessage>();
  private nextMsiGsi = GSI_MSI_START;

  /**
   * `commit` installs a whole table (Vm.setGsiRouting). With the in-kernel
   * irqchip the default entries stay in every table.
   */
  constructor(private readonly commit: (routes: readonly GsiRoute[]) => void, irqchip: 'kernel' | 'split') {
    this.fixed = irqchip === 'kernel' ? defaultIrqchipRoutes() : [];
  }

  /** A GSI for a new MSI route (an MSI-X vector), above the IOAPIC's pins. */
  allocateMsiGsi(): number {
    if (this.nextMsiGsi >= GSI_LIMIT) throw new TsvmmError('host', `no GSI left for another MSI route (tsvmm uses ${GSI_MSI_START}..${GSI_LIMIT - 1})`);
    return this.nextMsiGsi++;
  }

  /** Routes `gsi` to `message`, or removes its route (null), and installs the new table. */
  setMsiRoute(gsi: number, message: MsiMessage | null): void {
    if (message) this.msiRoutes.set(gsi, { address: message.address, data: message.data });
    else if (!this.msiRoutes.delete(gsi)) return;
    this.commit(this.table());
  }

  /** The whole table as it is installed now. */
  table(): GsiRoute[] {
    const msi: GsiRoute[] = [...this.msiRoutes].sort(([a], [b]) => a - b).map(([gsi, message]) => ({ gsi, kind: 'msi', message }));
    return [...this.fixed, ...msi];
  }
}

// MSIs of PCI devices (MSI-X vectors) delivered through irqfds, as QEMU and
// crosvm do: each distinct message gets a GSI with an MSI route (installed
// through the one GsiRouter) and an eventfd bound to it with KVM_IRQFD, at its
// first use, so later interrupts are one eventfd write. A message that is not
// a write to the local APICs' page, or one past the route limit (a guest that
// keeps reprogramming its vectors), goes through KVM_SIGNAL_MSI instead.

import type { MsiMessage, MsiSink } from '../../devices/interrupt';
import { EFD_NONBLOCK } from '../../shared/kvm-abi';
import { check, native } from '../../shared/native';
import type { GsiRouter } from './gsi-router';
import type { Vm } from './kvm';

/** MSI addresses are writes to 0xfeexxxxx (Intel SDM vol. 3, 11.11.1); anything else no LAPIC decodes. */
const MSI_ADDRESS_MASK = 0xfff0_0000;
const MSI_ADDRESS_BASE = 0xfee0_0000;
/** Routes made before every new message goes through KVM_SIGNAL_MSI (a few per device is the usual need). */
const DEFAULT_MSI_ROUTE_LIMIT = 256;

export class MsiIrqfds implements MsiSink {
  /** eventfd per message, keyed by address and data. */
  private readonly irqfds = new Map<string, number>();
  private readonly fds: number[] = [];
  /** Interrupts sent with KVM_SIGNAL_MSI instead (not a LAPIC address, or past the limit). */
  signalled = 0;

  constructor(
    private readonly vm: Vm,
    private readonly router: GsiRouter,
    /** KVM_SIGNAL_MSI, for the messages that get no irqfd. */
    private readonly fallback: MsiSink,
    private readonly routeLimit = DEFAULT_MSI_ROUTE_LIMIT,
  ) {}

  signal(message: MsiMessage): void {
    const key = `${message.address}:${message.data}`;
    const fd = this.irqfds.get(key) ?? this.bind(key, message);
    if (fd === undefined) {
      this.signalled++;
      this.fallback.signal(message);
      return;
    }
    native().eventfdWrite(fd, 1);
  }

  /** Messages that have an irqfd. */
  get routes(): number {
    return this.irqfds.size;
  }

  private bind(key: string, message: MsiMessage): number | undefined {
    if (this.irqfds.size >= this.routeLimit || ((message.address >>> 0) & MSI_ADDRESS_MASK) >>> 0 !== MSI_ADDRESS_BASE) return undefined;
    const addon = native();
    const fd = check('eventfd', addon.eventfd(0, EFD_NONBLOCK));
    try {
      const gsi = this.router.allocateMsiGsi();
      this.router.setMsiRoute(gsi, message);
      this.vm.registerIrqfd(fd, gsi);
    } catch {
      // No GSI left, or KVM refused the route: this message keeps going through KVM_SIGNAL_MSI.
      addon.close(fd);
      return undefined;
    }
    this.fds.push(fd);
    this.irqfds.set(key, fd);
    return fd;
  }

  /** Closes the eventfds (KVM drops the irqfds with them). */
  dispose(): void {
    const addon = native();
    for (const fd of this.fds) addon.close(fd);
    this.fds.length = 0;
    this.irqfds.clear();
  }
}

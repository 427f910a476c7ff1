// The board's view of the host, backed by KVM: irqfds (with resample fds for
// level lines) for the in-kernel irqchip, irqfds on MSI routes for PCI devices' MSI-X,
// KVM_SIGNAL_MSI for the userspace IOAPIC's output, the GsiRouter, and
// Node's clocks and timers. It owns the eventfds it makes.

import type { BoardHost } from '../board/board';
import { InterruptLine, LevelInterruptLine, MsiMessage, levelLine } from '../../devices/interrupt';
import type { ScheduledTimer } from '../../devices/legacy/pit';
import { GsiRouter } from '../kvm/gsi-router';
import type { Vm } from '../kvm/kvm';
import { CAP, EFD_NONBLOCK } from '../../shared/kvm-abi';
import { EventWatcher } from '../kvm/event-watcher';
import { MsiIrqfds } from '../kvm/msi-irqfds';
import { check, native } from '../../shared/native';

export class KvmBoardHost implements BoardHost {
  readonly gsiRouter: GsiRouter;
  /** MSIs KVM refused (a guest-programmed address that is no local APIC's): counted, never thrown at a device. */
  refusedMsis = 0;
  readonly msi = {
    signal: (message: MsiMessage) => {
      try {
        this.vm.signalMsi(message.address, message.data);
      } catch {
        this.refusedMsis++;
      }
    },
  };
  /** PCI devices' MSI-X: an irqfd per message (MsiIrqfds), KVM_SIGNAL_MSI for the rest. */
  readonly deviceMsi: MsiIrqfds;
  private readonly eventFds: number[] = [];
  /** Doorbell writes caught by KVM_IOEVENTFD (and INTx resample fds), picked up by one watcher thread. */
  private watcher?: EventWatcher;
  private readonly doorbells = new Map<number, () => void>();
  private nextToken = 1;
  /** KVM_CAP_IOEVENTFD, asked once. */
  private readonly ioeventfds: boolean;

  /** `protectRam` backs BoardHost.protectRam (GuestRam.setReadOnly on a firmware boot's segmented RAM). */
  constructor(private readonly vm: Vm, irqchip: 'kernel' | 'split', readonly protectRam?: (guestAddress: number, size: number, readOnly: boolean) => void) {
    this.gsiRouter = new GsiRouter((routes) => vm.setGsiRouting(routes), irqchip);
    this.deviceMsi = new MsiIrqfds(vm, this.gsiRouter, this.msi);
    this.ioeventfds = vm.kvm.checkExtension(CAP.KVM_CAP_IOEVENTFD) > 0;
  }

  watchWrites(bus: 'io' | 'mmio', address: number, length: number, signal: () => void): { close(): void } | undefined {
    if (!this.ioeventfds) return undefined;
    const addon = native();
    const fd = check('eventfd', addon.eventfd(0, EFD_NONBLOCK));
    const registration = { fd, address, length, pio: bus === 'io' };
    try {
      this.vm.registerIoeventfd(registration);
    } catch (error) {
      addon.close(fd);
      throw error;
    }
    const token = this.watchFd(fd, signal);
    let open = true;
    return {
      close: () => {
        if (!open) return;
        open = false;
        this.watcher?.remove(fd);
        this.doorbells.delete(token);
        this.vm.unregisterIoeventfd(registration);
        addon.close(fd);
      },
    };
  }

  kernelEdgeLine(gsi: number): InterruptLine {
    const addon = native();
    const fd = check('eventfd', addon.eventfd(0, EFD_NONBLOCK));
    this.eventFds.push(fd);
    this.vm.registerIrqfd(fd, gsi);
    return { trigger: () => { addon.eventfdWrite(fd, 1); } };
  }

  /**
   * A PCI INTx line of the in-kernel irqchip: an irqfd with a resample fd
   * (as crosvm and QEMU wire INTx). Raising the level writes the irqfd; KVM
   * keeps the GSI asserted until the guest's EOI, then lowers it and signals
   * the resample fd, and the line is raised again if the device still holds
   * it. Lowering needs no call: KVM lowers the GSI at that EOI. Without a
   * doorbell watcher thread (no KVM_CAP_IOEVENTFD) the resample fd cannot
   * be watched, and KVM_IRQ_LINE holds the level instead.
   */
  kernelLevelLine(gsi: number): LevelInterruptLine {
    let level = false;
    if (!this.ioeventfds) {
      return levelLine((asserted) => {
        if (asserted === level) return;
        level = asserted;
        this.vm.setIrqLine(gsi, asserted);
      });
    }
    const addon = native();
    const fd = check('eventfd', addon.eventfd(0, EFD_NONBLOCK));
    this.eventFds.push(fd);
    const resample = check('eventfd', addon.eventfd(0, EFD_NONBLOCK));
    this.eventFds.push(resample);
    this.vm.registerIrqfd(fd, gsi, resample);
    this.watchFd(resample, () => {
      addon.eventfdRead(resample);
      if (level) addon.eventfdWrite(fd, 1);
    });
    return levelLine((asserted) => {
      if (asserted === level) return;
      level = asserted;
      if (asserted) addon.eventfdWrite(fd, 1);
    });
  }

  now(): bigint {
    return process.hrtime.bigint();
  }

  /** Node timers have millisecond resolution; the PIT folds edges a late timer missed into one. */
  schedule(delayNs: bigint, callback: () => void): ScheduledTimer {
    const timer = setTimeout(callback, Number(delayNs / 1_000_000n));
    return { cancel: () => clearTimeout(timer) };
  }

  wallClockMs(): number {
    return Date.now();
  }

  /** Calls `ready` on the main thread each time `fd` becomes readable (the one watcher thread); returns its token. */
  private watchFd(fd: number, ready: () => void): number {
    const token = this.nextToken++;
    this.doorbells.set(token, ready);
    this.watcher ??= new EventWatcher((tokens) => { for (const t of tokens) this.doorbells.get(t)?.(); });
    this.watcher.add(fd, token);
    return token;
  }

  /** Closes the irqfds and the doorbell watcher (the board closed its watches first). */
  dispose(): void {
    this.deviceMsi.dispose();
    this.watcher?.close();
    this.watcher = undefined;
    const addon = native();
    for (const fd of this.eventFds) addon.close(fd);
    this.eventFds.length = 0;
  }
}

// What a Machine tells a log (-v, --log-level): where the kernel and initrd
// went, the boot protocol, the e820 map, the devices and their addresses, and
// at debug level every port and MMIO address nobody claims, the first time
// each is hit. Nothing here runs when there is no log, and nothing on the
// vCPU exit path ever does: see forwardsEverything.

import type { BootPlan } from '../arch/configure';
import type { E820Entry } from '../arch/e820';
import type { Board } from '../board/board';
import type { PciPlacement } from '../board/pci';
import type { ClaimedRange } from '../../shared/address-claims';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Where log lines go; the owner (the CLI) formats and writes them. */
export interface VmLog {
  /** The most detailed level written. */
  readonly level: LogLevel;
  write(level: LogLevel, message: string): void;
}

/** Whether `log` writes `level`; messages are built only when it does. */
export function logs(log: VmLog | undefined, level: LogLevel): log is VmLog {
  return log !== undefined && LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(log.level);
}

/**
 * At debug level every access is forwarded to the device thread (claims that
 * cover both address spaces), where the buses see the unclaimed ones and can
 * report them. The vCPU's own fast answer for unclaimed addresses is what
 * makes the exit path free of logging: it never looks at the log, and this
 * costs a hand-off per unclaimed access only while debug logging is asked for.
 */
export function forwardsEverything(log: VmLog | undefined): boolean {
  return logs(log, 'debug');
}

export const ALL_PORTS: readonly ClaimedRange[] = [{ base: 0, length: 0x1_0000 }];
/** The MMIO bus's whole space (its address limit); RAM never exits, so this reaches only holes and devices. */
export const ALL_MMIO: readonly ClaimedRange[] = [{ base: 0, length: 2 ** 52 }];

const hex = (value: number, digits = 0) => `0x${value.toString(16).padStart(digits, '0')}`;
const E820_TYPE_NAMES: Record<number, string> = { 1: 'usable', 2: 'reserved', 3: 'ACPI data', 4: 'ACPI NVS', 5: 'unusable' };

/** Linux's own format ("[mem 0x...-0x...] usable"), so the two logs compare line by line. */
export function e820Line({ address, size, type }: E820Entry): string {
  return `e820: [mem ${hex(address, 16)}-${hex(address + size - 1, 16)}] ${E820_TYPE_NAMES[type] ?? `type ${type}`}`;
}

/** The lines of how the kernel was loaded and booted; a VM without a boot plan loaded no kernel. */
export function bootLines(boot: BootPlan | undefined, kernelBytes: number, asked: string): string[] {
  if (!boot) return ['boot: no kernel loaded (firmware from the reset vector, or a snapshot restored)'];
  const lines = [
    `kernel: ${boot.format === 'elf' ? 'ELF' : 'bzImage'} of ${kernelBytes} bytes loaded at ${hex(boot.kernelStart)}-${hex(boot.kernelEnd - 1)}`,
    `boot protocol: ${boot.protocol} (--boot-protocol ${asked}), entry ${hex(boot.entry)}`,
  ];
  if (boot.initrd) lines.push(`initrd: ${boot.initrd.size} bytes at ${hex(boot.initrd.address)}-${hex(boot.initrd.address + boot.initrd.size - 1)}`);
  lines.push(`command line: "${boot.commandLine}"`);
  lines.push(...boot.e820.map(e820Line));
  lines.push(`mp table: ${hex(boot.mpTable.start)}-${hex(boot.mpTable.end - 1)}`);
  return lines;
}

/**
 * Logs every range the buses serve, by device name, with its ISA IRQ; at
 * build and again whenever the guest maps, moves or unmaps one (a PCI BAR),
 * so the log shows where each device was when the guest used it.
 */
export class DeviceAddressLog {
  private readonly logged = new Map<string, string>();
  private built = false;

  constructor(private readonly log: VmLog) {}

  update(board: Pick<Board, 'devices' | 'io' | 'mmio'>): void {
    // The board's ids name its own devices (com1, not the model's "serial"); a PCI BAR's range is named by its device id.
    const registry = board.devices();
    const byPlace = new Map(registry.map((device) => [`${device.bus}@${device.base}`, device]));
    const irqs = new Map(registry.map((device) => [device.id, device.irq]));
    const current = new Map<string, string>();
    for (const bus of [board.io, board.mmio]) {
      for (const { base, length, name: model } of bus.ranges()) {
        const name = byPlace.get(`${bus.kind}@${base}`)?.id ?? model;
        const irq = irqs.get(name.split('.')[0]);
        current.set(name, `${bus.kind === 'io' ? 'ports' : 'mmio'} ${hex(base)}-${hex(base + length - 1)}${irq === undefined ? '' : `, irq ${irq}`}`);
      }
    }
    const by = this.built ? ' (by the guest)' : '';
    for (const [name, where] of current) {
      if (this.logged.get(name) !== where) this.log.write('info', `device ${name}: ${where}${by}`);
    }
    for (const name of this.logged.keys()) {
      if (!current.has(name)) this.log.write('info', `device ${name}: unmapped${by}`);
    }
    this.logged.clear();
    for (const [name, where] of current) this.logged.set(name, where);
    this.built = true;
  }
}

/** PCI placements: bus 0 slot, function 0, and the GSI of INTA#. */
export function pciLines(placements: readonly PciPlacement[]): string[] {
  return placements.map(({ id, slot, irq }) => `pci 00:${slot.toString(16).padStart(2, '0')}.0: ${id}, INTA# on GSI ${irq}`);
}

/** Logs each unclaimed port and MMIO address the first time it is hit (the buses call this only for those). */
export function reportUnclaimed(log: VmLog, board: Pick<Board, 'io' | 'mmio'>): void {
  for (const bus of [board.io, board.mmio]) {
    const seen = new Set<number>();
    const what = bus.kind === 'io' ? 'port' : 'mmio address';
    bus.onUnclaimed = (address, access) => {
      if (seen.has(address)) return;
      seen.add(address);
      log.write('debug', `unclaimed ${what} ${hex(address)}, first hit: ${access === 'read' ? 'read answered with all ones' : 'write dropped'}`);
    };
  }
}

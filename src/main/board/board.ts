// The PC a tsvmm guest sees, as a declarative list of devices with stable
// ids (crosvm's setup_legacy_devices, Firecracker's device_manager/legacy):
// four 16550A UARTs (only COM1 reaches the host), the CMOS/RTC, the i8042,
// the ports that are claimed but empty, and with the split irqchip the
// userspace PIC, IOAPIC and PIT. Every device stays reachable by its id after
// construction. Where each sits comes from layout.ts; how an interrupt reaches
// the guest comes from the injected BoardHost, so the board never sees KVM.

import {
  CMOS_PORT, COM1_IRQ, COM1_PORT, COM2_IRQ, COM2_PORT, COM3_IRQ, COM3_PORT, COM4_IRQ, COM4_PORT, DEBUGCON_PORT, FPU_PORT, FW_CFG_PORT,
  I8042_DATA_PORT, I8042_PORT, I8042_PORT_AFTER_SPEAKER, IOAPIC_START, IO_DELAY_PORT, KEYBOARD_IRQ, PIC_CASCADE_IRQ, PIC_ELCR_PORT, PIC_MASTER_PORT,
  PIC_SLAVE_PORT, PIT_IRQ, PIT_PORT, PIT_SPEAKER_PORT, PCI_CONFIG_PORT, GSI_LEGACY_END, SYSTEM_CONTROL_PORT,
} from '../layout';
import { Bus, BusKind } from '../../devices/bus/bus';
import type { BusDevice } from '../../devices/bus/bus-device';
import { byteRegisters } from '../../devices/bus/width-adapter';
import { InterruptLine, LevelInterruptLine, MsiSink, levelLine } from '../../devices/interrupt';
import { StatefulDevice, isSnapshottable } from '../../devices/snapshot';
import { CMOS_PORT_COUNT, Cmos } from '../../devices/legacy/cmos';
import { I8042, I8042_PORT_COUNT, I8042_PORT_COUNT_WITH_PIT_SPEAKER } from '../../devices/legacy/i8042';
import { NoDevice } from '../../devices/legacy/no-device';
import { Debugcon, DEBUGCON_PORT_COUNT } from '../../devices/legacy/debugcon';
import { SYSTEM_CONTROL_PORT_COUNT, SystemControlPortA } from '../../devices/legacy/system-control';
import { FW_CFG_PORT_COUNT, FwCfg, FwCfgE820Entry } from '../../devices/firmware/fw-cfg';
import { Piix3IsaBridge, ResetControl } from '../../devices/pci/piix3';
import { PIT_PORT_COUNT, Pit, PitSpeakerPort, ScheduledTimer } from '../../devices/legacy/pit';
import { Serial } from '../../devices/legacy/serial';
import { IOAPIC_MMIO_SIZE, Ioapic, ioapicInterruptLine } from '../../devices/irqchip/ioapic';
import { PIC_ELCR_PORT_COUNT, PIC_PORT_COUNT, Pic } from '../../devices/irqchip/pic';
import type { GsiRouter } from '../kvm/gsi-router';
import { BarAllocator, ISA_BRIDGE_SLOT, PciPlacement } from './pci';
import type { PciFunction } from '../../devices/pci/config-space';
import { PCI_CONFIG_PORT_COUNT, PciRoot } from '../../devices/pci/pci-root';
import { BAR0 as VIRTIO_BAR0, VirtioBackend, VirtioPciDevice } from '../../devices/virtio/pci-transport';
import type { DmaMemory } from '../../devices/virtio/queue';
import { TsvmmError } from '../../shared/errors';

/** Interrupt Pin 1: INTA, the pin of every single-function device. */
const INTERRUPT_PIN_INTA = 1;
/** A 16550A decodes eight registers. */
const SERIAL_PORT_COUNT = 8;
/** The PIT's ports when KVM's in-kernel PIT serves them: crosvm claims 0x40-0x47 with its NoDevice ("ignore pit"). */
const IN_KERNEL_PIT_PORT_COUNT = 8;

/** What pulled the reset line. */
export type BoardResetSource = 'i8042' | 'port 0x92' | 'port 0xcf9';

/** What the board tells firmware through fw_cfg (a --bios boot). */
export interface FirmwareSettings {
  /** The RAM map for etc/e820 (arch/firmware.ts's firmwareE820). */
  e820: readonly FwCfgE820Entry[];
}

/** One device on the board. */
export interface BoardDevice {
  /** Stable across runs and snapshots: 'com1', 'cmos', 'ioapic', ... */
  readonly id: string;
  readonly bus: BusKind;
  readonly base: number;
  readonly length: number;
  /** The model itself (a Serial, a Cmos, ...), for callers that know its id. */
  readonly model: object;
  /** The ISA IRQ it raises, if any (ISA IRQ n is GSI n). */
  readonly irq?: number;
}

/** A device a caller adds (tests, benchmarks), on either bus. */
export interface ExtraDevice {
  id?: string;
  bus: BusKind;
  base: number;
  length: number;
  device: BusDevice;
}

/** What the board needs from the host; the VMM gives it KVM-backed ones, tests give fakes. */
export interface BoardHost {
  /** An edge-triggered GSI of the in-kernel irqchip (an irqfd). */
  kernelEdgeLine(gsi: number): InterruptLine;
  /** A level-triggered GSI of the in-kernel irqchip. */
  kernelLevelLine(gsi: number): LevelInterruptLine;
  /** MSIs into KVM's local APICs (the userspace IOAPIC's output). */
  msi: MsiSink;
  /** PCI devices' MSI-X messages (irqfds); default: `msi`. */
  deviceMsi?: MsiSink;
  /** The one owner of KVM's GSI routing table. */
  gsiRouter: GsiRouter;
  /** A monotonic clock in ns and timers on it (the userspace PIT). */
  now(): bigint;
  schedule(delayNs: bigint, callback: () => void): ScheduledTimer;
  /** The RTC's "now" in ms since the epoch. */
  wallClockMs(): number;
  /**
   * Calls `signal` for every guest write of `length` bytes at `address`
   * without a vCPU exit (KVM_IOEVENTFD); undefined when the host cannot, and
   * the write then arrives as a forwarded access.
   */
  watchWrites?(bus: BusKind, address: number, length: number, signal: () => void): { close(): void } | undefined;
  /**
   * Makes [guestAddress, guestAddress + size) (a PAM segment of a firmware
   * boot) read-only to the guest, its writes dropped, or writable again.
   */
  protectRam?(guestAddress: number, size: number, readOnly: boolean): void;
}

export interface BoardOptions {
  vcpuCount: number;
  memoryBelow4G: number;
  memoryAbove4G: number;
  irqchip: 'kernel' | 'split';
  host: BoardHost;
  /** Where COM1's output goes; undefined discards it. */
  serialOutput?: (bytes: Uint8Array) => void;
  /** Called when a guest read empties COM1's receive FIFO. */
  serialInputDrained?: () => void;
  /** The RTC's idea of "now" at boot, in ms since the epoch (default: the host's wall clock). */
  rtcBase?: number;
  /** The guest pulsed the reset line (the i8042, port 0x92 or port 0xcf9). */
  onReset: (source: BoardResetSource) => void;
  /** A firmware boot: fw_cfg at 0x510 with what the firmware reads there. */
  firmware?: FirmwareSettings;
  /** Where the debug console's bytes (port 0x402) go; undefined: no debug console, the port is empty. */
  debugconOutput?: (bytes: Uint8Array) => void;
  /** The userspace PIC's INT output changed (split irqchip; it goes to the boot vCPU's LINT0). */
  onPicInt?: (asserted: boolean) => void;
  extraDevices?: readonly ExtraDevice[];
  /** Virtio devices on the PCI bus, with their places from planPci (pci.ts). */
  pciDevices?: readonly { placement: PciPlacement; backend: VirtioBackend }[];
  /** Guest RAM as the virtio devices reach it. */
  dmaMemory?: DmaMemory;
  /** A guest mistake the board refused (a BAR over another device, ...), said once each. */
  warn?: (message: string) => void;
  /** A device was added, moved or removed after construction: the claimed ranges changed. */
  onRangesChanged?: () => void;
}

/** The four legacy UARTs, in the order of their ids. */
const SERIAL_PORTS = [
  { id: 'com1', base: COM1_PORT, irq: COM1_IRQ },
  { id: 'com2', base: COM2_PORT, irq: COM2_IRQ },
  { id: 'com3', base: COM3_PORT, irq: COM3_IRQ },
  { id: 'com4', base: COM4_PORT, irq: COM4_IRQ },
] as const;

/** Ports Linux touches that no tsvmm device implements: claimed so they read as zero, as crosvm does. */
const EMPTY_PORTS = [
  { id: 'io-delay', base: IO_DELAY_PORT, length: 1 },
  { id: 'fpu', base: FPU_PORT, length: 2 },
] as const;

export class Board {
  readonly io = new Bus('io');
  readonly mmio = new Bus('mmio');
  private readonly registry = new Map<string, BoardDevice>();
  /** The userspace interrupt controllers of the split irqchip. */
  private readonly pic?: Pic;
  private readonly ioapic?: Ioapic;
  private readonly pit?: Pit;
  private readonly pciRoot: PciRoot;
  /** Where each PCI BAR is on the buses now (undefined: not decoded), by board id. */
  private readonly barsMapped = new Map<string, number | undefined>();
  private readonly pciFunctions = new Map<number, { id: string; fn: PciFunction }>();
  private readonly warned = new Set<string>();
  /** Each PAM segment's state as last applied (firmware boots), by base address. */
  private readonly pamWritable = new Map<number, boolean>();
  /** The doorbell watches of each mapped BAR, by its key. */
  private readonly doorbellWatches = new Map<string, { close(): void }[]>();

  constructor(private readonly options: BoardOptions) {
    if (options.irqchip === 'split') {
      this.pic = this.addPic();
      this.ioapic = this.addIoapic();
      this.pit = this.addPit();
    } else {
      this.add({ id: 'pit', bus: 'io', base: PIT_PORT, length: IN_KERNEL_PIT_PORT_COUNT }, new NoDevice('pit (in kernel)'));
    }
    for (const { id, base, irq } of SERIAL_PORTS) {
      const isCom1 = id === 'com1';
      const serial = new Serial({
        interrupt: this.isaLine(irq),
        output: isCom1 ? options.serialOutput : undefined,
        inputDrained: isCom1 ? options.serialInputDrained : undefined,
      });
      this.add({ id, bus: 'io', base, length: SERIAL_PORT_COUNT, irq }, byteRegisters(serial), serial);
    }
    const rtcOffset = options.rtcBase === undefined ? 0 : options.rtcBase - options.host.wallClockMs();
    const cmos = new Cmos({
      now: () => options.host.wallClockMs() + rtcOffset,
      memoryBelow4G: options.memoryBelow4G,
      memoryAbove4G: options.memoryAbove4G,
    });
    this.add({ id: 'cmos', bus: 'io', base: CMOS_PORT, length: CMOS_PORT_COUNT }, byteRegisters(cmos), cmos);
    // With the PIT in userspace, port 0x61 is the PIT's speaker/gate port
    // and the i8042 starts at 0x62, as crosvm lays it out.
    const i8042Base = this.pit ? I8042_PORT_AFTER_SPEAKER : I8042_PORT;
    const i8042 = new I8042({ onReset: () => options.onReset('i8042'), basePort: i8042Base, keyboardInterrupt: this.isaLine(KEYBOARD_IRQ) });
    this.add({ id: 'i8042', bus: 'io', base: i8042Base, length: this.pit ? I8042_PORT_COUNT_WITH_PIT_SPEAKER : I8042_PORT_COUNT, irq: KEYBOARD_IRQ },
      byteRegisters(i8042), i8042);
    // The data port sits apart, below port B; the model decodes both by port number.
    const i8042Data = { name: 'i8042 data', readRegister: () => i8042.readPort(I8042_DATA_PORT), writeRegister: (_: number, value: number) => i8042.writePort(I8042_DATA_PORT, value) };
    this.add({ id: 'i8042-data', bus: 'io', base: I8042_DATA_PORT, length: 1 }, byteRegisters(i8042Data), i8042Data);
    const systemControl = new SystemControlPortA(() => options.onReset('port 0x92'));
    this.add({ id: 'system-control-a', bus: 'io', base: SYSTEM_CONTROL_PORT, length: SYSTEM_CONTROL_PORT_COUNT }, byteRegisters(systemControl), systemControl);
    if (options.debugconOutput) {
      this.add({ id: 'debugcon', bus: 'io', base: DEBUGCON_PORT, length: DEBUGCON_PORT_COUNT }, new Debugcon(options.debugconOutput));
    }
    if (options.firmware) this.addFwCfg(options.firmware);
    for (const { id, base, length } of EMPTY_PORTS) this.add({ id, bus: 'io', base, length }, new NoDevice(id));
    this.pciRoot = new PciRoot(
      (slot, _fn, register) => (slot === 0 ? this.hostBridgeWritten(register) : this.followBars(slot)),
      new ResetControl(() => options.onReset('port 0xcf9')),
    );
    if (options.firmware) this.applyPam();
    this.add({ id: 'pci-root', bus: 'io', base: PCI_CONFIG_PORT, length: PCI_CONFIG_PORT_COUNT }, this.pciRoot);
    this.pciRoot.attach(ISA_BRIDGE_SLOT, new Piix3IsaBridge());
    this.addPciDevices(options.pciDevices ?? []);
    (options.extraDevices ?? []).forEach((extra, index) => {
      this.add({ id: extra.id ?? `extra${index}`, bus: extra.bus, base: extra.base, length: extra.length }, extra.device);
    });
  }

  /** Every device, in the order it was added. */
  devices(): BoardDevice[] {
    return [...this.registry.values()];
  }

  /** The device with `id`; throws for an id the board does not have. */
  device(id: string): BoardDevice {
    const entry = this.registry.get(id);
    if (!entry) throw new TsvmmError('internal', `the board has no device '${id}' (it has ${[...this.registry.keys()].join(', ')})`);
    return entry;
  }

  /**
   * Moves device `id` to `newBase` on its bus, all or nothing; the vCPUs'
   * claims follow. A PCI device moves when its BAR is reprogrammed through
   * configuration space, not through here.
   */
  move(id: string, newBase: number): void {
    const entry = this.device(id);
    if (entry.model instanceof VirtioPciDevice) {
      throw new TsvmmError('usage', `'${id}' is a PCI device: it moves when its BAR 0 is reprogrammed in configuration space, not with Board.move`);
    }
    (entry.bus === 'io' ? this.io : this.mmio).move(entry.base, newBase);
    this.registry.set(id, { ...entry, base: newBase });
    this.options.onRangesChanged?.();
  }

  /** COM1, the UART connected to the host. */
  get com1(): Serial {
    return this.device('com1').model as Serial;
  }

  /** The state of every device that has one, by id. */
  snapshot(): Record<string, unknown> {
    const states: Record<string, unknown> = {};
    for (const { id, model } of this.registry.values()) {
      if (isSnapshottable(model)) states[id] = model.snapshot();
    }
    return states;
  }

  /** Puts every device back in `states` (from snapshot()); each device checks its own state. */
  restore(states: Record<string, unknown>): void {
    const stateful = [...this.registry.values()].filter(({ model }) => isSnapshottable(model));
    const missing = stateful.find(({ id }) => !(id in states));
    if (missing) throw new TsvmmError('usage', `the saved board state has no entry for device '${missing.id}'`);
    const unknown = Object.keys(states).find((id) => !stateful.some((device) => device.id === id));
    if (unknown !== undefined) throw new TsvmmError('usage', `the saved board state has device '${unknown}', which this board does not have`);
    // Each device checks its whole state before it changes anything; the ids are checked above.
    for (const { id, model } of stateful) (model as StatefulDevice).restore(states[id]);
    // What the restored registers imply outside the models: BARs on the buses where the guest
    // put them (and their doorbells watched), and the PIC's INT line to the boot vCPU.
    for (const slot of this.pciFunctions.keys()) this.followBars(slot);
    if (this.pic?.intAsserted) this.options.onPicInt?.(true); // the line starts low
  }

  private addPciDevices(devices: readonly { placement: PciPlacement; backend: VirtioBackend }[]): void {
    if (devices.length === 0) return;
    const memory = this.options.dmaMemory;
    if (!memory) throw new TsvmmError('internal', 'PCI devices need the guest memory (BoardOptions.dmaMemory)');
    const allocator = new BarAllocator();
    for (const { placement, backend } of devices) {
      const fn = new VirtioPciDevice({
        backend,
        memory,
        bar0Address: allocator.mmio32(VIRTIO_BAR0.size),
        msi: this.options.host.deviceMsi ?? this.options.host.msi,
        intx: this.pciIntxLine(placement.irq),
        warn: (message) => this.warnOnce(message),
      });
      fn.config.setInterrupt(placement.irq, INTERRUPT_PIN_INTA);
      this.pciRoot.attach(placement.slot, fn);
      this.pciFunctions.set(placement.slot, { id: placement.id, fn });
      // base and length are BAR 0's (where the guest has it now; the board keeps them current), decoded or not.
      const bar0 = fn.config.barPlacements().find((bar) => bar.index === 0);
      this.registry.set(placement.id, { id: placement.id, bus: 'mmio', base: bar0?.address ?? 0, length: bar0?.size ?? 0, model: fn, irq: placement.irq });
    }
  }

  /**
   * After a config write: puts every BAR of the function in `slot` where the
   * guest has it now, on the bus of its kind, while its decode bit is set
   * (a move takes effect when decoding is enabled again, as on hardware). A
   * place that overlaps another device is refused and said once.
   */
  private followBars(slot: number): void {
    const entry = this.pciFunctions.get(slot);
    if (!entry) return;
    let changed = false;
    for (const bar of entry.fn.config.barPlacements()) {
      const listed = this.registry.get(entry.id);
      if (bar.index === 0 && listed && listed.base !== bar.address) this.registry.set(entry.id, { ...listed, base: bar.address });
      const key = `${entry.id}.bar${bar.index}`;
      const bus = bar.kind === 'io' ? this.io : this.mmio;
      const wanted = bar.decoding && bar.address !== 0 ? bar.address : undefined;
      const mapped = this.barsMapped.get(key);
      if (wanted === mapped) continue;
      if (mapped !== undefined) {
        bus.remove(mapped);
        this.barsMapped.set(key, undefined);
        for (const watch of this.doorbellWatches.get(key) ?? []) watch.close();
        this.doorbellWatches.delete(key);
        changed = true;
      }
      if (wanted === undefined) continue;
      const region = entry.fn.barRegion(bar.index);
      if (!region) continue;
      try {
        bus.insert(wanted, bar.size, { name: key, read: region.read, write: region.write });
        this.barsMapped.set(key, wanted);
        this.watchDoorbells(key, entry.fn, bar.index, bar.kind === 'io' ? 'io' : 'mmio', wanted);
        changed = true;
      } catch (error) {
        this.warnOnce(`${key}: the guest put it at 0x${wanted.toString(16)}, where it cannot go (${(error as Error).message}); it stays unmapped`);
      }
    }
    if (changed) this.options.onRangesChanged?.();
  }

  /** A config write to the host bridge: a firmware board follows its PAM registers. */
  private hostBridgeWritten(register: number): void {
    if (this.options.firmware && PciRoot.touchesPam(register)) this.applyPam();
  }

  /**
   * Makes each PAM segment of 0xc0000-0xfffff writable or read-only as the
   * host bridge's registers say (at reset: read-only, as ROM). Reads always
   * come from RAM, which holds the firmware's copy; RAM reads of a segment
   * set to "read from ROM" therefore see what the firmware left there.
   */
  private applyPam(): void {
    const protect = this.options.host.protectRam;
    if (!protect) return;
    for (const segment of this.pciRoot.pamSegments()) {
      if (this.pamWritable.get(segment.base) === segment.writable) continue;
      protect.call(this.options.host, segment.base, segment.size, !segment.writable);
      this.pamWritable.set(segment.base, segment.writable);
    }
  }

  /** Catches the BAR's doorbell writes without an exit where the host can; else they arrive as forwarded writes. */
  private watchDoorbells(key: string, fn: PciFunction, index: number, bus: BusKind, base: number): void {
    const watchWrites = this.options.host.watchWrites;
    const watches: { close(): void }[] = [];
    for (const doorbell of fn.doorbells?.(index) ?? []) {
      const watch = watchWrites?.call(this.options.host, bus, base + doorbell.offset, doorbell.length, doorbell.signal);
      if (!watch) {
        this.warnOnce('queue notifications arrive as forwarded MMIO writes: this host has no KVM_IOEVENTFD');
        continue;
      }
      watches.push(watch);
    }
    this.doorbellWatches.set(key, watches);
  }

  /** PCI INTx is level-triggered: the in-kernel irqchip's GSI, or the userspace IOAPIC pin (and PIC IRQ below 16). */
  private pciIntxLine(irq: number): LevelInterruptLine {
    const { pic, ioapic } = this;
    if (!pic || !ioapic) return this.options.host.kernelLevelLine(irq);
    return levelLine((asserted) => {
      ioapic.setIrqLine(irq, asserted);
      if (irq < GSI_LEGACY_END && irq !== PIC_CASCADE_IRQ) pic.setIrqLine(irq, asserted);
    });
  }

  private warnOnce(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    this.options.warn?.(message);
  }

  /** The userspace PIC's INTA cycle: the vector to inject, or undefined when INT has dropped meanwhile. */
  acknowledgeInterrupt(): number | undefined {
    const pic = this.pic;
    return pic && pic.intAsserted ? pic.acknowledge() : undefined;
  }

  /** KVM_EXIT_IOAPIC_EOI for the userspace IOAPIC (split irqchip). */
  endOfInterrupt(vector: number): void {
    this.ioapic?.endOfInterrupt(vector);
  }

  /** Stops the PIT's timer and the doorbell watches. */
  dispose(): void {
    this.pit?.dispose();
    for (const watches of this.doorbellWatches.values()) for (const watch of watches) watch.close();
    this.doorbellWatches.clear();
  }

  /** Claims `entry`'s range on its bus for `busDevice` and records it; `model` defaults to the bus device. */
  private add(entry: Omit<BoardDevice, 'model'>, busDevice: BusDevice, model: object = busDevice): void {
    if (this.registry.has(entry.id)) throw new TsvmmError('internal', `two board devices are called '${entry.id}'`);
    (entry.bus === 'io' ? this.io : this.mmio).insert(entry.base, entry.length, busDevice);
    this.registry.set(entry.id, { ...entry, model });
  }

  /**
   * The interrupt line of ISA IRQ `irq`: a GSI of the in-kernel irqchip, or
   * with the split irqchip an edge on both userspace controllers, wired as
   * on a PC: the PIC's IRQ n and the IOAPIC's pin n (the MP table routes ISA
   * IRQ n to pin n). The guest masks the one it does not use.
   */
  private isaLine(irq: number): InterruptLine {
    const { pic, ioapic } = this;
    if (!pic || !ioapic) return this.options.host.kernelEdgeLine(irq);
    const toIoapic = ioapicInterruptLine(ioapic, irq);
    // IRQ 2 is the PIC's cascade input; no ISA device can drive it.
    if (irq === PIC_CASCADE_IRQ) return toIoapic;
    return { trigger: () => { pic.pulse(irq); toIoapic.trigger(); } };
  }

  /**
   * QEMU's fw_cfg as SeaBIOS reads it on a pc machine without graphics: its
   * console on COM1 (nographic), the CPU counts, no NUMA, no boot menu, the
   * RAM map, an empty boot order and "never retry" after "No bootable
   * device" (QEMU's default reboot timeout). ISA IRQ 0 stays on IOAPIC pin 0,
   * where tsvmm's GSI routes put the PIT, so there is no IRQ 0 override.
   */
  private addFwCfg(firmware: FirmwareSettings): void {
    const memory = this.options.dmaMemory;
    if (!memory) throw new TsvmmError('internal', 'fw_cfg needs the guest memory (BoardOptions.dmaMemory) for its DMA interface');
    const fwCfg = new FwCfg({ memory });
    fwCfg.setNoGraphic(true);
    fwCfg.setCpuCount(this.options.vcpuCount);
    fwCfg.setMaxCpus(this.options.vcpuCount);
    fwCfg.setNoNuma();
    fwCfg.setBootMenu(false);
    fwCfg.setIrq0Override(false);
    fwCfg.setE820(firmware.e820);
    fwCfg.setBootOrder([]);
    fwCfg.setBootFailWait(-1);
    this.add({ id: 'fw-cfg', bus: 'io', base: FW_CFG_PORT, length: FW_CFG_PORT_COUNT }, fwCfg);
  }

  /** The two cascaded 8259s (and their ELCR); their INT output goes to the boot vCPU. */
  private addPic(): Pic {
    const pic = new Pic({ onIntChange: (asserted) => this.options.onPicInt?.(asserted) });
    this.add({ id: 'pic-master', bus: 'io', base: PIC_MASTER_PORT, length: PIC_PORT_COUNT }, byteRegisters(pic.masterPorts), pic);
    this.add({ id: 'pic-slave', bus: 'io', base: PIC_SLAVE_PORT, length: PIC_PORT_COUNT }, byteRegisters(pic.slavePorts), pic.slavePorts);
    this.add({ id: 'pic-elcr', bus: 'io', base: PIC_ELCR_PORT, length: PIC_ELCR_PORT_COUNT }, byteRegisters(pic.elcrPorts), pic.elcrPorts);
    return pic;
  }

  /** KVM keeps the local APICs; this IOAPIC turns pin changes into MSIs for them. */
  private addIoapic(): Ioapic {
    const { msi, gsiRouter } = this.options.host;
    const ioapic = new Ioapic({
      sendMsi: (address, data) => msi.signal({ address, data }),
      // Mirror each pin's message into KVM's routing table (QEMU's
      // ioapic_update_kvm_routes), so level-triggered EOIs come back to us.
      routeChanged: (pin, route) => gsiRouter.setMsiRoute(pin, route),
      id: this.options.vcpuCount, // the MP table gives the IOAPIC the id after the last CPU
    });
    this.add({ id: 'ioapic', bus: 'mmio', base: IOAPIC_START, length: IOAPIC_MMIO_SIZE }, ioapic);
    return ioapic;
  }

  /** The PIT on ports 0x40-0x43 and 0x61, ticking IRQ 0 into the userspace PIC and IOAPIC. */
  private addPit(): Pit {
    const { host } = this.options;
    const pit = new Pit({
      now: () => host.now(),
      schedule: (delayNs, callback) => host.schedule(delayNs, callback),
      interrupt: this.isaLine(PIT_IRQ),
    });
    this.add({ id: 'pit', bus: 'io', base: PIT_PORT, length: PIT_PORT_COUNT, irq: PIT_IRQ }, byteRegisters(pit), pit);
    const speaker = new PitSpeakerPort({ pit, now: () => host.now() });
    this.add({ id: 'pit-speaker', bus: 'io', base: PIT_SPEAKER_PORT, length: 1 }, byteRegisters(speaker), speaker);
    return pit;
  }
}

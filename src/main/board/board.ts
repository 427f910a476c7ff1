// The PC platform devices of a tsvmm machine on their buses, as crosvm's
// x86_64 setup_legacy_devices lays them out: four 16550A UARTs (only COM1
// reaches the host), the CMOS/RTC, the i8042, the no-device ranges, and with
// the split irqchip the userspace PIC, IOAPIC and PIT. It also decides how a
// device's interrupt reaches KVM (irqfd, or the userspace IOAPIC).

import type { ClaimedRanges } from '../../shared/address-claims';
import { EFD_NONBLOCK } from '../../shared/kvm-abi';
import { check, native } from '../../shared/native';
import { IOAPIC_START } from '../layout';
import { Bus } from '../../devices/bus/bus';
import type { BusDevice, InterruptLine } from '../../devices/bus/bus-device';
import { CMOS_BASE_PORT, CMOS_PORT_COUNT, Cmos } from '../../devices/legacy/cmos';
import {
  I8042, I8042_BASE_PORT, I8042_BASE_PORT_WITH_PIT_SPEAKER, I8042_PORT_COUNT, I8042_PORT_COUNT_WITH_PIT_SPEAKER,
} from '../../devices/legacy/i8042';
import { IOAPIC_MMIO_SIZE, Ioapic, ioapicInterruptLine } from '../../devices/irqchip/ioapic';
import { ALWAYS_NULL_PORTS, NoDevice, PIT_NULL_PORTS } from '../../devices/legacy/no-device';
import {
  PIC_CASCADE_IRQ, PIC_ELCR_BASE_PORT, PIC_ELCR_PORT_COUNT, PIC_MASTER_BASE_PORT, PIC_PORT_COUNT, PIC_SLAVE_BASE_PORT, Pic,
} from '../../devices/irqchip/pic';
import { PIT_BASE_PORT, PIT_PORT_COUNT, PIT_SPEAKER_PORT, Pit, PitSpeakerPort } from '../../devices/legacy/pit';
import { NO_INTERRUPT } from '../../shared/exit-channel';
import { Serial } from '../../devices/legacy/serial';
import { byteRegisters } from '../../devices/bus/width-adapter';
import type { Vm } from '../kvm/kvm';

/** Legacy UARTs as a PC has them; only COM1 is connected to the host. */
const SERIAL_PORTS = [
  { base: 0x3f8, irq: 4, name: 'com1' },
  { base: 0x2f8, irq: 3, name: 'com2' },
  { base: 0x3e8, irq: 4, name: 'com3' },
  { base: 0x2e8, irq: 3, name: 'com4' },
] as const;
const SERIAL_PORT_COUNT = 8;

export interface ExtraDevice {
  base: number;
  length: number;
  device: BusDevice;
}

export interface PlatformOptions {
  vm: Vm;
  vcpuCount: number;
  memoryBelow4G: number;
  memoryAbove4G: number;
  splitIrqchip: boolean;
  /** Where COM1's output goes; undefined discards it. */
  serialOutput?: (bytes: Uint8Array) => void;
  /** Called when a guest read empties COM1's receive FIFO. */
  serialInputDrained?: () => void;
  /** The RTC's idea of "now" at boot, in ms since the epoch (default: the host clock). */
  rtcBase?: number;
  /** The guest pulsed the reset line through the i8042. */
  onReset: () => void;
  /** The userspace PIC's INT output changed (split irqchip; it goes to the boot vCPU's LINT0). */
  onPicInt?: (asserted: boolean) => void;
  extraIoDevices?: ExtraDevice[];
  extraMmioDevices?: ExtraDevice[];
}

export class Platform {
  readonly io = new Bus('io');
  readonly mmio = new Bus('mmio');
  readonly com1: Serial;
  /** The userspace PIC, IOAPIC and PIT of the split irqchip. */
  readonly pic?: Pic;
  readonly ioapic?: Ioapic;
  readonly pit?: Pit;
  private readonly eventFds: number[] = [];

  constructor(private readonly options: PlatformOptions) {
    const io = this.io;
    if (options.splitIrqchip) {
      this.pic = this.createPic();
      this.ioapic = this.createIoapic();
      this.pit = this.createPit();
    }
    let com1: Serial | undefined;
    for (const port of SERIAL_PORTS) {
      const isCom1 = port.name === 'com1';
      const serial = new Serial({
        interrupt: this.interruptLine(port.irq),
        output: isCom1 ? options.serialOutput : undefined,
        inputDrained: isCom1 ? options.serialInputDrained : undefined,
      });
      if (isCom1) com1 = serial;
      io.insert(port.base, SERIAL_PORT_COUNT, byteRegisters(serial));
    }
    this.com1 = com1!;
    const rtcOffset = options.rtcBase === undefined ? 0 : options.rtcBase - Date.now();
    io.insert(CMOS_BASE_PORT, CMOS_PORT_COUNT, byteRegisters(new Cmos({
      now: () => Date.now() + rtcOffset,
      memoryBelow4G: options.memoryBelow4G,
      memoryAbove4G: options.memoryAbove4G,
    })));
    // With the PIT in userspace, port 0x61 is the PIT's speaker/gate port
    // and the i8042 starts at 0x62, as crosvm lays it out.
    const i8042 = new I8042({
      onReset: options.onReset,
      basePort: this.pit ? I8042_BASE_PORT_WITH_PIT_SPEAKER : I8042_BASE_PORT,
    });
    if (this.pit) io.insert(I8042_BASE_PORT_WITH_PIT_SPEAKER, I8042_PORT_COUNT_WITH_PIT_SPEAKER, byteRegisters(i8042));
    else io.insert(I8042_BASE_PORT, I8042_PORT_COUNT, byteRegisters(i8042));
    for (const range of ALWAYS_NULL_PORTS) io.insert(range.base, range.length, new NoDevice(range.name));
    if (!this.pit) io.insert(PIT_NULL_PORTS.base, PIT_NULL_PORTS.length, new NoDevice(PIT_NULL_PORTS.name));
    for (const extra of options.extraIoDevices ?? []) io.insert(extra.base, extra.length, extra.device);
    for (const extra of options.extraMmioDevices ?? []) this.mmio.insert(extra.base, extra.length, extra.device);
  }

  /** The claimed addresses, as vCPU workers need them to answer the rest themselves. */
  claims(): ClaimedRanges {
    return {
      ports: this.io.ranges().map(({ base, length }) => ({ base, length })),
      mmio: this.mmio.ranges().map(({ base, length }) => ({ base, length })),
    };
  }

  /** The PIC's INTA cycle for the vCPU that injects its interrupts: the vector, or NO_INTERRUPT. */
  get acknowledgeInterrupt(): (() => number) | undefined {
    const pic = this.pic;
    return pic ? () => (pic.intAsserted ? pic.acknowledge() : NO_INTERRUPT) : undefined;
  }

  /** Where KVM_EXIT_IOAPIC_EOI goes: the userspace IOAPIC, if there is one. */
  get endOfInterrupt(): ((vector: number) => void) | undefined {
    const ioapic = this.ioapic;
    return ioapic ? (vector) => ioapic.endOfInterrupt(vector) : undefined;
  }

  /** Stops the PIT's timer and closes the irqfds. */
  dispose(): void {
    this.pit?.dispose();
    const addon = native();
    for (const fd of this.eventFds) addon.close(fd);
    this.eventFds.length = 0;
  }

  /**
   * The interrupt line of ISA IRQ `gsi`: an irqfd into the in-kernel PIC and
   * IOAPIC, or with the split irqchip an edge on both userspace controllers,
   * wired as on a PC: the PIC's IRQ n and the IOAPIC's pin n (the MP table
   * routes ISA IRQ n to pin n). The guest masks the one it does not use.
   */
  private interruptLine(gsi: number): InterruptLine {
    const { pic, ioapic } = this;
    if (ioapic && pic) {
      const toIoapic = ioapicInterruptLine(ioapic, gsi);
      // IRQ 2 is the PIC's cascade input; no ISA device can drive it.
      if (gsi === PIC_CASCADE_IRQ) return toIoapic;
      return { trigger: () => { pic.pulse(gsi); toIoapic.trigger(); } };
    }
    const addon = native();
    const fd = check('eventfd', addon.eventfd(0, EFD_NONBLOCK));
    this.eventFds.push(fd);
    this.options.vm.registerIrqfd(fd, gsi);
    return { trigger: () => { addon.eventfdWrite(fd, 1); } };
  }

  /** The two cascaded 8259s (and their ELCR); their INT output goes to the boot vCPU. */
  private createPic(): Pic {
    const pic = new Pic({ onIntChange: (asserted) => this.options.onPicInt?.(asserted) });
    this.io.insert(PIC_MASTER_BASE_PORT, PIC_PORT_COUNT, byteRegisters(pic.masterPorts));
    this.io.insert(PIC_SLAVE_BASE_PORT, PIC_PORT_COUNT, byteRegisters(pic.slavePorts));
    this.io.insert(PIC_ELCR_BASE_PORT, PIC_ELCR_PORT_COUNT, byteRegisters(pic.elcrPorts));
    return pic;
  }

  /** KVM keeps the local APICs; this IOAPIC turns pin changes into MSIs for them. */
  private createIoapic(): Ioapic {
    const vm = this.options.vm;
    const routes = new Map<number, { gsi: number; address: number; data: number }>();
    const ioapic = new Ioapic({
      sendMsi: (address, data) => { vm.signalMsi(address, data); },
      // Mirror each pin's message into KVM's routing table (QEMU's
      // ioapic_update_kvm_routes), so level-triggered EOIs come back to us.
      routeChanged: (pin, route) => {
        if (route) routes.set(pin, { gsi: pin, ...route });
        else routes.delete(pin);
        vm.setMsiRoutes([...routes.values()]);
      },
      id: this.options.vcpuCount, // the MP table gives the IOAPIC the id after the last CPU
    });
    this.mmio.insert(IOAPIC_START, IOAPIC_MMIO_SIZE, ioapic);
    return ioapic;
  }

  /** The PIT on ports 0x40-0x43 and 0x61, ticking IRQ 0 into the userspace IOAPIC. */
  private createPit(): Pit {
    const now = () => process.hrtime.bigint();
    const pit = new Pit({
      now,
      // Node timers have millisecond resolution; the PIT model folds edges
      // that a late timer missed into one interrupt, as a busy host would.
      schedule: (delayNs, callback) => {
        const timer = setTimeout(callback, Number(delayNs / 1_000_000n));
        return { cancel: () => clearTimeout(timer) };
      },
      interrupt: this.interruptLine(0),
    });
    this.io.insert(PIT_BASE_PORT, PIT_PORT_COUNT, byteRegisters(pit));
    this.io.insert(PIT_SPEAKER_PORT, 1, byteRegisters(new PitSpeakerPort({ pit, now })));
    return pit;
  }
}

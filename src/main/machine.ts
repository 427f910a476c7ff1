// The VM builder and its life cycle. It orchestrates: each step is a call
// into a module that owns it (kvm.ts for ioctls, src/arch for boot tables,
// src/devices for models, vcpu-thread.ts for workers, device-loop.ts for the
// exit hand-off). crosvm's x86_64 build_vm is the model.

import { randomBytes } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import * as os from 'node:os';
import { Bus } from '../devices/bus';
import type { BusDevice, InterruptLine } from '../devices/bus-device';
import { CMOS_BASE_PORT, CMOS_PORT_COUNT, Cmos } from '../devices/cmos';
import {
  I8042, I8042_BASE_PORT, I8042_BASE_PORT_WITH_PIT_SPEAKER, I8042_PORT_COUNT, I8042_PORT_COUNT_WITH_PIT_SPEAKER,
} from '../devices/i8042';
import { IOAPIC_MMIO_SIZE, Ioapic, ioapicInterruptLine } from '../devices/ioapic';
import { PIT_BASE_PORT, PIT_PORT_COUNT, PIT_SPEAKER_PORT, Pit, PitSpeakerPort } from '../devices/pit';
import { ALWAYS_NULL_PORTS, NoDevice, PIT_NULL_PORTS } from '../devices/no-device';
import { Serial } from '../devices/serial';
import { byteRegisters } from '../devices/width-adapter';
import { configureSystem, BootPlan, BootProtocolChoice } from '../arch/configure';
import { shapeCpuid } from '../arch/cpuid';
import { setLocalInterrupts } from '../arch/interrupts';
import { FIRST_ADDR_PAST_32BITS, IDENTITY_MAP_ADDR, IOAPIC_START, TSS_ADDR } from '../arch/layout';
import { guestMemoryLayout } from '../arch/memory-map';
import { MAX_MPTABLE_CPUS } from '../arch/mptable';
import { bootMsrs } from '../arch/msrs';
import { bootFpu, bootRegs, bootSregs, pvhBootRegs, pvhBootSregs } from '../arch/regs';
import { Doorbell } from '../shared/exit-channel';
import { DEFAULT_SPIN_LIMIT } from '../shared/exit-channel';
import { native, check } from '../shared/native';
import { EFD_NONBLOCK } from '../shared/kvm-abi';
import type { HandOffMode } from '../shared/vcpu-protocol';
import type { Regs } from '../shared/kvm-structs';
import type { VcpuStatValues } from '../shared/vcpu-stats';
import { DeviceLoop, DEFAULT_DEVICE_LOOP_OPTIONS } from './device-loop';
import { describeStop, GuestExit } from './guest-exit';
import { GuestRam } from './guest-ram';
import { Kvm, Vcpu, Vm } from './kvm';
import { VcpuThread } from './vcpu-thread';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter';

export class MachineConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MachineConfigError';
  }
}

export interface ExtraDevice {
  base: number;
  length: number;
  device: BusDevice;
}

export interface MachineConfig {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline?: string;
  cpus: number;
  memBytes: number;
  bootProtocol: BootProtocolChoice;
  splitIrqchip: boolean;
  handOff: HandOffMode;
  spinLimit?: number;
  /** Where COM1's output goes; undefined discards it. */
  serialOutput?: (bytes: Uint8Array) => void;
  /** The RTC's idea of "now" at boot, in ms since the epoch (default: the host clock). */
  rtcBase?: number;
  /** The KVM device node (default /dev/kvm). */
  kvmDevice?: string;
  /** Devices a caller adds before the VM starts (tests, benchmarks). */
  extraIoDevices?: ExtraDevice[];
  extraMmioDevices?: ExtraDevice[];
}

const MIB = 1024 * 1024;
/** How soon to offer COM1 host input again when its FIFO was full. */
const INPUT_RETRY_MS = 5;

/** Legacy UARTs as a PC has them; only COM1 is connected to the host. */
const SERIAL_PORTS = [
  { base: 0x3f8, irq: 4, name: 'com1' },
  { base: 0x2f8, irq: 3, name: 'com2' },
  { base: 0x3e8, irq: 4, name: 'com3' },
  { base: 0x2e8, irq: 3, name: 'com4' },
] as const;
const SERIAL_PORT_COUNT = 8;
/** IOAPIC pins KVM emulates with the split irqchip (the MP table's pins). */
const IOAPIC_PINS = 24;

export class Machine {
  private readonly ioBus = new Bus('io');
  private readonly mmioBus = new Bus('mmio');
  private readonly doorbell = new Doorbell();
  private readonly eventFds: number[] = [];
  private threads: VcpuThread[] = [];
  private deviceLoop?: DeviceLoop;
  private ending?: GuestExit;
  private finished?: (exit: GuestExit) => void;
  /** Pause bookkeeping: resolved by resume(); counts vCPUs that reported paused. */
  private resumed: Promise<void> = Promise.resolve();
  private release?: () => void;
  private pausedCount = 0;
  private onPaused?: () => void;
  private pendingInput: Uint8Array[] = [];
  private inputRetry?: NodeJS.Timeout;
  private com1!: Serial;
  /** The userspace IOAPIC and PIT of the split irqchip. */
  private ioapic?: Ioapic;
  private pit?: Pit;
  private closed = false;

  private constructor(
    readonly config: MachineConfig,
    private readonly kvm: Kvm,
    private readonly vm: Vm,
    readonly ram: GuestRam,
    readonly vcpus: Vcpu[],
    readonly boot: BootPlan,
  ) {}

  /** Builds the whole VM; nothing runs until run(). */
  static async create(config: MachineConfig): Promise<Machine> {
    const kvm = Kvm.open(config.kvmDevice);
    let vm: Vm | undefined;
    let workers: Worker[] = [];
    try {
      const hostMemory = os.totalmem();
      if (config.memBytes > hostMemory) {
        throw new MachineConfigError(`--mem ${config.memBytes / MIB} MiB is more than this host's ${Math.floor(hostMemory / MIB)} MiB of RAM; use a smaller --mem`);
      }
      const maxVcpus = Math.min(kvm.maxVcpus(), MAX_MPTABLE_CPUS);
      if (config.cpus > maxVcpus) {
        throw new MachineConfigError(`--cpus ${config.cpus} is more than this host and tsvmm's MP table allow (${maxVcpus}); use --cpus ${maxVcpus} or fewer`);
      }
      workers = Array.from({ length: config.cpus }, (_, id) => VcpuThread.startWorker(id));
      vm = kvm.createVm();
      vm.setTssAddress(TSS_ADDR);
      vm.setIdentityMapAddress(IDENTITY_MAP_ADDR);
      if (config.splitIrqchip) {
        vm.enableSplitIrqchip(IOAPIC_PINS);
      } else {
        vm.createIrqchip();
        vm.createPit2();
      }
      const layout = guestMemoryLayout(config.memBytes);
      const ram = GuestRam.create(vm, layout);
      const boot = configureSystem(ram.memory, layout, {
        kernel: config.kernel,
        initrd: config.initrd,
        cmdline: config.cmdline,
        cpuCount: config.cpus,
        protocol: config.bootProtocol,
        randomBytes: (count) => new Uint8Array(randomBytes(count)),
      });
      // Every vCPU exists before any runs: an AP created after the BSP has
      // sent its SIPI would never start.
      const vcpus = Array.from({ length: config.cpus }, (_, id) => vm!.createVcpu(id));
      const machine = new Machine(config, kvm, vm, ram, vcpus, boot);
      machine.configureVcpus(kvm.supportedCpuid());
      machine.attachDevices();
      await machine.spawnThreads(kvm.vcpuMmapSize(), workers);
      return machine;
    } catch (error) {
      await Promise.all(workers.map((worker) => worker.terminate()));
      vm?.close();
      kvm.close();
      throw error;
    }
  }

  private configureVcpus(supportedCpuid: ReturnType<Kvm['supportedCpuid']>): void {
    const msrs = bootMsrs();
    for (const vcpu of this.vcpus) {
      vcpu.setCpuid(shapeCpuid(supportedCpuid, { vcpuId: vcpu.id, vcpuCount: this.vcpus.length }));
      vcpu.setMsrs(msrs);
      vcpu.setFpu({ ...vcpu.getFpu(), ...bootFpu() });
      vcpu.setLapic(setLocalInterrupts(vcpu.getLapic()));
    }
    // Only the boot vCPU starts at the kernel entry; the others wait in KVM
    // for the INIT and SIPI the guest sends them.
    const bsp = this.vcpus[0];
    if (this.boot.protocol === 'pvh') {
      bsp.setSregs(pvhBootSregs(bsp.getSregs()));
      bsp.setRegs(pvhBootRegs(this.boot.entry));
    } else {
      bsp.setSregs(bootSregs(bsp.getSregs()));
      bsp.setRegs(bootRegs(this.boot.entry));
    }
  }

  /**
   * The interrupt line of ISA IRQ `gsi`: an irqfd into the in-kernel PIC and
   * IOAPIC, or with the split irqchip a pulse on the userspace IOAPIC's pin
   * (the MP table routes ISA IRQ n to pin n).
   */
  private interruptLine(gsi: number): InterruptLine {
    if (this.ioapic) return ioapicInterruptLine(this.ioapic, gsi);
    const addon = native();
    const fd = check('eventfd', addon.eventfd(0, EFD_NONBLOCK));
    this.eventFds.push(fd);
    this.vm.registerIrqfd(fd, gsi);
    return { trigger: () => { addon.eventfdWrite(fd, 1); } };
  }

  private attachDevices(): void {
    const io = this.ioBus;
    if (this.config.splitIrqchip) this.attachSplitIrqchip();
    for (const port of SERIAL_PORTS) {
      const serial = new Serial({
        interrupt: this.interruptLine(port.irq),
        output: port.name === 'com1' ? this.config.serialOutput : undefined,
        inputDrained: port.name === 'com1' ? () => this.feedInput() : undefined,
      });
      if (port.name === 'com1') this.com1 = serial;
      io.insert(port.base, SERIAL_PORT_COUNT, byteRegisters(serial));
    }
    const [below4G, above4G] = splitMemory(this.config.memBytes, this.ram.slots);
    const rtcOffset = this.config.rtcBase === undefined ? 0 : this.config.rtcBase - Date.now();
    io.insert(CMOS_BASE_PORT, CMOS_PORT_COUNT, byteRegisters(new Cmos({
      now: () => Date.now() + rtcOffset,
      memoryBelow4G: below4G,
      memoryAbove4G: above4G,
    })));
    // With the PIT in userspace, port 0x61 is the PIT's speaker/gate port
    // and the i8042 starts at 0x62, as crosvm lays it out.
    const i8042 = new I8042({
      onReset: () => this.end({ code: 0, reason: 'guest reset (i8042)' }),
      basePort: this.pit ? I8042_BASE_PORT_WITH_PIT_SPEAKER : I8042_BASE_PORT,
    });
    if (this.pit) io.insert(I8042_BASE_PORT_WITH_PIT_SPEAKER, I8042_PORT_COUNT_WITH_PIT_SPEAKER, byteRegisters(i8042));
    else io.insert(I8042_BASE_PORT, I8042_PORT_COUNT, byteRegisters(i8042));
    for (const range of ALWAYS_NULL_PORTS) io.insert(range.base, range.length, new NoDevice(range.name));
    if (!this.config.splitIrqchip) io.insert(PIT_NULL_PORTS.base, PIT_NULL_PORTS.length, new NoDevice(PIT_NULL_PORTS.name));
    for (const extra of this.config.extraIoDevices ?? []) io.insert(extra.base, extra.length, extra.device);
    for (const extra of this.config.extraMmioDevices ?? []) this.mmioBus.insert(extra.base, extra.length, extra.device);
  }

  /** KVM keeps the local APICs; the IOAPIC (MMIO) and the PIT (ports 0x40-0x43, 0x61) live here. */
  private attachSplitIrqchip(): void {
    const vm = this.vm;
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
      id: this.vcpus.length, // the MP table gives the IOAPIC the id after the last CPU
    });
    this.ioapic = ioapic;
    this.mmioBus.insert(IOAPIC_START, IOAPIC_MMIO_SIZE, ioapic);
    const now = () => process.hrtime.bigint();
    this.pit = new Pit({
      now,
      // Node timers have millisecond resolution; the PIT model folds edges
      // that a late timer missed into one interrupt, as a busy host would.
      schedule: (delayNs, callback) => {
        const timer = setTimeout(callback, Number(delayNs / 1_000_000n));
        return { cancel: () => clearTimeout(timer) };
      },
      interrupt: this.interruptLine(0),
    });
    this.ioBus.insert(PIT_BASE_PORT, PIT_PORT_COUNT, byteRegisters(this.pit));
    this.ioBus.insert(PIT_SPEAKER_PORT, 1, byteRegisters(new PitSpeakerPort({ pit: this.pit, now })));
  }

  private async spawnThreads(runSize: number, workers: Worker[]): Promise<void> {
    const claims = {
      ports: this.ioBus.ranges().map(({ base, length }) => ({ base, length })),
      mmio: this.mmioBus.ranges().map(({ base, length }) => ({ base, length })),
    };
    this.threads = await Promise.all(this.vcpus.map((vcpu) => VcpuThread.spawn({
      vcpuId: vcpu.id,
      vcpuFd: vcpu.fd,
      runAddress: vcpu.mapRunArea(runSize),
      runSize,
      doorbell: this.doorbell.buffer,
      claims,
      handOff: this.config.handOff,
      spinLimit: this.config.spinLimit ?? DEFAULT_SPIN_LIMIT,
    }, workers[vcpu.id])));
    const mode = this.config.handOff;
    const ioapic = this.ioapic;
    this.deviceLoop = new DeviceLoop(this.doorbell, this.threads, {
      io: this.ioBus,
      mmio: this.mmioBus,
      endOfInterrupt: ioapic ? (vector) => ioapic.endOfInterrupt(vector) : undefined,
    }, {
      ...DEFAULT_DEVICE_LOOP_OPTIONS,
      poll: mode === 'spin-park' || mode === 'park',
    });
    const loop = this.deviceLoop;
    this.threads.forEach((thread, index) => {
      const port = thread.devicePort;
      if (!port) return;
      if (mode === 'post-message') port.on('message', (sequence: number) => loop.serveOne(index, sequence));
      else Comlink.expose({ serve: (vcpuId: number, sequence: number) => loop.serveOne(vcpuId, sequence) }, nodeEndpoint(port));
    });
  }

  /** Runs every vCPU; resolves once the guest has ended and every vCPU has stopped. */
  async run(): Promise<GuestExit> {
    const ended = new Promise<GuestExit>((resolve) => { this.finished = resolve; });
    if (this.ending) this.finished?.(this.ending);
    this.deviceLoop!.start();
    const drives = this.threads.map((thread) => this.driveVcpu(thread).catch(
      (error: Error) => this.end({ code: 1, reason: `vCPU ${thread.vcpuId} worker failed: ${error.message}` }),
    ));
    const exit = await ended;
    this.resume(); // a paused vCPU must come back to see the stop
    await Promise.all(drives);
    this.deviceLoop!.stop();
    return exit;
  }

  /** Runs one vCPU until it stops for good, going round pauses. */
  private async driveVcpu(thread: VcpuThread): Promise<void> {
    for (;;) {
      const stop = await thread.start();
      if (stop.kind === 'stopped') return;
      if (stop.kind === 'paused') {
        this.pausedCount++;
        this.onPaused?.();
        await this.resumed;
        if (this.ending) return;
        continue;
      }
      this.end(describeStop(thread.vcpuId, stop, this.vcpus[thread.vcpuId], this.ram.memory));
      return;
    }
  }

  /** Stops every vCPU outside KVM_RUN; resolves when all are paused. */
  async pause(): Promise<void> {
    if (this.ending) return;
    let release!: () => void;
    this.resumed = new Promise<void>((resolve) => { release = resolve; });
    this.release = release;
    this.pausedCount = 0;
    const allPaused = new Promise<void>((resolve) => {
      this.onPaused = () => { if (this.pausedCount === this.threads.length) resolve(); };
    });
    for (const thread of this.threads) thread.requestExit('pause');
    await allPaused;
    this.onPaused = undefined;
  }

  /** Lets paused vCPUs run again. */
  resume(): void {
    this.release?.();
    this.release = undefined;
  }

  /** A vCPU's general-purpose registers, read by its own worker (over comlink); only while paused. */
  registers(vcpuId: number): Promise<Regs> {
    if (this.release === undefined) throw new MachineConfigError('registers can be read only while the machine is paused (pause() first)');
    return this.threads[vcpuId].registers();
  }

  /** Ends the guest (from a device, a signal, or a vCPU) and stops every vCPU. */
  end(exit: GuestExit): void {
    if (this.ending) return;
    this.ending = exit;
    for (const thread of this.threads) thread.requestExit('stop');
    this.finished?.(exit);
  }

  /** Host input for COM1; what its FIFO cannot take now waits for the guest to read. */
  sendInput(bytes: Uint8Array): void {
    this.pendingInput.push(bytes);
    this.feedInput();
  }

  private feedInput(): void {
    while (this.pendingInput.length > 0) {
      const next = this.pendingInput[0];
      const accepted = this.com1.enqueueInput(next);
      if (accepted < next.length) {
        this.pendingInput[0] = next.subarray(accepted);
        // The guest's reads call feedInput again; a guest that cleared its
        // FIFO instead never reads it empty, so look again in a moment too.
        if (!this.inputRetry) {
          this.inputRetry = setTimeout(() => { this.inputRetry = undefined; this.feedInput(); }, INPUT_RETRY_MS);
          this.inputRetry.unref();
        }
        return;
      }
      this.pendingInput.shift();
    }
  }

  stats(): VcpuStatValues[] {
    return this.threads.map((thread) => thread.stats());
  }

  get deviceStats(): { served: number; parks: number } {
    return { served: this.deviceLoop?.served ?? 0, parks: this.deviceLoop?.parks ?? 0 };
  }

  /** Terminates the workers and closes every fd. Guest RAM stays mapped until the process exits. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.deviceLoop?.stop();
    this.pit?.dispose();
    if (this.inputRetry) clearTimeout(this.inputRetry);
    await Promise.all(this.threads.map((thread) => thread.terminate()));
    const addon = native();
    for (const fd of this.eventFds) addon.close(fd);
    for (const vcpu of this.vcpus) vcpu.close();
    this.vm.close();
    this.kvm.close();
  }
}

function splitMemory(memBytes: number, slots: GuestRam['slots']): [number, number] {
  const above = slots.filter((s) => s.guestAddress >= FIRST_ADDR_PAST_32BITS).reduce((sum, s) => sum + s.size, 0);
  return [memBytes - above, above];
}

// The VM builder and its life cycle. It orchestrates: each step is a call
// into a module that owns it (kvm.ts for ioctls, src/arch for boot tables,
// src/devices for models, vcpu-thread.ts for workers, device-loop.ts for the
// exit hand-off). crosvm's x86_64 build_vm is the model.

import type { Worker } from 'node:worker_threads';
import * as os from 'node:os';
import { configureSystem, BootPlan, BootProtocolChoice } from '../arch/configure';
import { shapeCpuid } from '../arch/cpuid';
import { setLocalInterrupts } from '../arch/local-interrupts';
import { FIRST_ADDR_PAST_32BITS, IDENTITY_MAP_ADDR, TSS_ADDR } from '../layout';
import { guestMemoryLayout } from '../arch/memory-map';
import { MAX_MPTABLE_CPUS } from '../arch/mptable';
import { bootMsrs } from '../arch/msrs';
import { bootFpu, bootRegs, bootSregs, pvhBootRegs, pvhBootSregs } from '../arch/regs';
import { DEFAULT_SPIN_LIMIT, Doorbell } from '../../shared/exit-channel';
import type { HandOffMode } from '../../shared/vcpu-protocol';
import type { Regs } from '../../shared/kvm-structs';
import type { VcpuStatValues } from '../../shared/vcpu-stats';
import { DeviceLoop, DEFAULT_DEVICE_LOOP_OPTIONS } from './device-loop';
import { describeStop, GuestExit } from './vm-exit';
import { GuestRam } from '../kvm/guest-ram';
import { SerialInputQueue } from '../board/serial-input';
import { ExtraDevice, Platform } from '../board/board';
import { Kvm, Vcpu, Vm } from '../kvm/kvm';
import { VcpuThread } from './vcpu-thread';
import { startVcpuWorker } from './vcpu-worker-start';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/**
 * Bytes for the kernel's RNG seed. node:crypto takes ~2.5 ms to load, on the
 * start-up path, and only Linux boots need it, so it is loaded here.
 */
function secureRandomBytes(count: number): Uint8Array {
  const { randomBytes } = require('node:crypto') as typeof import('node:crypto');
  return new Uint8Array(randomBytes(count));
}

export class MachineConfigError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('usage', message, options);
  }
}

export type { ExtraDevice } from '../board/board';

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
  /**
   * vCPU workers already booting, from startVcpuWorker (the CLI starts them
   * before it loads the rest of tsvmm). The machine owns them from here on:
   * it starts any that are missing and ends the ones it does not need.
   */
  startedWorkers?: Worker[];
}

const MIB = 1024 * 1024;
/** IOAPIC pins KVM emulates with the split irqchip (the MP table's pins). */
const IOAPIC_PINS = 24;

export class Machine {
  private readonly doorbell = new Doorbell();
  private platform!: Platform;
  private readonly input = new SerialInputQueue((bytes) => this.platform.com1.enqueueInput(bytes));
  private threads: VcpuThread[] = [];
  private deviceLoop?: DeviceLoop;
  private ending?: GuestExit;
  private finished?: (exit: GuestExit) => void;
  /** Pause bookkeeping: resolved by resume(); counts vCPUs that reported paused. */
  private resumed: Promise<void> = Promise.resolve();
  private release?: () => void;
  private pausedCount = 0;
  private onPaused?: () => void;
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
    const workers: Worker[] = [...(config.startedWorkers ?? [])];
    let kvm: Kvm | undefined;
    let vm: Vm | undefined;
    try {
      kvm = Kvm.open(config.kvmDevice);
      const hostMemory = os.totalmem();
      if (config.memBytes > hostMemory) {
        throw new MachineConfigError(`--mem ${config.memBytes / MIB} MiB is more than this host's ${Math.floor(hostMemory / MIB)} MiB of RAM; use a smaller --mem`);
      }
      const maxVcpus = Math.min(kvm.maxVcpus(), MAX_MPTABLE_CPUS);
      if (config.cpus > maxVcpus) {
        throw new MachineConfigError(`--cpus ${config.cpus} is more than this host and tsvmm's MP table allow (${maxVcpus}); use --cpus ${maxVcpus} or fewer`);
      }
      await Promise.all(workers.splice(config.cpus).map((worker) => worker.terminate()));
      for (let id = workers.length; id < config.cpus; id++) workers.push(startVcpuWorker(id));
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
        randomBytes: secureRandomBytes,
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
      kvm?.close();
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

  private attachDevices(): void {
    const [memoryBelow4G, memoryAbove4G] = splitMemory(this.config.memBytes, this.ram.slots);
    this.platform = new Platform({
      vm: this.vm,
      vcpuCount: this.vcpus.length,
      memoryBelow4G,
      memoryAbove4G,
      splitIrqchip: this.config.splitIrqchip,
      serialOutput: this.config.serialOutput,
      serialInputDrained: () => this.input.feed(),
      rtcBase: this.config.rtcBase,
      onReset: () => this.end({ code: 0, reason: 'guest reset (i8042)' }),
      onPicInt: (asserted) => this.threads[0]?.setExternalInterrupt(asserted),
      extraIoDevices: this.config.extraIoDevices,
      extraMmioDevices: this.config.extraMmioDevices,
    });
  }

  private async spawnThreads(runSize: number, workers: Worker[]): Promise<void> {
    const platform = this.platform;
    const claims = platform.claims();
    this.threads = await Promise.all(this.vcpus.map((vcpu) => VcpuThread.spawn({
      vcpuId: vcpu.id,
      vcpuFd: vcpu.fd,
      runAddress: vcpu.mapRunArea(runSize),
      runSize,
      doorbell: this.doorbell.buffer,
      claims,
      handOff: this.config.handOff,
      spinLimit: this.config.spinLimit ?? DEFAULT_SPIN_LIMIT,
      // With the split irqchip the PIC is ours, and its INT line goes to the boot vCPU's LINT0.
      injectsExtint: this.config.splitIrqchip && vcpu.id === 0,
    }, workers[vcpu.id])));
    const mode = this.config.handOff;
    this.deviceLoop = new DeviceLoop(this.doorbell, this.threads, {
      io: platform.io,
      mmio: platform.mmio,
      endOfInterrupt: platform.endOfInterrupt,
      acknowledgeInterrupt: platform.acknowledgeInterrupt,
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
    this.input.push(bytes);
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
    this.input.dispose();
    await Promise.all(this.threads.map((thread) => thread.terminate()));
    this.platform?.dispose();
    for (const vcpu of this.vcpus) vcpu.close();
    this.vm.close();
    this.kvm.close();
  }
}

function splitMemory(memBytes: number, slots: GuestRam['slots']): [number, number] {
  const above = slots.filter((s) => s.guestAddress >= FIRST_ADDR_PAST_32BITS).reduce((sum, s) => sum + s.size, 0);
  return [memBytes - above, above];
}

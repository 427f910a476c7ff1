// The VM builder and its life cycle. It orchestrates: each step is a call
// into a module that owns it (kvm/ for ioctls, arch/ for boot tables, board/
// for the devices, vcpu-thread.ts for workers, device-loop.ts for the exit
// hand-off). crosvm's x86_64 build_vm is the model.

import type { Worker } from 'node:worker_threads';
import * as os from 'node:os';
import { configureSystem, BootPlan } from '../arch/configure';
import { shapeCpuid } from '../arch/cpuid';
import { setLocalInterrupts } from '../arch/local-interrupts';
import { FIRMWARE_IDENTITY_MAP_ADDR, FIRMWARE_TSS_ADDR, FIRST_ADDR_PAST_32BITS, IDENTITY_MAP_ADDR, IOAPIC_PINS, TSS_ADDR } from '../layout';
import { FirmwarePlacement, PAM_SEGMENTED_RAM, firmwareE820, placeFirmware } from '../arch/firmware';
import type { RamRegion } from '../arch/memory-map';
import { FirmwareRom } from '../kvm/firmware-rom';
import { guestMemoryLayout } from '../arch/memory-map';
import { MAX_MPTABLE_CPUS } from '../arch/mptable';
import { bootMsrs } from '../arch/msrs';
import { bootFpu, bootRegs, bootSregs, pvhBootRegs, pvhBootSregs } from '../arch/regs';
import { Board, ExtraDevice } from '../board/board';
import { PciPlacement, pciInterruptRoutes, planPci } from '../board/pci';
import { HostDevice, createHostDevices, hostDeviceIds } from './virtio-devices';
import { VirtioConsole } from '../../devices/virtio/console';
import { openFilesProblem } from './open-files';
import { SerialInputQueue } from '../board/serial-input';
import { ClaimTable } from '../../shared/address-claims';
import { Doorbell } from '../../shared/exit-channel';
import type { Regs } from '../../shared/kvm-structs';
import type { HandOffHistogram, VcpuStatValues } from '../../shared/vcpu-stats';
import { TsvmmError } from '../../shared/errors';
import { KvmBoardHost } from './board-host';
import { DeviceLoop, DEFAULT_DEVICE_LOOP_OPTIONS } from './device-loop';
import { DeviceWaker } from './device-wake';
import { PauseRendezvous } from './pause-rendezvous';
import { ALL_MMIO, ALL_PORTS, DeviceAddressLog, VmLog, bootLines, forwardsEverything, logs, pciLines, reportUnclaimed } from './log';
import { VmConfig, resolveVmConfig } from './vm-config';
import type { LoadedSnapshot, SnapshotWriteStats } from './snapshot-file';

/** snapshot-file.ts (and node:crypto with it) is loaded only when a snapshot is read or written: ~5 ms of start-up otherwise. */
const snapshotFile = () => require('./snapshot-file') as typeof import('./snapshot-file');
import { VmExit, vmExitOf } from './vm-exit';
import { GuestRam } from '../kvm/guest-ram';
import { Kvm, Vcpu, VcpuState, Vm } from '../kvm/kvm';
import { VcpuThread } from './vcpu-thread';
import { startVcpuWorker } from './vcpu-worker-start';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter';

/**
 * Bytes for the kernel's RNG seed. node:crypto takes ~2.5 ms to load, on the
 * start-up path, and only Linux boots need it, so it is loaded here.
 */
/** A vCPU's saved state with the ExtINT vector its worker says KVM holds parked (VcpuState.parkedExternalInterrupt). */
function withParkedInterrupt(state: VcpuState, vector: number | undefined): VcpuState {
  return vector === undefined ? state : { ...state, parkedExternalInterrupt: vector };
}

function secureRandomBytes(count: number): Uint8Array {
  const { randomBytes } = require('node:crypto') as typeof import('node:crypto');
  return new Uint8Array(randomBytes(count));
}

class MachineConfigError extends TsvmmError {
  constructor(message: string) {
    super('usage', message);
  }
}

export type { ExtraDevice } from '../board/board';

/** The firmware image of a --bios boot and where it goes, or undefined for a kernel boot. */
function firmwareOf(config: VmConfig, hooks: MachineHooks): { image: Uint8Array; placement: FirmwarePlacement } | undefined {
  if (config.bios === undefined) return undefined;
  if (!hooks.firmware) throw new MachineConfigError(`the config's bios is ${config.bios}, but MachineHooks.firmware has no image; pass the file's bytes`);
  return { image: hooks.firmware, placement: placeFirmware(hooks.firmware.length, config.bios) };
}

/** What a Machine needs besides its VmConfig: bytes, callbacks and objects that are not configuration. */
export interface MachineHooks {
  /** The kernel image (the config's `kernel` names where it came from); not used when the config has `bios`. */
  kernel?: Uint8Array;
  /** The firmware image the config's `bios` names. */
  firmware?: Uint8Array;
  /** Where the debug console's bytes go (port 0x402) when the config has `debugcon`; default: discarded. */
  debugconOutput?: (bytes: Uint8Array) => void;
  initrd?: Uint8Array;
  /** Where COM1's output goes; undefined discards it. */
  serialOutput?: (bytes: Uint8Array) => void;
  /** The KVM device node (default /dev/kvm). */
  kvmDevice?: string;
  /** Devices a caller adds before the VM starts (tests, benchmarks). */
  extraDevices?: readonly ExtraDevice[];
  /**
   * vCPU workers already booting, from startVcpuWorker (the CLI starts them
   * before it loads the rest of tsvmm). The machine owns them from here on:
   * it starts any that are missing and ends the ones it does not need.
   */
  startedWorkers?: Worker[];
  /** Where the virtio-console's output goes when its config names no file (the CLI's terminal). */
  consoleOutput?: (bytes: Uint8Array) => void;
  /** Guest mistakes tsvmm refused (a BAR over another device, a malformed virtqueue), one line each, once. */
  warn?: (message: string) => void;
  /** -v / --log-level: how the VM was built, and at debug level each unclaimed address's first access. */
  log?: VmLog;
}

/** What Machine.restore needs: the hooks of create() without the images (the snapshot's memory holds what they loaded). */
export type RestoreHooks = Omit<MachineHooks, 'kernel' | 'initrd' | 'firmware'>;

/**
 * built -> running <-> pausing -> paused -> running ... -> stopping -> stopped -> closed.
 * close() is allowed from every state; run() only from built.
 */
export type MachineState = 'built' | 'running' | 'pausing' | 'paused' | 'stopping' | 'stopped' | 'closed';

const MIB = 1024 * 1024;

export class Machine {
  private readonly doorbell = new Doorbell();
  /** What the vCPUs forward; republished whenever a device moves. */
  private readonly claims = new ClaimTable();
  private board!: Board;
  private host!: KvmBoardHost;
  private readonly input = new SerialInputQueue(() => this.board?.com1);
  private threads: VcpuThread[] = [];
  private deviceLoop?: DeviceLoop;
  /** With the native hand-off: how vCPUs wake the parked device thread. */
  private deviceWaker?: DeviceWaker;
  private currentState: MachineState = 'built';
  /** The first reason to end; the VM's exit. */
  private ending?: VmExit;
  private finished?: (exit: VmExit) => void;
  private running?: Promise<VmExit>;
  private rendezvous?: PauseRendezvous;
  private closing?: Promise<void>;

  private constructor(
    readonly config: VmConfig,
    private readonly hooks: MachineHooks,
    private readonly kvm: Kvm,
    private readonly vm: Vm,
    readonly ram: GuestRam,
    readonly vcpus: Vcpu[],
    /** How the kernel was loaded; undefined for a firmware boot, which starts at the reset vector. */
    readonly boot: BootPlan | undefined,
    private readonly firmwareRom: FirmwareRom | undefined,
    private readonly layout: readonly RamRegion[],
    private readonly pciPlan: readonly PciPlacement[],
    private readonly hostDevices: readonly HostDevice[],
  ) {}

  /** Builds the whole VM from a (partial) VmConfig; nothing runs until run(). */
  static create(config: Partial<VmConfig>, hooks: MachineHooks): Promise<Machine> {
    return Machine.build(resolveVmConfig(config), hooks, undefined);
  }

  /**
   * Builds the VM a snapshot directory holds (snapshot()): the same devices
   * from its VmConfig, guest RAM mapped copy-on-write from its memory file,
   * every vCPU, the in-kernel irqchip and each device put back as they were.
   * No kernel is loaded and no boot table written; run() continues the guest
   * where it stopped. Output and files attach to this process's `hooks`.
   * `source` is the directory, or what readSnapshot read from it (with its
   * config's serial and hand-off changed for this process, as the CLI does).
   */
  static async restore(source: string | LoadedSnapshot, hooks: RestoreHooks): Promise<Machine> {
    const saved = typeof source === 'string' ? snapshotFile().readSnapshot(source) : source;
    if (saved.config.bios !== undefined) {
      throw new (snapshotFile().SnapshotError)(`${saved.memoryFile}: the snapshot is of a --bios guest, which tsvmm cannot restore yet (its firmware ROM is not in the snapshot)`);
    }
    return Machine.build(resolveVmConfig(saved.config, 'the snapshot\'s config'), hooks, saved);
  }

  private static async build(resolved: VmConfig, hooks: MachineHooks, saved: LoadedSnapshot | undefined): Promise<Machine> {
    const workers: Worker[] = [...(hooks.startedWorkers ?? [])];
    let kvm: Kvm | undefined;
    let vm: Vm | undefined;
    let ram: GuestRam | undefined;
    let rom: FirmwareRom | undefined;
    let machine: Machine | undefined;
    let devices: HostDevice[] = [];
    try {
      kvm = Kvm.open(hooks.kvmDevice);
      const memBytes = resolved.memoryMiB * MIB;
      const hostMemory = os.totalmem();
      if (memBytes > hostMemory) {
        throw new MachineConfigError(`--mem ${resolved.memoryMiB} MiB is more than this host's ${Math.floor(hostMemory / MIB)} MiB of RAM; use a smaller --mem`);
      }
      const maxVcpus = Math.min(kvm.maxVcpus(), MAX_MPTABLE_CPUS);
      if (resolved.cpus > maxVcpus) {
        throw new MachineConfigError(`--cpus ${resolved.cpus} is more than this host and tsvmm's MP table allow (${maxVcpus}); use --cpus ${maxVcpus} or fewer`);
      }
      const openFiles = openFilesProblem(resolved.cpus, resolved.devices.length);
      if (openFiles) throw new TsvmmError('host', openFiles);
      await Promise.all(workers.splice(resolved.cpus).map((worker) => worker.terminate()));
      for (let id = workers.length; id < resolved.cpus; id++) workers.push(startVcpuWorker(id));
      const firmware = firmwareOf(resolved, hooks);
      vm = kvm.createVm();
      // A firmware image may reach down to 4 GiB - 16 MiB: KVM's pages then go below it, where QEMU puts them.
      vm.setTssAddress(firmware ? FIRMWARE_TSS_ADDR : TSS_ADDR);
      vm.setIdentityMapAddress(firmware ? FIRMWARE_IDENTITY_MAP_ADDR : IDENTITY_MAP_ADDR);
      if (resolved.irqchip === 'split') {
        vm.enableSplitIrqchip(IOAPIC_PINS);
      } else {
        vm.createIrqchip();
        vm.createPit2();
      }
      const pciPlan = planPci(hostDeviceIds(resolved.devices));
      const layout = guestMemoryLayout(memBytes);
      ram = saved ? GuestRam.mapFile(vm, saved.memoryFile, saved.memorySlots, saved.memoryDataPages) : GuestRam.create(vm, layout, firmware ? PAM_SEGMENTED_RAM : undefined);
      const guestRam = ram;
      devices = createHostDevices(resolved.devices, (address, length) => guestRam.locate(address, length), hooks.consoleOutput);
      let boot: BootPlan | undefined;
      if (saved) {
        // The memory file holds the kernel, the boot tables and all the guest did since.
      } else if (firmware) {
        rom = FirmwareRom.map(kvm, vm, ram.nextFreeSlot, firmware.placement.romBase, firmware.image);
        if (!rom.readOnly) hooks.warn?.('this host has no KVM_CAP_READONLY_MEM: the firmware image below 4 GiB is writable by the guest');
        ram.memory.write(firmware.placement.isaBase, firmware.image.subarray(firmware.placement.isaImageOffset));
      } else {
        if (!hooks.kernel) throw new MachineConfigError('MachineHooks.kernel has no kernel image; pass the bytes of the file the config\'s kernel names (or a bios and MachineHooks.firmware)');
        boot = configureSystem(ram.memory, layout, {
          kernel: hooks.kernel,
          initrd: hooks.initrd,
          cmdline: resolved.cmdline,
          cmdlineBase: resolved.cmdlineBase,
          cpuCount: resolved.cpus,
          protocol: resolved.bootProtocol,
          randomBytes: secureRandomBytes,
          pciInterrupts: pciInterruptRoutes(pciPlan),
        });
      }
      // Every vCPU exists before any runs: an AP created after the BSP has
      // sent its SIPI would never start.
      const vcpus: Vcpu[] = [];
      for (let id = 0; id < resolved.cpus; id++) vcpus.push(vm.createVcpu(id));
      machine = new Machine(resolved, hooks, kvm, vm, ram, vcpus, boot, rom, layout, pciPlan, devices);
      if (saved) machine.restoreKvmState(kvm.supportedCpuid(), saved);
      else machine.configureVcpus(kvm.supportedCpuid());
      machine.attachDevices();
      machine.logBuild();
      await machine.spawnThreads(kvm.vcpuMmapSize(), workers, saved?.vcpus);
      // After the threads exist: a restored PIC may assert INT to the boot vCPU at once.
      if (saved) {
        machine.board.restore(saved.devices);
        if (saved.com1Input) machine.input.push(saved.com1Input);
      }
      return machine;
    } catch (error) {
      await Promise.all(workers.map((worker) => worker.terminate()));
      if (machine) {
        await machine.close();
      } else {
        await Promise.all(devices.map((device) => device.dispose()));
        ram?.release();
        vm?.close();
        rom?.release();
        kvm?.close();
      }
      throw error;
    }
  }

  get state(): MachineState {
    return this.currentState;
  }

  private configureVcpus(supportedCpuid: ReturnType<Kvm['supportedCpuid']>): void {
    const msrs = bootMsrs();
    const boot = this.boot;
    for (const vcpu of this.vcpus) {
      vcpu.setCpuid(shapeCpuid(supportedCpuid, { vcpuId: vcpu.id, vcpuCount: this.vcpus.length }));
      vcpu.setLapic(setLocalInterrupts(vcpu.getLapic()));
      // Firmware starts from the reset state KVM gives a new vCPU (real mode, CS:IP f000:fff0) and sets the rest up itself.
      if (!boot) continue;
      vcpu.setMsrs(msrs);
      vcpu.setFpu({ ...vcpu.getFpu(), ...bootFpu() });
    }
    if (!boot) return;
    // Only the boot vCPU starts at the kernel entry; the others wait in KVM
    // for the INIT and SIPI the guest sends them.
    const bsp = this.vcpus[0];
    if (boot.protocol === 'pvh') {
      bsp.setSregs(pvhBootSregs(bsp.getSregs()));
      bsp.setRegs(pvhBootRegs(boot.entry));
    } else {
      bsp.setSregs(bootSregs(bsp.getSregs()));
      bsp.setRegs(bootRegs(boot.entry));
    }
  }

  /**
   * A restored VM: the CPUID tsvmm gives (on the host that took the
   * snapshot, the same), then the VM's irqchip, PIT and clock, then each
   * vCPU's registers, LAPIC, MSRs and events.
   */
  private restoreKvmState(supportedCpuid: ReturnType<Kvm['supportedCpuid']>, saved: LoadedSnapshot): void {
    for (const vcpu of this.vcpus) vcpu.setCpuid(shapeCpuid(supportedCpuid, { vcpuId: vcpu.id, vcpuCount: this.vcpus.length }));
    this.vm.restoreState(saved.vm);
    for (const vcpu of this.vcpus) vcpu.restoreState(saved.vcpus[vcpu.id]);
  }

  private attachDevices(): void {
    const above = this.ram.slots.filter((s) => s.guestAddress >= FIRST_ADDR_PAST_32BITS).reduce((sum, s) => sum + s.size, 0);
    const memBytes = this.config.memoryMiB * MIB;
    this.host = new KvmBoardHost(this.vm, this.config.irqchip, this.firmwareRom ? (address, size, readOnly) => this.ram.setReadOnly(address, size, readOnly) : undefined);
    this.board = new Board({
      vcpuCount: this.vcpus.length,
      memoryBelow4G: memBytes - above,
      memoryAbove4G: above,
      irqchip: this.config.irqchip,
      host: this.host,
      serialOutput: this.hooks.serialOutput,
      serialInputDrained: () => this.input.feed(),
      rtcBase: this.config.rtcBase === undefined ? undefined : Date.parse(this.config.rtcBase),
      onReset: (source) => this.end({ kind: 'reset', source }),
      firmware: this.firmwareRom ? { e820: firmwareE820(this.layout) } : undefined,
      debugconOutput: this.config.debugcon ? (this.hooks.debugconOutput ?? (() => {})) : undefined,
      onPicInt: (asserted) => this.threads[0]?.setExternalInterrupt(asserted),
      extraDevices: this.hooks.extraDevices,
      pciDevices: this.pciPlan.map((placement, i) => ({ placement, backend: this.hostDevices[i].backend })),
      dmaMemory: this.ram.memory,
      warn: (message) => this.hooks.warn?.(message),
      onRangesChanged: () => this.publishClaims(),
    });
    this.publishClaims();
  }

  private publishClaims(): void {
    if (forwardsEverything(this.hooks.log)) this.claims.publish(ALL_PORTS, ALL_MMIO);
    else this.claims.publish(this.board.io.ranges(), this.board.mmio.ranges());
    this.deviceAddresses?.update(this.board);
  }

  /** With an info log: the devices' addresses, logged at build and on every move. */
  private deviceAddresses?: DeviceAddressLog;

  private logBuild(): void {
    const log = this.hooks.log;
    if (!logs(log, 'info')) return;
    for (const line of bootLines(this.boot, this.hooks.kernel?.length ?? 0, this.config.bootProtocol)) log.write('info', line);
    for (const line of pciLines(this.pciPlan)) log.write('info', line);
    this.deviceAddresses = new DeviceAddressLog(log);
    this.deviceAddresses.update(this.board);
    log.write('info', `${this.vcpus.length} vCPU(s), ${this.config.memoryMiB} MiB, irqchip ${this.config.irqchip}, hand-off ${this.config.handOff}`);
    if (logs(log, 'debug')) reportUnclaimed(log, this.board);
  }

  private async spawnThreads(runSize: number, workers: Worker[], restored?: readonly VcpuState[]): Promise<void> {
    const board = this.board;
    const mode = this.config.handOff;
    if (mode === 'native') this.deviceWaker = new DeviceWaker(() => this.deviceLoop?.wake());
    const spawned = await Promise.allSettled(this.vcpus.map((vcpu) => VcpuThread.spawn({
      vcpuId: vcpu.id,
      vcpuFd: vcpu.fd,
      runAddress: vcpu.mapRunArea(runSize),
      runSize,
      doorbell: this.doorbell.buffer,
      claims: this.claims.buffer,
      handOff: mode,
      spinLimit: this.config.spinLimit,
      // With the split irqchip the PIC is ours, and its INT line goes to the boot vCPU's LINT0.
      injectsExtint: this.config.irqchip === 'split' && vcpu.id === 0,
      parkedExternalInterrupt: restored?.[vcpu.id].parkedExternalInterrupt,
      deviceWaker: this.deviceWaker?.id,
    }, workers[vcpu.id])));
    this.threads = spawned.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failed = spawned.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
    this.deviceLoop = new DeviceLoop(this.doorbell, this.threads, board, {
      ...DEFAULT_DEVICE_LOOP_OPTIONS,
      poll: mode === 'spin-park' || mode === 'park' || mode === 'native',
    });
    const loop = this.deviceLoop;
    this.threads.forEach((thread, index) => {
      const port = thread.devicePort;
      if (!port) return;
      if (mode === 'post-message') port.on('message', (sequence: number) => loop.serveOne(index, sequence));
      else Comlink.expose({ serve: (vcpuId: number, sequence: number) => loop.serveOne(vcpuId, sequence) }, nodeEndpoint(port));
    });
  }

  /** Runs every vCPU; resolves once the guest has ended and every vCPU has stopped. Once per machine. */
  run(): Promise<VmExit> {
    if (this.currentState !== 'built') {
      return Promise.reject(new TsvmmError('usage', `run() needs a machine that has not run yet; this one is ${this.currentState}`));
    }
    this.currentState = 'running';
    this.running = this.runToEnd();
    return this.running;
  }

  private async runToEnd(): Promise<VmExit> {
    const ended = new Promise<VmExit>((resolve) => { this.finished = resolve; });
    this.deviceLoop!.start();
    const drives = this.threads.map((thread) => this.driveVcpu(thread).catch(
      (error: Error) => this.end({ kind: 'vmm-failure', vcpu: thread.vcpuId, message: `worker failed: ${error.message}` }),
    ));
    const exit = await ended;
    await Promise.all(drives);
    this.deviceLoop!.stop();
    this.currentState = 'stopped';
    return exit;
  }

  /** Runs one vCPU until it stops for good, going round pauses. */
  private async driveVcpu(thread: VcpuThread): Promise<void> {
    for (;;) {
      const stop = await thread.start();
      if (stop.kind === 'stopped') return;
      if (stop.kind === 'paused') {
        const rendezvous = this.rendezvous;
        if (rendezvous) await rendezvous.arrive();
        if (this.ending) return;
        continue;
      }
      this.end(vmExitOf(thread.vcpuId, stop, this.vcpus[thread.vcpuId], this.ram.memory));
      return;
    }
  }

  /** Stops every vCPU outside KVM_RUN, on an instruction boundary; resolves when all are paused. */
  async pause(): Promise<void> {
    if (this.currentState === 'pausing' || this.currentState === 'paused') return this.rendezvous!.complete;
    if (this.currentState !== 'running') {
      throw new TsvmmError('usage', `pause() needs a running machine; this one is ${this.currentState}`);
    }
    this.currentState = 'pausing';
    const rendezvous = new PauseRendezvous(this.threads.length);
    this.rendezvous = rendezvous;
    for (const thread of this.threads) thread.requestExit('pause');
    await rendezvous.complete;
    if (this.currentState === 'pausing') this.currentState = 'paused';
  }

  /** Lets paused vCPUs run again. */
  resume(): void {
    if (this.currentState !== 'paused') {
      throw new TsvmmError('usage', `resume() needs a paused machine; this one is ${this.currentState}`);
    }
    if (this.snapshotting) throw new TsvmmError('usage', 'resume() must wait: a snapshot of this machine is being written');
    this.currentState = 'running';
    this.releasePause();
  }

  private releasePause(): void {
    const rendezvous = this.rendezvous;
    this.rendezvous = undefined;
    rendezvous?.release();
  }

  /** Set while snapshot() waits for requests in flight; resume() waits for it. */
  private snapshotting = false;
  /** The MSRs snapshots save: those KVM lists that it also reads (found once). */
  private savedMsrs?: number[];

  /**
   * Writes the paused machine to `directory` (snapshot-file.ts): guest RAM
   * and every piece of KVM and device state, so that Machine.restore in
   * another process continues the guest from here. Every vCPU is out of
   * KVM_RUN and past its last access: a pause leaves KVM_RUN through
   * immediate_exit, and that last KVM_RUN completes the I/O or MMIO access
   * the device thread answered (KVM finishes it only on re-entry), so the
   * registers read here are on an instruction boundary. Any thread may read
   * a vCPU that no thread runs; the main thread does. Requests a device has
   * in flight (disk reads and writes) complete first, and land in guest RAM
   * and the used rings before they are saved.
   */
  async snapshot(directory: string): Promise<SnapshotWriteStats> {
    if (this.currentState !== 'paused' || this.snapshotting) {
      throw new TsvmmError('usage', this.snapshotting
        ? 'a snapshot of this machine is being written already; wait for it'
        : `snapshot() needs a paused machine; this one is ${this.currentState} (pause() first)`);
    }
    if (this.config.bios !== undefined) throw new TsvmmError('usage', 'snapshots of a --bios guest are not supported yet (its firmware ROM would not be saved)');
    this.snapshotting = true;
    try {
      await Promise.all(this.hostDevices.map((device) => device.backend.whenIdle?.()));
      // The VM may have been ended meanwhile (a signal, a device): then there is nothing to save.
      if (this.currentState !== 'paused') throw new TsvmmError('usage', `the machine ended while its snapshot waited for its devices (it is ${this.currentState})`);
      this.savedMsrs ??= this.vcpus[0].readableMsrs(this.kvm.msrIndexList());
      const msrs = this.savedMsrs;
      const xsaveSize = this.kvm.xsaveSize();
      const state = {
        config: this.config,
        vm: this.vm.saveState(this.config.irqchip === 'kernel'),
        vcpus: this.vcpus.map((vcpu) => withParkedInterrupt(vcpu.saveState(msrs, xsaveSize), this.threads[vcpu.id]?.parkedExternalInterrupt())),
        devices: this.board.snapshot(),
        com1Input: this.input.heldBytes(),
      };
      const ram = this.ram.memory.regions.map((region, i) => ({ guestAddress: region.guestAddress, bytes: region.bytes, mayHoldData: this.ram.pagesThatMayHoldData(i) }));
      return snapshotFile().writeSnapshot(directory, state, ram, (require('../../../package.json') as { version: string }).version);
    } finally {
      this.snapshotting = false;
    }
  }

  /** A vCPU's general-purpose registers, read by its own worker (over comlink); only while paused. */
  registers(vcpuId: number): Promise<Regs> {
    if (this.currentState !== 'paused') {
      throw new MachineConfigError('registers can be read only while the machine is paused (pause() first)');
    }
    const thread = this.threads[vcpuId];
    if (!thread) throw new TsvmmError('usage', `there is no vCPU ${vcpuId}; this machine has vCPUs 0..${this.threads.length - 1}`);
    return thread.registers();
  }

  /** Ends the guest (from a device, a signal, or a vCPU) and stops every vCPU; the first reason wins. */
  end(exit: VmExit): void {
    if (this.ending) return;
    this.ending = exit;
    if (this.currentState === 'running' || this.currentState === 'pausing' || this.currentState === 'paused') {
      this.currentState = 'stopping';
    }
    for (const thread of this.threads) thread.requestExit('stop');
    this.releasePause(); // a paused vCPU must come back to see the stop
    this.finished?.(exit);
  }

  /**
   * Host input for COM1, held until the guest is ready for it and delivered
   * no faster than its line rate. False when the queue is full: the bytes are
   * kept, but stop sending until onInputSpace calls back.
   */
  sendInput(bytes: Uint8Array): boolean {
    return this.input.push(bytes);
  }

  /**
   * Calls `callback` each time COM1's input queue has room again after
   * sendInput returned false (it holds at most about 64 KiB; the bytes of a
   * false call are kept). Returns a function that removes the callback.
   */
  onInputSpace(callback: () => void): () => void {
    return this.input.onSpace(callback);
  }

  /**
   * Host input for the virtio-console (the guest's hvc0); returns how many
   * bytes it took (fewer once 64 KiB wait for the guest's receive buffers).
   */
  sendConsoleInput(bytes: Uint8Array): number {
    return this.virtioConsole().sendInput(bytes);
  }

  /**
   * The virtio-console's input in the shape of sendInput/onInputSpace (what
   * a terminal feeder needs): bytes it cannot take yet are held here, in
   * order, and go in as the guest reads; sendInput returns false while any
   * are held, and `onInputSpace` callbacks run once they are all in.
   */
  consoleInputQueue(): { sendInput(bytes: Uint8Array): boolean; onInputSpace(callback: () => void): () => void } {
    const console = this.virtioConsole();
    const held: Uint8Array[] = [];
    const listeners = new Set<() => void>();
    const push = () => {
      while (held.length > 0) {
        const taken = console.sendInput(held[0]);
        if (taken < held[0].length) {
          held[0] = held[0].subarray(taken);
          return;
        }
        held.shift();
      }
      for (const listener of [...listeners]) listener();
    };
    console.onInputSpace(push);
    return {
      sendInput: (bytes) => {
        if (held.length > 0) {
          held.push(bytes.slice());
          return false;
        }
        const taken = console.sendInput(bytes);
        if (taken === bytes.length) return true;
        held.push(bytes.slice(taken));
        return false;
      },
      onInputSpace: (callback) => {
        listeners.add(callback);
        return () => listeners.delete(callback);
      },
    };
  }

  private virtioConsole(): VirtioConsole {
    const console = this.hostDevices.find((device) => device.backend instanceof VirtioConsole);
    if (!console) throw new TsvmmError('usage', 'this machine has no virtio-console (add a {"kind":"console"} device)');
    return console.backend as VirtioConsole;
  }

  stats(): VcpuStatValues[] {
    return this.threads.map((thread) => thread.stats());
  }

  /** Per vCPU, how long its hand-offs waited for the device thread (a sample; see vcpu-stats.ts). */
  handOffWaits(): HandOffHistogram[] {
    return this.threads.map((thread) => thread.handOffWaits());
  }

  /** How PCI devices' MSI-X went out: messages with an irqfd, and interrupts sent with KVM_SIGNAL_MSI instead. */
  get msiStats(): { irqfdRoutes: number; signalledWithoutIrqfd: number } {
    return { irqfdRoutes: this.host?.deviceMsi.routes ?? 0, signalledWithoutIrqfd: this.host?.deviceMsi.signalled ?? 0 };
  }

  get deviceStats(): { served: number; parks: number } {
    return { served: this.deviceLoop?.served ?? 0, parks: this.deviceLoop?.parks ?? 0 };
  }

  /** Each device's own counters by board id; a virtio device's are its transport's and its back-end's together. */
  deviceCounters(): Record<string, Record<string, number>> {
    const counters: Record<string, Record<string, number>> = {};
    const add = (id: string, source: object) => {
      const own = (source as { counters?: unknown }).counters;
      if (own !== null && typeof own === 'object') counters[id] = { ...counters[id], ...(own as Record<string, number>) };
    };
    for (const { id, model } of this.board?.devices() ?? []) add(id, model);
    for (const device of this.hostDevices) add(device.id, device.backend);
    return counters;
  }

  /** The board's devices (ids, buses, addresses), for inspection. */
  get devices(): Board {
    return this.board;
  }

  /**
   * Stops a running guest (its exit is 'stopped' by request), ends the
   * workers, unmaps guest RAM and every kvm_run page, and closes every fd, so
   * that the kernel frees the VM. Safe to call in any state, and more than once.
   */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    if (this.running) {
      this.end({ kind: 'stopped', cause: { by: 'request' } });
      await this.running;
    }
    this.currentState = 'closed';
    this.deviceLoop?.stop();
    this.input.dispose();
    await Promise.all(this.threads.map((thread) => thread.terminate()));
    this.deviceWaker?.close();
    this.board?.dispose();
    this.host?.dispose();
    // Before guest RAM goes: the block pool's workers view it.
    await Promise.all(this.hostDevices.map((device) => device.dispose()));
    for (const thread of this.threads) this.vcpus[thread.vcpuId].unmapRunArea(thread.runAddress, thread.runSize);
    for (const vcpu of this.vcpus) vcpu.close();
    this.ram.release();
    this.vm.close();
    this.firmwareRom?.release();
    this.kvm.close();
  }
}

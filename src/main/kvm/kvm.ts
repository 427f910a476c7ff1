// One wrapper per ioctl scope, as kvm-ioctls does: Kvm (/dev/kvm), Vm (a VM
// fd), Vcpu (a vCPU fd). Each method is one ioctl; failures become KvmError
// naming the ioctl and keeping the errno.

import {
  CAP, ENABLE_CAP, IOCTL, IRQ_LEVEL, IRQFD, IRQ_ROUTING_ENTRY, IoctlName, KVM_API_VERSION, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
  KVM_IRQFD_FLAG_RESAMPLE, KVM_PIT_SPEAKER_DUMMY, MAP_SHARED, MEMORY_REGION, MSI,
  O_RDWR, PROT_READ, PROT_WRITE, SIZEOF, IOEVENTFD, KVM_IOEVENTFD_FLAG, IRQCHIP_STATE, KVM_IRQCHIP, VCPU_EVENTS, KVM_VCPUEVENT_VALID,
} from '../../shared/kvm-abi';
import {
  ClockData, CpuidEntry, Fpu, MsrEntry, Regs, Sregs, cpuidBuffer, decodeClockData, decodeCpuid, decodeFpu, decodeMsrList, decodeMsrs,
  decodeRegs, decodeSregs, encodeClockData, encodeCpuid, encodeFpu, encodeMsrs, encodeRegs, encodeSregs, msrListBuffer,
} from '../../shared/kvm-structs';
import { KvmError, check, native, ERRNO } from '../../shared/native';
import type { GsiRoute } from './gsi-router';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

function ioctl(fd: number, name: IoctlName, arg?: number | bigint | Uint8Array, detail?: string): number {
  return check(name, native().ioctl(fd, IOCTL[name], arg), detail);
}

/** Raised when /dev/kvm is missing or unusable; the CLI prints it as one line. */
export class KvmUnavailableError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('host', message, options);
  }
}

export class Kvm {
  private constructor(readonly fd: number) {}

  static open(path = '/dev/kvm'): Kvm {
    const fd = native().open(path, O_RDWR);
    if (fd < 0) {
      const errno = -fd;
      if (errno === ERRNO.ENOENT) {
        throw new KvmUnavailableError(`${path} does not exist: load the kvm module (modprobe kvm_intel or kvm_amd) or run on a host with virtualization enabled`);
      }
      if (errno === ERRNO.EACCES || errno === ERRNO.EPERM) {
        throw new KvmUnavailableError(`no permission to open ${path}: add your user to the kvm group (sudo usermod -aG kvm $USER, then log in again) or run as root`);
      }
      throw new KvmUnavailableError(new KvmError(`open ${path}`, errno).message);
    }
    const kvm = new Kvm(fd);
    const version = kvm.apiVersion();
    if (version !== KVM_API_VERSION) {
      kvm.close();
      throw new KvmUnavailableError(`${path} speaks KVM API ${version}, tsvmm needs ${KVM_API_VERSION}`);
    }
    return kvm;
  }

  apiVersion(): number {
    return ioctl(this.fd, 'KVM_GET_API_VERSION');
  }

  checkExtension(cap: number): number {
    return ioctl(this.fd, 'KVM_CHECK_EXTENSION', cap);
  }

  /** The most vCPUs one VM may have (KVM_CAP_MAX_VCPUS, falling back to NR_VCPUS). */
  maxVcpus(): number {
    return this.checkExtension(CAP.KVM_CAP_MAX_VCPUS) || this.checkExtension(CAP.KVM_CAP_NR_VCPUS) || 4;
  }

  vcpuMmapSize(): number {
    return ioctl(this.fd, 'KVM_GET_VCPU_MMAP_SIZE');
  }

  /** KVM_GET_SUPPORTED_CPUID, growing the buffer while KVM says E2BIG. */
  supportedCpuid(): CpuidEntry[] {
    for (let capacity = 64; capacity <= 4096; capacity *= 2) {
      const buffer = cpuidBuffer(capacity);
      const result = native().ioctl(this.fd, IOCTL.KVM_GET_SUPPORTED_CPUID, buffer);
      if (result >= 0) return decodeCpuid(buffer);
      if (-result !== 7 /* E2BIG */) check('KVM_GET_SUPPORTED_CPUID', result);
    }
    throw new KvmError('KVM_GET_SUPPORTED_CPUID', 7, 'more than 4096 entries');
  }

  createVm(): Vm {
    return new Vm(this, ioctl(this.fd, 'KVM_CREATE_VM', 0));
  }

  /** KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores for a vCPU (growing the buffer while KVM says E2BIG). */
  msrIndexList(): number[] {
    for (let capacity = 256; capacity <= 65536; capacity *= 4) {
      const buffer = msrListBuffer(capacity);
      const result = native().ioctl(this.fd, IOCTL.KVM_GET_MSR_INDEX_LIST, buffer);
      if (result >= 0) return decodeMsrList(buffer);
      if (-result !== 7 /* E2BIG */) check('KVM_GET_MSR_INDEX_LIST', result);
    }
    throw new KvmError('KVM_GET_MSR_INDEX_LIST', 7, 'more than 65536 MSRs');
  }

  /**
   * The bytes of a vCPU's XSAVE area (KVM_CAP_XSAVE2 gives the size when it
   * is past struct kvm_xsave's 4 KiB), or 0 when KVM has no XSAVE and the
   * vCPU's FPU state goes through KVM_GET_FPU instead.
   */
  xsaveSize(): number {
    if (this.checkExtension(CAP.KVM_CAP_XSAVE) <= 0) return 0;
    return Math.max(SIZEOF.kvm_xsave, this.checkExtension(CAP.KVM_CAP_XSAVE2));
  }

  close(): void {
    native().close(this.fd);
  }
}

export class Vm {
  constructor(readonly kvm: Kvm, readonly fd: number) {}

  /** `flags`: KVM_MEM_READONLY makes guest writes MMIO exits (firmware ROM). */
  setUserMemoryRegion(slot: number, guestAddress: number, size: number, hostAddress: bigint, flags = 0): void {
    const region = new Uint8Array(SIZEOF.kvm_userspace_memory_region);
    const dv = new DataView(region.buffer);
    dv.setUint32(MEMORY_REGION.slot, slot, true);
    dv.setUint32(MEMORY_REGION.flags, flags, true);
    dv.setBigUint64(MEMORY_REGION.guest_phys_addr, BigInt(guestAddress), true);
    dv.setBigUint64(MEMORY_REGION.memory_size, BigInt(size), true);
    dv.setBigUint64(MEMORY_REGION.userspace_addr, hostAddress, true);
    ioctl(this.fd, 'KVM_SET_USER_MEMORY_REGION', region, `slot ${slot} at 0x${guestAddress.toString(16)}`);
  }

  setTssAddress(address: number): void {
    ioctl(this.fd, 'KVM_SET_TSS_ADDR', address);
  }

  setIdentityMapAddress(address: number): void {
    const arg = new Uint8Array(8);
    new DataView(arg.buffer).setBigUint64(0, BigInt(address), true);
    ioctl(this.fd, 'KVM_SET_IDENTITY_MAP_ADDR', arg);
  }

  createIrqchip(): void {
    ioctl(this.fd, 'KVM_CREATE_IRQCHIP');
  }

  /**
   * The in-kernel PIT, with port 0x61 emulated too: Linux and the test guests
   * time the TSC against PIT channel 2, whose gate and output live there.
   */
  createPit2(): void {
    const config = new Uint8Array(SIZEOF.kvm_pit_config);
    new DataView(config.buffer).setUint32(0, KVM_PIT_SPEAKER_DUMMY, true);
    ioctl(this.fd, 'KVM_CREATE_PIT2', config);
  }

  /** KVM_SET_GSI_ROUTING: replaces the whole table (GsiRouter is its one caller). */
  setGsiRouting(routes: readonly GsiRoute[]): void {
    const bytes = new Uint8Array(SIZEOF.kvm_irq_routing + routes.length * SIZEOF.kvm_irq_routing_entry);
    const dv = new DataView(bytes.buffer);
    dv.setUint32(0, routes.length, true);
    routes.forEach((route, i) => {
      const at = SIZEOF.kvm_irq_routing + i * SIZEOF.kvm_irq_routing_entry;
      dv.setUint32(at + IRQ_ROUTING_ENTRY.gsi, route.gsi, true);
      if (route.kind === 'irqchip') {
        dv.setUint32(at + IRQ_ROUTING_ENTRY.type, KVM_IRQ_ROUTING_IRQCHIP, true);
        dv.setUint32(at + IRQ_ROUTING_ENTRY.irqchip_irqchip, route.chip, true);
        dv.setUint32(at + IRQ_ROUTING_ENTRY.irqchip_pin, route.pin, true);
      } else {
        const { address, data } = route.message;
        dv.setUint32(at + IRQ_ROUTING_ENTRY.type, KVM_IRQ_ROUTING_MSI, true);
        dv.setUint32(at + IRQ_ROUTING_ENTRY.msi_address_lo, address >>> 0, true);
        dv.setUint32(at + IRQ_ROUTING_ENTRY.msi_address_hi, Math.floor(address / 0x1_0000_0000) >>> 0, true);
        dv.setUint32(at + IRQ_ROUTING_ENTRY.msi_data, data >>> 0, true);
      }
    });
    ioctl(this.fd, 'KVM_SET_GSI_ROUTING', bytes, `${routes.length} routes`);
  }

  /** KVM_CAP_SPLIT_IRQCHIP: LAPICs in the kernel, PIC/IOAPIC/PIT in userspace. */
  enableSplitIrqchip(ioapicPins: number): void {
    this.enableCap(CAP.KVM_CAP_SPLIT_IRQCHIP, [BigInt(ioapicPins)]);
  }

  enableCap(cap: number, args: bigint[] = []): void {
    const bytes = new Uint8Array(SIZEOF.kvm_enable_cap);
    const dv = new DataView(bytes.buffer);
    dv.setUint32(ENABLE_CAP.cap, cap, true);
    args.forEach((arg, i) => dv.setBigUint64(ENABLE_CAP.args + i * 8, arg, true));
    ioctl(this.fd, 'KVM_ENABLE_CAP', bytes, `capability ${cap}`);
  }

  /** Connects an eventfd to a GSI: a write to the eventfd raises the interrupt. */
  /**
   * KVM_IRQFD: a write to `eventFd` raises `gsi`. With `resampleFd` (a
   * level line of the in-kernel irqchip) the GSI stays asserted until the
   * guest's EOI; KVM then lowers it and signals `resampleFd`, and whoever
   * holds the level asserts it again if it is still high.
   */
  registerIrqfd(eventFd: number, gsi: number, resampleFd?: number): void {
    const bytes = new Uint8Array(SIZEOF.kvm_irqfd);
    const dv = new DataView(bytes.buffer);
    dv.setUint32(IRQFD.fd, eventFd, true);
    dv.setUint32(IRQFD.gsi, gsi, true);
    if (resampleFd !== undefined) {
      dv.setUint32(IRQFD.flags, KVM_IRQFD_FLAG_RESAMPLE, true);
      dv.setUint32(IRQFD.resamplefd, resampleFd, true);
    }
    ioctl(this.fd, 'KVM_IRQFD', bytes, `gsi ${gsi}`);
  }

  /**
   * KVM_IOEVENTFD: a guest write to `address` (a port when `pio`, else a guest
   * physical MMIO address) of `length` bytes signals `fd` inside KVM and the
   * vCPU goes on without an exit. With `datamatch` only writes of that value
   * do. `length` 0 (MMIO only, KVM_CAP_IOEVENTFD_ANY_LENGTH) matches any width.
   */
  registerIoeventfd(ioeventfd: Ioeventfd): void {
    ioctl(this.fd, 'KVM_IOEVENTFD', encodeIoeventfd(ioeventfd, 0), describeIoeventfd(ioeventfd));
  }

  /** Undoes registerIoeventfd: the same fields (datamatch included) name the registration. */
  unregisterIoeventfd(ioeventfd: Ioeventfd): void {
    ioctl(this.fd, 'KVM_IOEVENTFD', encodeIoeventfd(ioeventfd, KVM_IOEVENTFD_FLAG.DEASSIGN), describeIoeventfd(ioeventfd));
  }

  /** KVM_IRQ_LINE: holds GSI `gsi` of the in-kernel irqchip at `level` (a level-triggered line). */
  setIrqLine(gsi: number, level: boolean): void {
    const dv = new DataView(this.irqLevelBuffer.buffer);
    dv.setUint32(IRQ_LEVEL.irq, gsi, true);
    dv.setUint32(IRQ_LEVEL.level, level ? 1 : 0, true);
    ioctl(this.fd, 'KVM_IRQ_LINE', this.irqLevelBuffer, `gsi ${gsi}`);
  }

  private readonly irqLevelBuffer = new Uint8Array(SIZEOF.kvm_irq_level);

  /**
   * Injects a message-signalled interrupt into the in-kernel local APICs (the
   * userspace IOAPIC's output with the split irqchip). Returns false when the
   * interrupt was blocked, e.g. masked by the guest.
   */
  signalMsi(address: number, data: number): boolean {
    const bytes = this.msiBuffer;
    const dv = new DataView(bytes.buffer);
    dv.setUint32(MSI.address_lo, address >>> 0, true);
    dv.setUint32(MSI.address_hi, Math.floor(address / 0x1_0000_0000) >>> 0, true);
    dv.setUint32(MSI.data, data >>> 0, true);
    return ioctl(this.fd, 'KVM_SIGNAL_MSI', bytes) > 0;
  }

  private readonly msiBuffer = new Uint8Array(SIZEOF.kvm_msi);

  /** KVM_GET_IRQCHIP for one in-kernel chip: struct kvm_irqchip as bytes, chip id included. */
  getIrqchip(chip: number): Uint8Array {
    const bytes = new Uint8Array(SIZEOF.kvm_irqchip);
    new DataView(bytes.buffer).setUint32(IRQCHIP_STATE.chip_id, chip, true);
    ioctl(this.fd, 'KVM_GET_IRQCHIP', bytes, `chip ${chip}`);
    return bytes;
  }

  /** KVM_SET_IRQCHIP with bytes from getIrqchip (their chip id says which chip). */
  setIrqchip(bytes: Uint8Array): void {
    ioctl(this.fd, 'KVM_SET_IRQCHIP', fixedSize(bytes, SIZEOF.kvm_irqchip, 'kvm_irqchip'), `chip ${new DataView(bytes.buffer, bytes.byteOffset).getUint32(IRQCHIP_STATE.chip_id, true)}`);
  }

  getPit2(): Uint8Array {
    const bytes = new Uint8Array(SIZEOF.kvm_pit_state2);
    ioctl(this.fd, 'KVM_GET_PIT2', bytes);
    return bytes;
  }

  setPit2(bytes: Uint8Array): void {
    ioctl(this.fd, 'KVM_SET_PIT2', fixedSize(bytes, SIZEOF.kvm_pit_state2, 'kvm_pit_state2'));
  }

  /** KVM_GET_CLOCK: the VM's kvmclock. */
  getClock(): ClockData {
    const bytes = new Uint8Array(SIZEOF.kvm_clock_data);
    ioctl(this.fd, 'KVM_GET_CLOCK', bytes);
    return decodeClockData(bytes);
  }

  setClock(clock: ClockData): void {
    ioctl(this.fd, 'KVM_SET_CLOCK', encodeClockData(clock));
  }

  /** The in-kernel irqchip, PIT and kvmclock, for a snapshot; `irqchip` false with the split irqchip (tsvmm's own PIC, IOAPIC and PIT hold that state). */
  saveState(irqchip: boolean): VmState {
    return {
      irqchip: irqchip ? {
        picMaster: this.getIrqchip(KVM_IRQCHIP.PIC_MASTER),
        picSlave: this.getIrqchip(KVM_IRQCHIP.PIC_SLAVE),
        ioapic: this.getIrqchip(KVM_IRQCHIP.IOAPIC),
      } : undefined,
      pit: irqchip ? this.getPit2() : undefined,
      clock: this.getClock(),
    };
  }

  /**
   * Puts a saveState() back. The clock is set with no flags: the kvmclock
   * continues from the saved value instead of jumping by the wall-clock time
   * between snapshot and restore (KVM_CLOCK_REALTIME would add it).
   */
  restoreState(state: VmState): void {
    if (state.irqchip) {
      this.setIrqchip(state.irqchip.picMaster);
      this.setIrqchip(state.irqchip.picSlave);
      this.setIrqchip(state.irqchip.ioapic);
    }
    if (state.pit) this.setPit2(state.pit);
    this.setClock({ clock: state.clock.clock, flags: 0 });
  }

  createVcpu(id: number): Vcpu {
    return new Vcpu(this, id, ioctl(this.fd, 'KVM_CREATE_VCPU', id, `vCPU ${id}`));
  }

  close(): void {
    native().close(this.fd);
  }
}

/** The VM-wide KVM state of a snapshot: struct bytes as KVM gave them. */
export interface VmState {
  /** PIC master, PIC slave and IOAPIC (struct kvm_irqchip each); absent with the split irqchip. */
  irqchip?: { picMaster: Uint8Array; picSlave: Uint8Array; ioapic: Uint8Array };
  /** struct kvm_pit_state2; absent with the split irqchip. */
  pit?: Uint8Array;
  clock: ClockData;
}

/** One vCPU's KVM state of a snapshot; the structs are kept as KVM gave them. */
export interface VcpuState {
  mpState: number;
  regs: Uint8Array;
  sregs: Uint8Array;
  /** XSAVE area and XCRs where KVM has them, else the legacy FPU struct. */
  xsave?: Uint8Array;
  xcrs?: Uint8Array;
  fpu?: Uint8Array;
  debugregs: Uint8Array;
  lapic: Uint8Array;
  /** The guest TSC's rate; the TSC itself is MSR 0x10 among `msrs`. */
  tscKhz: number;
  msrs: MsrEntry[];
  events: Uint8Array;
  /**
   * With the split irqchip: the ExtINT vector a KVM_INTERRUPT left parked in
   * the vCPU, not yet taken into the guest. No ioctl reads it back (the
   * vCPU's worker knows it) and KVM_SET_VCPU_EVENTS cannot put it back: the
   * restored vCPU's worker injects it again before it first runs.
   */
  parkedExternalInterrupt?: number;
}

function fixedSize(bytes: Uint8Array, size: number, what: string): Uint8Array {
  if (bytes.length !== size) throw new KvmError(`${what} state`, 22 /* EINVAL */, `${bytes.length} bytes, not ${size}`);
  return bytes;
}

/** One KVM_IOEVENTFD registration (see Vm.registerIoeventfd). */
export interface Ioeventfd {
  fd: number;
  address: number | bigint;
  /** 1, 2, 4 or 8 bytes; 0 for any length (MMIO only). */
  length: number;
  pio: boolean;
  datamatch?: number | bigint;
}

function encodeIoeventfd(ioeventfd: Ioeventfd, extraFlags: number): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.kvm_ioeventfd);
  const dv = new DataView(bytes.buffer);
  let flags = extraFlags;
  if (ioeventfd.pio) flags |= KVM_IOEVENTFD_FLAG.PIO;
  if (ioeventfd.datamatch !== undefined) {
    flags |= KVM_IOEVENTFD_FLAG.DATAMATCH;
    dv.setBigUint64(IOEVENTFD.datamatch, BigInt.asUintN(64, BigInt(ioeventfd.datamatch)), true);
  }
  dv.setBigUint64(IOEVENTFD.addr, BigInt.asUintN(64, BigInt(ioeventfd.address)), true);
  dv.setUint32(IOEVENTFD.len, ioeventfd.length, true);
  dv.setInt32(IOEVENTFD.fd, ioeventfd.fd, true);
  dv.setUint32(IOEVENTFD.flags, flags, true);
  return bytes;
}

function describeIoeventfd({ fd, address, length, pio, datamatch }: Ioeventfd): string {
  const match = datamatch === undefined ? '' : `, datamatch 0x${datamatch.toString(16)}`;
  return `fd ${fd} at ${pio ? 'port' : 'MMIO'} 0x${address.toString(16)}, length ${length}${match}`;
}

export class Vcpu {
  constructor(readonly vm: Vm, readonly id: number, readonly fd: number) {}

  /** Maps struct kvm_run; returns its host address (every thread can view() it). */
  mapRunArea(size: number): bigint {
    const address = native().mmap(this.fd, size, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    if (typeof address === 'number') throw new KvmError(`mmap of vCPU ${this.id} kvm_run`, -address);
    return address;
  }

  /** Unmaps a kvm_run page from mapRunArea; while it is mapped, it keeps the vCPU (and the VM) alive in the kernel. */
  unmapRunArea(address: bigint, size: number): void {
    check(`munmap of vCPU ${this.id} kvm_run`, native().munmap(address, size));
  }

  getRegs(): Regs {
    const bytes = new Uint8Array(SIZEOF.kvm_regs);
    ioctl(this.fd, 'KVM_GET_REGS', bytes, `vCPU ${this.id}`);
    return decodeRegs(bytes);
  }

  setRegs(regs: Regs): void {
    ioctl(this.fd, 'KVM_SET_REGS', encodeRegs(regs), `vCPU ${this.id}`);
  }

  getSregs(): Sregs {
    const bytes = new Uint8Array(SIZEOF.kvm_sregs);
    ioctl(this.fd, 'KVM_GET_SREGS', bytes, `vCPU ${this.id}`);
    return decodeSregs(bytes);
  }

  setSregs(sregs: Sregs): void {
    ioctl(this.fd, 'KVM_SET_SREGS', encodeSregs(sregs), `vCPU ${this.id}`);
  }

  getFpu(): Fpu {
    const bytes = new Uint8Array(SIZEOF.kvm_fpu);
    ioctl(this.fd, 'KVM_GET_FPU', bytes, `vCPU ${this.id}`);
    return decodeFpu(bytes);
  }

  setFpu(fpu: Fpu): void {
    ioctl(this.fd, 'KVM_SET_FPU', encodeFpu(fpu), `vCPU ${this.id}`);
  }

  /** KVM_SET_MSRS returns how many it set; anything short is an error. */
  setMsrs(entries: readonly MsrEntry[]): void {
    const written = ioctl(this.fd, 'KVM_SET_MSRS', encodeMsrs(entries), `vCPU ${this.id}`);
    if (written !== entries.length) {
      const rejected = entries[written];
      throw new KvmError('KVM_SET_MSRS', 22 /* EINVAL */, `vCPU ${this.id}: KVM accepted ${written} of ${entries.length} MSRs; MSR 0x${rejected.index.toString(16)} was refused`);
    }
  }

  /** KVM_GET_MSRS: the values of `indices`, in order, up to the first MSR KVM cannot read (the result is then shorter). */
  getMsrs(indices: readonly number[]): MsrEntry[] {
    const bytes = encodeMsrs(indices.map((index) => ({ index, data: 0n })));
    const read = ioctl(this.fd, 'KVM_GET_MSRS', bytes, `vCPU ${this.id}`);
    return decodeMsrs(bytes, read);
  }

  /** Of `indices`, the MSRs KVM_GET_MSRS reads on this vCPU (KVM lists some that depend on CPUID features the guest lacks). */
  readableMsrs(indices: readonly number[]): number[] {
    const readable: number[] = [];
    let rest = [...indices];
    while (rest.length > 0) {
      const read = this.getMsrs(rest).length;
      readable.push(...rest.slice(0, read));
      rest = rest.slice(read + 1); // rest[read] is one KVM refuses
    }
    return readable;
  }

  setCpuid(entries: readonly CpuidEntry[]): void {
    ioctl(this.fd, 'KVM_SET_CPUID2', encodeCpuid(entries), `vCPU ${this.id}`);
  }

  getLapic(): Uint8Array {
    const bytes = new Uint8Array(SIZEOF.kvm_lapic_state);
    ioctl(this.fd, 'KVM_GET_LAPIC', bytes, `vCPU ${this.id}`);
    return bytes;
  }

  setLapic(bytes: Uint8Array): void {
    ioctl(this.fd, 'KVM_SET_LAPIC', bytes, `vCPU ${this.id}`);
  }

  private getBytes(name: IoctlName, size: number): Uint8Array {
    const bytes = new Uint8Array(size);
    ioctl(this.fd, name, bytes, `vCPU ${this.id}`);
    return bytes;
  }

  private setBytes(name: IoctlName, bytes: Uint8Array, size: number, what: string): void {
    ioctl(this.fd, name, fixedSize(bytes, size, what), `vCPU ${this.id}`);
  }

  getMpState(): number {
    return new DataView(this.getBytes('KVM_GET_MP_STATE', SIZEOF.kvm_mp_state).buffer).getUint32(0, true);
  }

  setMpState(state: number): void {
    const bytes = new Uint8Array(SIZEOF.kvm_mp_state);
    new DataView(bytes.buffer).setUint32(0, state, true);
    ioctl(this.fd, 'KVM_SET_MP_STATE', bytes, `vCPU ${this.id}`);
  }

  getTscKhz(): number {
    return ioctl(this.fd, 'KVM_GET_TSC_KHZ', undefined, `vCPU ${this.id}`);
  }

  setTscKhz(khz: number): void {
    ioctl(this.fd, 'KVM_SET_TSC_KHZ', khz, `vCPU ${this.id}: ${khz} kHz (a TSC rate this host cannot give without TSC scaling)`);
  }

  /**
   * Everything KVM holds for this stopped vCPU, in the order Firecracker
   * reads it: the MP state first (reading it makes KVM accept pending INIT
   * and SIPI events, which changes the rest), the events last (the other
   * reads may change them). `msrs` are the indices to save (readableMsrs);
   * `xsaveSize` is Kvm.xsaveSize().
   */
  saveState(msrs: readonly number[], xsaveSize: number): VcpuState {
    const mpState = this.getMpState();
    const regs = this.getBytes('KVM_GET_REGS', SIZEOF.kvm_regs);
    const sregs = this.getBytes('KVM_GET_SREGS', SIZEOF.kvm_sregs);
    const fpuState = xsaveSize > 0
      ? {
          xsave: this.getBytes(xsaveSize > SIZEOF.kvm_xsave ? 'KVM_GET_XSAVE2' : 'KVM_GET_XSAVE', xsaveSize),
          xcrs: this.getBytes('KVM_GET_XCRS', SIZEOF.kvm_xcrs),
        }
      : { fpu: this.getBytes('KVM_GET_FPU', SIZEOF.kvm_fpu) };
    const debugregs = this.getBytes('KVM_GET_DEBUGREGS', SIZEOF.kvm_debugregs);
    const lapic = this.getLapic();
    const tscKhz = this.getTscKhz();
    const saved = this.getMsrs(msrs);
    if (saved.length !== msrs.length) {
      throw new KvmError('KVM_GET_MSRS', 22 /* EINVAL */, `vCPU ${this.id}: KVM read ${saved.length} of ${msrs.length} MSRs; MSR 0x${msrs[saved.length].toString(16)} was refused`);
    }
    const events = this.getBytes('KVM_GET_VCPU_EVENTS', SIZEOF.kvm_vcpu_events);
    return { mpState, regs, sregs, ...fpuState, debugregs, lapic, tscKhz, msrs: saved, events };
  }

  /**
   * Puts a saveState() back on a vCPU that has its CPUID and has not run, in
   * Firecracker's order: registers before the events (KVM_SET_REGS drops a
   * pending exception, the events bring it back), special registers before
   * the LAPIC (they hold the APIC base), the LAPIC before the MSRs (the TSC
   * deadline MSR takes only with the LAPIC configured).
   */
  restoreState(state: VcpuState): void {
    if (state.tscKhz !== this.getTscKhz()) this.setTscKhz(state.tscKhz);
    this.setMpState(state.mpState);
    this.setBytes('KVM_SET_REGS', state.regs, SIZEOF.kvm_regs, 'kvm_regs');
    this.setBytes('KVM_SET_SREGS', state.sregs, SIZEOF.kvm_sregs, 'kvm_sregs');
    if (state.xsave) {
      if (!state.xcrs) throw new KvmError('KVM_SET_XCRS', 22 /* EINVAL */, `vCPU ${this.id}: XSAVE state without XCRs`);
      ioctl(this.fd, 'KVM_SET_XSAVE', state.xsave, `vCPU ${this.id}`);
      this.setBytes('KVM_SET_XCRS', state.xcrs, SIZEOF.kvm_xcrs, 'kvm_xcrs');
    } else if (state.fpu) {
      this.setBytes('KVM_SET_FPU', state.fpu, SIZEOF.kvm_fpu, 'kvm_fpu');
    }
    this.setBytes('KVM_SET_DEBUGREGS', state.debugregs, SIZEOF.kvm_debugregs, 'kvm_debugregs');
    this.setBytes('KVM_SET_LAPIC', state.lapic, SIZEOF.kvm_lapic_state, 'kvm_lapic_state');
    this.setMsrs(state.msrs);
    // KVM_GET_VCPU_EVENTS fills in the pending NMI and the SIPI vector but does not flag them valid.
    const events = fixedSize(state.events, SIZEOF.kvm_vcpu_events, 'kvm_vcpu_events').slice();
    const flags = new DataView(events.buffer);
    flags.setUint32(VCPU_EVENTS.flags, flags.getUint32(VCPU_EVENTS.flags, true) | KVM_VCPUEVENT_VALID.NMI_PENDING | KVM_VCPUEVENT_VALID.SIPI_VECTOR, true);
    ioctl(this.fd, 'KVM_SET_VCPU_EVENTS', events, `vCPU ${this.id}`);
  }

  close(): void {
    native().close(this.fd);
  }
}

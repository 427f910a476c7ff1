// The KVM_RUN loop of one vCPU. It runs on the vCPU's own worker thread and
// blocks in KVM_RUN; accesses a device claims are handed to the device thread
// through the exit channel, everything else is answered here.

import { AddressClaims } from '../shared/address-claims';
import {
  ExitChannel, Doorbell, NO_INTERRUPT, WaitCounters, waitCounters,
} from '../shared/exit-channel';
import {
  EXIT, INTERNAL_ERROR, INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, IOCTL, KVM_RUN,
} from '../shared/kvm-abi';
import { ACCESS_KIND, Access, KvmRunView, decodeAccess, decodeAccessData, emptyAccess } from '../shared/kvm-run';
import { ERRNO, KvmError, NativeAddon, check } from '../shared/native';
import { NATIVE_LOOP_RETURN, nativeExitLoopConfig } from '../shared/native-exit-loop';
import { VCPU_CONTROL, VCPU_REQUEST, VCPU_STAT_INDEX, recordHandOffWait, timesHandOffWait } from '../shared/vcpu-stats';
import type { HandOffMode, VcpuStop, VcpuWorkerConfig } from '../shared/vcpu-protocol';

/** Forwards one access to the device thread and returns when it is served. */
export type Forwarder = (sequence: number) => void | Promise<void>;

/** handleExit() found nothing for the device thread (sequence numbers are never this). */
const NOTHING_TO_FORWARD = -1;

// The stats slots the exit path counts in, as plain numbers: read through
// VCPU_STAT_INDEX on every exit they would be one more object to touch.
const KVM_RUNS = VCPU_STAT_INDEX.kvmRuns;
const IO_EXITS = VCPU_STAT_INDEX.ioExits;
const MMIO_EXITS = VCPU_STAT_INDEX.mmioExits;
const FORWARDED = VCPU_STAT_INDEX.forwarded;
const UNCLAIMED = VCPU_STAT_INDEX.unclaimed;
const OTHER_EXITS = VCPU_STAT_INDEX.otherExits;

export class VcpuRunLoop {
  private readonly run: KvmRunView;
  /** run.bytes and run.data, kept here so the exit path reads them without going through run. */
  private readonly bytes: Uint8Array;
  private readonly data: DataView;
  /** The access of the current exit, decoded once (reused for every exit). */
  private readonly access: Access = emptyAccess();
  private readonly claims: AddressClaims;
  private readonly channel: ExitChannel;
  private readonly control: Int32Array;
  private readonly stats: Float64Array;
  private readonly waits: WaitCounters;
  private readonly runRequest = IOCTL.KVM_RUN;

  constructor(
    private readonly addon: NativeAddon,
    private readonly config: VcpuWorkerConfig,
    private readonly forwardAsync?: Forwarder,
  ) {
    this.run = new KvmRunView(addon.view(config.runAddress, config.runSize));
    this.bytes = this.run.bytes;
    this.data = this.run.data;
    this.claims = new AddressClaims(config.claims);
    const doorbell = new Doorbell(config.doorbell);
    this.channel = new ExitChannel(config.channel, handOffRingsDoorbell(config.handOff) ? doorbell : undefined);
    this.control = new Int32Array(config.control);
    this.stats = new Float64Array(config.stats);
    this.waits = waitCounters(config.spinLimit);
    if (config.parkedExternalInterrupt !== undefined) this.injectExternalInterrupt(config.parkedExternalInterrupt);
  }

  /**
   * Runs until a stop/pause request or a guest event that ends this vCPU.
   * Synchronous for the shared-memory hand-offs, so an exit costs no promise;
   * the message-based hand-offs need the event loop and use runAsync.
   */
  runSync(): VcpuStop {
    this.noteFirstRun();
    const spinLimit = this.config.handOff === 'park' ? 0 : this.config.spinLimit;
    const runVcpu = this.addon.run;
    const { vcpuFd, injectsExtint } = this.config;
    const runRequest = this.runRequest;
    for (;;) {
      if (injectsExtint) {
        const acknowledge = this.requestInterruptAcknowledge();
        if (acknowledge !== undefined) {
          this.waitForDeviceThread(acknowledge, spinLimit);
          this.injectAcknowledgedInterrupt();
        }
      }
      const outcome = this.handleExit(runVcpu(vcpuFd, runRequest));
      if (typeof outcome !== 'number') return outcome;
      if (outcome !== NOTHING_TO_FORWARD) this.waitForDeviceThread(outcome, spinLimit);
    }
  }

  /** Waits for hand-off `sequence` and publishes the wait counters. */
  private waitForDeviceThread(sequence: number, spinLimit: number): void {
    // One wait in HANDOFF_SAMPLE_EVERY is timed for the --stats histogram: a clock read costs ~60 ns here.
    const timed = timesHandOffWait(this.stats[FORWARDED]);
    const parks = this.waits.parks;
    const t0 = timed ? performance.now() : 0;
    this.channel.waitForCompletion(sequence, spinLimit, this.waits);
    if (timed) recordHandOffWait(this.stats, this.waits.parks !== parks, (performance.now() - t0) * 1000);
    this.stats[VCPU_STAT_INDEX.spinHits] = this.waits.spinHits;
    this.stats[VCPU_STAT_INDEX.parks] = this.waits.parks;
  }

  /**
   * The native hand-off: the addon's loop runs the guest and handles port,
   * MMIO and EOI exits itself (the same claims, answers, channel and stats
   * as handleExit); it comes back here for the rest, which is decided here
   * as in runSync. With the split irqchip it also comes back when the PIC's
   * INT rises, so that the interrupt is injected here before the guest runs on.
   */
  runNative(): VcpuStop {
    this.noteFirstRun();
    const { addon, config } = this;
    if (config.deviceWaker === undefined) throw new Error('the native hand-off needs a device waker');
    this.nativeLoop ??= addon.vcpuLoopCreate(nativeExitLoopConfig({
      vcpuFd: config.vcpuFd,
      runRequest: this.runRequest,
      runAddress: config.runAddress,
      runSize: config.runSize,
      channel: config.channel,
      doorbell: config.doorbell,
      control: config.control,
      stats: config.stats,
      claims: config.claims,
      deviceWaker: config.deviceWaker,
      spinLimit: config.spinLimit,
      injectsExtint: config.injectsExtint,
    }));
    const handle = this.nativeLoop;
    for (;;) {
      if (config.injectsExtint) {
        const acknowledge = this.requestInterruptAcknowledge();
        if (acknowledge !== undefined) {
          // The device thread wakes a native waiter with FUTEX_WAKE, not Atomics.notify: wait the native way.
          addon.vcpuLoopWait(handle, acknowledge);
          this.injectAcknowledgedInterrupt();
        }
      }
      const result = addon.vcpuLoopRun(handle);
      if (result === NATIVE_LOOP_RETURN.interrupt) continue;
      const outcome = this.handleExit(result < 0 ? result : 0);
      if (typeof outcome !== 'number') return outcome;
      // The native loop returns no access handleExit would forward; should it ever, wait for it the native way.
      if (outcome !== NOTHING_TO_FORWARD) addon.vcpuLoopWait(handle, outcome);
    }
  }

  /** The addon's exit loop for this vCPU (native hand-off), created on the first run. */
  private nativeLoop: number | undefined;

  /** The same loop for hand-offs that need the worker's event loop to answer. */
  async runAsync(): Promise<VcpuStop> {
    this.noteFirstRun();
    const forward = this.forwardAsync;
    if (!forward) throw new Error(`hand-off ${this.config.handOff} needs a forwarder`);
    for (;;) {
      if (this.config.injectsExtint) {
        const acknowledge = this.requestInterruptAcknowledge();
        if (acknowledge !== undefined) {
          await forward(acknowledge);
          if (!this.channel.isComplete(acknowledge)) this.channel.waitForCompletion(acknowledge, 0, this.waits);
          this.injectAcknowledgedInterrupt();
        }
      }
      const outcome = this.handleExit(this.addon.run(this.config.vcpuFd, this.runRequest));
      if (typeof outcome !== 'number') return outcome;
      if (outcome !== NOTHING_TO_FORWARD) {
        await forward(outcome);
        if (!this.channel.isComplete(outcome)) this.channel.waitForCompletion(outcome, 0, this.waits);
      }
    }
  }

  /**
   * Handles what KVM_RUN returned (`result`: 0, or -errno). Returns why the
   * loop must end, the sequence number of an access handed to the device
   * thread, or NOTHING_TO_FORWARD.
   *
   * The common exits (port I/O and MMIO, answered here or handed over) take
   * a straight path through fields read once in the constructor, with no
   * allocation and no calls. Under this host's PVM KVM the world switch of
   * every exit leaves the TLB and caches cold, so each extra page of objects
   * or JIT code touched here costs ~60 cycles per exit; this form measured
   * ~1,100 cycles (5% of an exit) cheaper than one that asked getters and
   * helpers for each field.
   *
   * A pause or stop needs no look at the control word here: requestExit
   * sets immediate_exit before it kicks, so the next KVM_RUN returns EINTR at
   * once and onRunError honours the request. That KVM_RUN also completes the
   * access just answered (KVM finishes an I/O or MMIO read only on
   * re-entry), so the vCPU stops on an instruction boundary.
   */
  private handleExit(result: number): VcpuStop | number {
    if (this.parkedVector >= 0) this.settleExternalInterrupt();
    if (result < 0) return this.onRunError(-result) ?? NOTHING_TO_FORWARD;
    const { stats, access } = this;
    stats[KVM_RUNS]++;
    decodeAccess(this.bytes, this.data, access);
    const kind = access.kind;
    if (kind === ACCESS_KIND.ioRead || kind === ACCESS_KIND.ioWrite) {
      stats[IO_EXITS]++;
      if (this.claims.portClaimed(access.address)) {
        stats[FORWARDED]++;
        decodeAccessData(this.bytes, this.data, access);
        return this.channel.handOff(access);
      }
      // Reads nobody claims return all ones, as a PC bus with no device
      // answers. Filled in the page itself: no view to look up per exit.
      if (kind === ACCESS_KIND.ioRead) {
        decodeAccessData(this.bytes, this.data, access);
        this.bytes.fill(0xff, access.dataOffset, access.dataOffset + access.size * access.count);
      }
      stats[UNCLAIMED]++;
      return NOTHING_TO_FORWARD;
    }
    if (kind === ACCESS_KIND.mmioRead || kind === ACCESS_KIND.mmioWrite) {
      stats[MMIO_EXITS]++;
      if (this.claims.mmioClaimed(access.address)) {
        stats[FORWARDED]++;
        decodeAccessData(this.bytes, this.data, access);
        return this.channel.handOff(access);
      }
      if (kind === ACCESS_KIND.mmioRead) {
        decodeAccessData(this.bytes, this.data, access);
        this.bytes.fill(0xff, access.dataOffset, access.dataOffset + access.size);
      }
      stats[UNCLAIMED]++;
      return NOTHING_TO_FORWARD;
    }
    stats[OTHER_EXITS]++;
    // Only with the split irqchip: the userspace IOAPIC on the device
    // thread must see the EOI to clear the entry's remote IRR.
    if (kind === ACCESS_KIND.eoi) {
      decodeAccessData(this.bytes, this.data, access);
      return this.channel.handOff(access);
    }
    return this.onOtherExit(this.run.exitReason) ?? NOTHING_TO_FORWARD;
  }

  /**
   * Before KVM_RUN on the vCPU that takes the userspace PIC's interrupts:
   * when the PIC asserts INT and the guest can take an interrupt now, asks
   * the device thread for the INTA cycle (returns the hand-off to wait for);
   * when it cannot yet, asks KVM to exit as soon as it can
   * (KVM_EXIT_IRQ_WINDOW_OPEN), as QEMU does for its userspace PIC.
   */
  private requestInterruptAcknowledge(): number | undefined {
    const run = this.run;
    if (Atomics.load(this.control, VCPU_CONTROL.extintPending) === 0) {
      run.requestInterruptWindow = false;
      return undefined;
    }
    if (run.readyForInterruptInjection && run.interruptsEnabled) {
      run.requestInterruptWindow = false;
      return this.channel.requestInterruptAcknowledge();
    }
    run.requestInterruptWindow = true;
    return undefined;
  }

  /** KVM_INTERRUPT with the vector the PIC's INTA cycle gave (none if INT dropped meanwhile). */
  private injectAcknowledgedInterrupt(): void {
    const vector = this.channel.result;
    if (vector !== NO_INTERRUPT) this.injectExternalInterrupt(vector);
  }

  private injectExternalInterrupt(vector: number): void {
    new DataView(this.interruptBuffer.buffer).setUint32(0, vector, true);
    check('KVM_INTERRUPT', this.addon.ioctl(this.config.vcpuFd, IOCTL.KVM_INTERRUPT, this.interruptBuffer), `vCPU ${this.config.vcpuId} vector ${vector}`);
    this.parkedVector = vector;
  }

  private readonly interruptBuffer = new Uint8Array(4);

  /**
   * The vector of the last KVM_INTERRUPT while KVM may still hold it parked
   * (-1 once it is known to be taken). KVM_INTERRUPT only parks the vector;
   * KVM takes it into the guest when it next enters, and a KVM_RUN that
   * leaves at once (the immediate_exit of a pause) does not enter. By then
   * the PIC has the interrupt in service, so a snapshot that left the vector
   * out would restore a guest that never gets it, and whose PIC never sends
   * that line again (test/kvm/extint-injection.test.ts shows the kernel side).
   */
  private parkedVector = -1;

  /**
   * After each KVM_RUN while a vector may be parked: KVM computes
   * ready_for_interrupt_injection on every return, the immediate one too,
   * and it is 1 only with no ExtINT vector parked; IF = 0 means the guest
   * ran since the injection, which was made with IF = 1, so the vector was
   * delivered. Either way it is taken. (IF = 1 with ready = 0 can also mean an
   * interrupt shadow or a masked LINT0 just after the vector was taken; the
   * vector is then kept as parked, the rarer mistake.)
   */
  private settleExternalInterrupt(): void {
    if (this.run.readyForInterruptInjection || !this.run.interruptsEnabled) this.parkedVector = -1;
  }

  /** For start-up measurements: when this vCPU first entered the guest. */
  private noteFirstRun(): void {
    if (this.stats[VCPU_STAT_INDEX.firstRunNs] === 0) this.stats[VCPU_STAT_INDEX.firstRunNs] = Number(process.hrtime.bigint());
  }

  private onRunError(errno: number): VcpuStop | undefined {
    if (errno === ERRNO.EINTR || errno === ERRNO.EAGAIN) {
      this.stats[VCPU_STAT_INDEX.interrupted]++;
      // A kick for an interrupt to inject sets immediate_exit without a
      // request. Clear it first and look at the request after: a stop that
      // lands in between is then either seen here or still has
      // immediate_exit set for the next KVM_RUN.
      this.run.clearImmediateExit();
      const request = Atomics.load(this.control, VCPU_CONTROL.request);
      if (request !== VCPU_REQUEST.none) return this.honourRequest(request);
      return undefined; // a waiting AP or a stray signal: run again
    }
    const error = new KvmError('KVM_RUN', errno, `vCPU ${this.config.vcpuId}`);
    return { kind: 'run-failed', errno, message: error.message };
  }

  private honourRequest(request: number): VcpuStop {
    this.run.immediateExit = false;
    Atomics.store(this.control, VCPU_CONTROL.parkedExternalInterrupt, this.parkedVector + 1);
    Atomics.store(this.control, VCPU_CONTROL.request, VCPU_REQUEST.none);
    return request === VCPU_REQUEST.pause ? { kind: 'paused' } : { kind: 'stopped' };
  }

  private onOtherExit(reason: number): VcpuStop | undefined {
    const run = this.run;
    switch (reason) {
      case EXIT.HLT:
        return { kind: 'halted' };
      case EXIT.SHUTDOWN:
        return { kind: 'shutdown' };
      case EXIT.INTR:
        return undefined;
      case EXIT.IRQ_WINDOW_OPEN:
        return undefined;
      case EXIT.FAIL_ENTRY:
        return { kind: 'fail-entry', hardwareReason: `0x${run.failEntryReason.toString(16)}` };
      case EXIT.SYSTEM_EVENT:
        return { kind: 'system-event', type: run.systemEventType };
      case EXIT.INTERNAL_ERROR:
        return this.internalError();
      default:
        return { kind: 'unhandled-exit', reason };
    }
  }

  private internalError(): VcpuStop {
    const run = this.run;
    const suberror = run.internalSuberror;
    const data = run.internalData();
    let insnBytes: number[] | undefined;
    // For emulation failures KVM may include the instruction bytes it could
    // not emulate; the flag word says whether it did.
    if (suberror === INTERNAL_ERROR.EMULATION && data.length >= 1
      && (data[0] & INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) !== 0n) {
      const size = Math.min(run.bytes[KVM_RUN.emulation_insn_size], 15);
      insnBytes = Array.from(run.bytes.subarray(KVM_RUN.emulation_insn_bytes, KVM_RUN.emulation_insn_bytes + size));
    }
    return { kind: 'internal-error', suberror, data: data.map((d) => `0x${d.toString(16)}`), insnBytes };
  }
}

/** Only the shared-memory hand-offs wake the device thread through the doorbell. */
function handOffRingsDoorbell(mode: HandOffMode): boolean {
  return mode === 'spin-park' || mode === 'park' || mode === 'native';
}

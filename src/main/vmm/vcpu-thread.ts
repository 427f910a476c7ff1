// One vCPU's worker thread, seen from the main thread: spawn it, start its
// run loop over comlink, and make it leave KVM_RUN (control word, then
// immediate_exit, then a signal to its thread) to pause or stop it.

import { MessageChannel, MessagePort, Worker } from 'node:worker_threads';
import { startVcpuWorker } from './vcpu-worker-start';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter';
import { KvmRunView } from '../../shared/kvm-run';
import { native } from '../../shared/native';
import {
  HandOffHistogram, VCPU_CONTROL, VCPU_CONTROL_BYTES, VCPU_REQUEST, VCPU_STATS_BYTES, VcpuStatValues, readHandOffHistogram, readVcpuStats,
} from '../../shared/vcpu-stats';
import type { HandOffMode, VcpuStop, VcpuWorkerApi, VcpuWorkerConfig } from '../../shared/vcpu-protocol';
import { ExitChannel } from '../../shared/exit-channel';
import type { Regs } from '../../shared/kvm-structs';

export interface VcpuThreadOptions {
  vcpuId: number;
  vcpuFd: number;
  runAddress: bigint;
  runSize: number;
  doorbell: SharedArrayBuffer;
  claims: SharedArrayBuffer;
  handOff: HandOffMode;
  spinLimit: number;
  injectsExtint: boolean;
  /** A restored vCPU's parked ExtINT vector (VcpuState.parkedExternalInterrupt). */
  parkedExternalInterrupt?: number;
  /** For the native hand-off: the device waker that wakes the parked device thread. */
  deviceWaker?: number;
}

export class VcpuThread {
  /** The device side's end of the message hand-offs (undefined for shared-memory ones). */
  readonly devicePort: MessagePort | undefined;

  private constructor(
    readonly vcpuId: number,
    /** Where this vCPU's kvm_run page is mapped (the main thread maps and unmaps it). */
    readonly runAddress: bigint,
    readonly runSize: number,
    private readonly worker: Worker,
    private readonly api: Comlink.Remote<VcpuWorkerApi>,
    private readonly thread: bigint,
    readonly channel: ExitChannel,
    readonly run: KvmRunView,
    private readonly control: Int32Array,
    private readonly statsBuffer: SharedArrayBuffer,
    devicePort: MessagePort | undefined,
  ) {
    this.devicePort = devicePort;
  }

  /** Hands a started worker its vCPU; resolves once the worker has mapped it. */
  static async spawn(options: VcpuThreadOptions, worker = startVcpuWorker(options.vcpuId)): Promise<VcpuThread> {
    const api = Comlink.wrap<VcpuWorkerApi>(nodeEndpoint(worker));
    const channelBuffer = new ExitChannel().buffer;
    const control = new SharedArrayBuffer(VCPU_CONTROL_BYTES);
    const stats = new SharedArrayBuffer(VCPU_STATS_BYTES);
    const needsPort = options.handOff === 'post-message' || options.handOff === 'comlink';
    const ports = needsPort ? new MessageChannel() : undefined;
    const config: VcpuWorkerConfig = {
      ...options,
      channel: channelBuffer,
      control,
      stats,
      devicePort: ports?.port2,
    };
    try {
      // comlink's types speak DOM; a Node MessagePort is what it transfers here.
      const transfer = (ports ? [ports.port2] : []) as unknown as Parameters<typeof Comlink.transfer>[1];
      const thread = await api.init(Comlink.transfer(config, transfer));
      const run = new KvmRunView(native().view(options.runAddress, options.runSize));
      // A vCPU in the native exit loop parks in a raw futex, which only a FUTEX_WAKE reaches.
      const channel = options.handOff === 'native'
        ? new ExitChannel(channelBuffer, undefined, (words, slot) => { native().futexWake(words, slot); })
        : new ExitChannel(channelBuffer);
      return new VcpuThread(options.vcpuId, options.runAddress, options.runSize, worker, api, thread, channel, run,
        new Int32Array(control), stats, ports?.port1);
    } catch (error) {
      await worker.terminate();
      throw error;
    }
  }

  /** Runs the vCPU until it stops; resolves with why. */
  start(): Promise<VcpuStop> {
    return this.api.run();
  }

  /**
   * Asks the vCPU to leave KVM_RUN. The control word says why; immediate_exit
   * covers a kick that lands just before KVM_RUN is entered; the signal
   * interrupts a KVM_RUN already in progress (a halted vCPU sleeps there).
   */
  requestExit(kind: 'pause' | 'stop'): void {
    Atomics.store(this.control, VCPU_CONTROL.request, VCPU_REQUEST[kind]);
    this.run.immediateExit = true;
    native().kick(this.thread);
  }

  /**
   * The userspace PIC's INT output for this vCPU. When it rises, the vCPU is
   * kicked out of KVM_RUN (it may be halted) so that it injects the
   * interrupt before it runs the guest again.
   */
  setExternalInterrupt(asserted: boolean): void {
    Atomics.store(this.control, VCPU_CONTROL.extintPending, asserted ? 1 : 0);
    if (!asserted) return;
    this.run.immediateExit = true;
    native().kick(this.thread);
  }

  /** After a pause: the ExtINT vector KVM still holds parked for this vCPU (VCPU_CONTROL.parkedExternalInterrupt), if any. */
  parkedExternalInterrupt(): number | undefined {
    const word = Atomics.load(this.control, VCPU_CONTROL.parkedExternalInterrupt);
    return word === 0 ? undefined : word - 1;
  }

  /** The vCPU's registers, read by its worker; only between runs. */
  registers(): Promise<Regs> {
    return this.api.registers();
  }

  stats(): VcpuStatValues {
    return readVcpuStats(this.statsBuffer);
  }

  /** The --stats histogram of this vCPU's hand-off waits (the JavaScript loops fill it; the native one does not yet). */
  handOffWaits(): HandOffHistogram {
    return readHandOffHistogram(this.statsBuffer);
  }

  async terminate(): Promise<void> {
    this.devicePort?.close();
    this.api[Comlink.releaseProxy]();
    await this.worker.terminate();
    native().detach(this.run.buffer);
  }
}

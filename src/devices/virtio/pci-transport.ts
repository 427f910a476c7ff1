// The virtio-pci modern transport (virtio 1.2 section 4.1): one PCI function
// whose BAR0 holds the common configuration, the ISR byte, the device's own
// configuration, the queue notify area and the MSI-X table and PBA, each
// found by the driver through a vendor capability. The device itself (a
// VirtioBackend) sees only its queues and its configuration bytes.

import type { LevelInterruptLine, MsiSink } from '../interrupt';
import { BarDefinition, CONFIG_SPACE_BYTES, PciConfigSpace, PciFunction } from '../pci/config-space';
import {
  StateFields, StatefulDevice, arrayField, booleanField, byteField, bytesField, checkFields, decimalBigIntField, integerField, loadFields, saveFields,
} from '../snapshot';
import { TsvmmError } from '../../shared/errors';
import { ChainError, DmaMemory, QueueFeatures, SplitQueue, SplitQueueState, splitQueueStateProblem } from './queue';

const VIRTIO_VENDOR_ID = 0x1af4;
/** Modern device ids are 0x1040 + the virtio device type. */
const MODERN_DEVICE_ID_BASE = 0x1040;

const VIRTIO_F = {
  indirectDesc: 28n,
  eventIdx: 29n,
  version1: 32n,
} as const;

const DEVICE_STATUS = {
  acknowledge: 1,
  driver: 2,
  driverOk: 4,
  featuresOk: 8,
  needsReset: 64,
  failed: 128,
} as const;

/** BAR0's layout (crosvm's): each structure on its own 4 KiB page. */
export const BAR0 = {
  size: 0x8000,
  common: 0x0000,
  isr: 0x1000,
  device: 0x2000,
  notify: 0x3000,
  msixTable: 0x6000,
  msixPba: 0x7000,
} as const;
const COMMON_CONFIG_BYTES = 0x38;
const NOTIFY_OFF_MULTIPLIER = 4;
const NO_VECTOR = 0xffff;
/** ISR status bits: a used buffer, a configuration change. */
const ISR_QUEUE = 1;
const ISR_CONFIG = 2;
const MSIX_ENTRY_BYTES = 16;
const MSIX_VECTOR_MASKED = 1;

const CAP = { vendor: 0x09, msix: 0x11 } as const;
const CFG_TYPE = { common: 1, notify: 2, isr: 3, device: 4 } as const;
const MSIX_CONTROL_ENABLE = 0x8000;
const MSIX_CONTROL_FUNCTION_MASK = 0x4000;

/** Common configuration offsets (virtio 1.2 4.1.4.3). */
const COMMON = {
  deviceFeatureSelect: 0x00, deviceFeature: 0x04, driverFeatureSelect: 0x08, driverFeature: 0x0c,
  configMsixVector: 0x10, numQueues: 0x12, deviceStatus: 0x14, configGeneration: 0x15, queueSelect: 0x16,
  queueSize: 0x18, queueMsixVector: 0x1a, queueEnable: 0x1c, queueNotifyOff: 0x1e,
  queueDesc: 0x20, queueDriver: 0x28, queueDevice: 0x30,
} as const;

/** What the transport offers a running device. */
export interface VirtioContext {
  readonly memory: DmaMemory;
  readonly queues: readonly SplitQueue[];
  readonly features: bigint;
  readonly queueFeatures: QueueFeatures;
  /** Interrupts the driver for queue `index` (MSI-X vector or INTx). */
  interruptQueue(index: number): void;
  /** The device cannot go on: DEVICE_NEEDS_RESET and a configuration interrupt. */
  needsReset(why: string): void;
}

/** A virtio device behind the transport: queues and configuration only. */
export interface VirtioBackend {
  /** The virtio device type (2 block, 3 console, 4 entropy). */
  readonly type: number;
  readonly name: string;
  /** The largest size of each queue. */
  readonly queueSizes: readonly number[];
  /** PCI class, subclass. */
  readonly pciClass: readonly [number, number];
  /** Device feature bits (the transport adds VERSION_1, EVENT_IDX and INDIRECT_DESC). */
  readonly features: bigint;
  readonly configSize: number;
  readConfig(offset: number, data: Uint8Array): void;
  writeConfig?(offset: number, data: Uint8Array): void;
  /** DRIVER_OK: the queues are set up; requests may be served from now on. */
  activate(context: VirtioContext): void;
  /** The driver notified queue `index`. */
  queueNotified(index: number): void;
  /** Device reset: drop every reference to the queues and guest memory. */
  reset(): void;
  /** Resolves when no request is in flight (before a snapshot); a device that completes every request at once has none. */
  whenIdle?(): Promise<void>;
  /** Host-side state of the back-end that its queues do not hold (input waiting for receive buffers), for snapshots. */
  readonly state?: VirtioBackendState;
}

/** A back-end's own part of a snapshot, saved and restored by its transport. */
export interface VirtioBackendState<S = unknown> {
  save(): S;
  /** The first problem with `state` (named from `path`), or undefined when it can be loaded. */
  check(state: unknown, path: string): string | undefined;
  /** Puts a state that check() accepted back. */
  load(state: S): void;
}

/** The transport's registers as a snapshot holds them (the queues and the configuration space apart). */
interface TransportRegisters {
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  driverFeatures: bigint;
  status: number;
  configGeneration: number;
  queueSelect: number;
  configMsixVector: number;
  isr: number;
  msixTable: Uint8Array;
  msixPending: boolean[];
}

type SavedTransportRegisters = Omit<TransportRegisters, 'driverFeatures' | 'msixTable'> & { driverFeatures: string; msixTable: string };

/** Plain, JSON-able state of a VirtioPciDevice, for snapshots. */
export interface VirtioPciState {
  transport: SavedTransportRegisters;
  /** The PCI configuration space as the guest left it (BARs as programmed, command, MSI-X control), base64. */
  configSpace: string;
  queues: SplitQueueState[];
  /** The back-end's VirtioBackendState, for a back-end that has one (absent in a snapshot from before it had: nothing waiting). */
  backend?: unknown;
}

const configSpaceField = bytesField(CONFIG_SPACE_BYTES);

function transportFields(vectors: number): StateFields<TransportRegisters, SavedTransportRegisters> {
  const u32 = integerField(0, 0xffff_ffff);
  return {
    deviceFeatureSelect: u32,
    driverFeatureSelect: u32,
    driverFeatures: decimalBigIntField,
    status: byteField,
    configGeneration: byteField,
    queueSelect: integerField(0, 0xffff),
    configMsixVector: integerField(0, 0xffff),
    isr: byteField,
    msixTable: bytesField(vectors * MSIX_ENTRY_BYTES),
    msixPending: arrayField(booleanField, { exactly: vectors }),
  };
}

class VirtioStateError extends TsvmmError {
  constructor(name: string, problem: string) {
    super('usage', `cannot restore ${name} state: ${problem}; pass a state produced by VirtioPciDevice.snapshot() for the same device`);
  }
}

export interface VirtioPciOptions {
  backend: VirtioBackend;
  memory: DmaMemory;
  bar0Address: number;
  msi: MsiSink;
  intx: LevelInterruptLine;
  /** Logged once per device, for guest mistakes that are refused. */
  warn?: (message: string) => void;
}

const le16 = (data: Uint8Array) => data[0] | (data.length > 1 ? data[1] << 8 : 0);
const le32 = (data: Uint8Array) => (data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24)) >>> 0;

function putLe(data: Uint8Array, value: number): void {
  for (let i = 0; i < data.length; i++) data[i] = i < 4 ? (value >>> (8 * i)) & 0xff : 0;
}

export class VirtioPciDevice implements PciFunction, StatefulDevice<VirtioPciState> {
  readonly name: string;
  readonly config: PciConfigSpace;
  readonly queues: SplitQueue[];
  private readonly backend: VirtioBackend;
  private readonly offered: bigint;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  private driverFeatures = 0n;
  private status = 0;
  private configGeneration = 0;
  private queueSelect = 0;
  private configMsixVector = NO_VECTOR;
  private isr = 0;
  private readonly msixTable: Uint8Array;
  private readonly msixPending: boolean[];
  private readonly msixCap: number;
  private warned = false;
  /** Counters for stats and tests. */
  readonly counters = { notifications: 0, forwardedNotifications: 0, interrupts: 0, resets: 0 };

  constructor(private readonly options: VirtioPciOptions) {
    const { backend } = options;
    this.backend = backend;
    this.name = `virtio-${backend.name}`;
    this.offered = backend.features | (1n << VIRTIO_F.version1) | (1n << VIRTIO_F.eventIdx) | (1n << VIRTIO_F.indirectDesc);
    this.queues = backend.queueSizes.map((size) => new SplitQueue(size));
    const vectors = this.queues.length + 1;
    this.msixTable = new Uint8Array(vectors * MSIX_ENTRY_BYTES);
    for (let v = 0; v < vectors; v++) this.msixTable[v * MSIX_ENTRY_BYTES + 12] = MSIX_VECTOR_MASKED;
    this.msixPending = new Array(vectors).fill(false);
    this.config = new PciConfigSpace({
      vendorId: VIRTIO_VENDOR_ID,
      deviceId: MODERN_DEVICE_ID_BASE + backend.type,
      classCode: backend.pciClass[0],
      subclass: backend.pciClass[1],
      revision: 1,
      subsystemVendorId: VIRTIO_VENDOR_ID,
      subsystemId: 0x40,
    });
    const bar: BarDefinition = { index: 0, kind: 'memory32', size: BAR0.size, address: options.bar0Address };
    this.config.addBar(bar);
    this.addVirtioCap(CFG_TYPE.common, BAR0.common, COMMON_CONFIG_BYTES);
    this.addVirtioCap(CFG_TYPE.notify, BAR0.notify, NOTIFY_OFF_MULTIPLIER * this.queues.length, NOTIFY_OFF_MULTIPLIER);
    this.addVirtioCap(CFG_TYPE.isr, BAR0.isr, 1);
    if (backend.configSize > 0) this.addVirtioCap(CFG_TYPE.device, BAR0.device, backend.configSize);
    const msix = new Uint8Array(12);
    msix[0] = CAP.msix;
    new DataView(msix.buffer).setUint16(2, vectors - 1, true);
    new DataView(msix.buffer).setUint32(4, BAR0.msixTable, true); // BIR 0
    new DataView(msix.buffer).setUint32(8, BAR0.msixPba, true);
    const writable = new Uint8Array(12);
    writable[3] = (MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK) >> 8;
    this.msixCap = this.config.addCapability(msix, writable);
  }

  private addVirtioCap(cfgType: number, offset: number, length: number, multiplier?: number): void {
    const cap = new Uint8Array(multiplier === undefined ? 16 : 20);
    const view = new DataView(cap.buffer);
    cap[0] = CAP.vendor;
    cap[2] = cap.length;
    cap[3] = cfgType;
    cap[4] = 0; // BAR0
    view.setUint32(8, offset, true);
    view.setUint32(12, length, true);
    if (multiplier !== undefined) view.setUint32(16, multiplier, true);
    this.config.addCapability(cap);
  }

  private get msixControl(): number {
    return this.config.byteAt(this.msixCap + 2) | (this.config.byteAt(this.msixCap + 3) << 8);
  }

  private get msixEnabled(): boolean {
    return (this.msixControl & MSIX_CONTROL_ENABLE) !== 0;
  }

  /** A config write may have unmasked MSI-X (deliver what waited), enabled it or set INTx disable (INTx follows). */
  configWritten(): void {
    if (this.msixEnabled) this.deliverPending();
    this.updateIntx();
  }

  barRegion(index: number): { read(offset: number, data: Uint8Array): void; write(offset: number, data: Uint8Array): void } | undefined {
    if (index !== 0) return undefined;
    return { read: (offset, data) => this.readBar(offset, data), write: (offset, data) => this.writeBar(offset, data) };
  }

  /** Each queue's notify register: a 16-bit write of its index, nothing else (virtio 1.2 4.1.4.4). */
  doorbells(index: number): readonly { offset: number; length: number; signal: () => void }[] {
    if (index !== 0) return [];
    return this.queues.map((_, queue) => ({ offset: BAR0.notify + NOTIFY_OFF_MULTIPLIER * queue, length: 2, signal: () => this.notify(queue) }));
  }

  get deviceStatus(): number {
    return this.status;
  }

  private get stateFields(): StateFields<TransportRegisters, SavedTransportRegisters> {
    return transportFields(this.msixPending.length);
  }

  /** Resolves once the device has no request in flight: a snapshot must not miss a completion. */
  whenIdle(): Promise<void> {
    return this.backend.whenIdle?.() ?? Promise.resolve();
  }

  snapshot(): VirtioPciState {
    return {
      transport: saveFields(this as unknown as TransportRegisters, this.stateFields),
      configSpace: configSpaceField.save(this.config.allBytes()),
      queues: this.queues.map((queue) => queue.snapshot()),
      ...(this.backend.state ? { backend: this.backend.state.save() } : {}),
    };
  }

  /**
   * Checks all of `state`, then puts it back in place: the queues stay the
   * objects the backend holds. A device the driver had started (DRIVER_OK)
   * is activated again, so its backend serves what the rings hold, and INTx
   * is driven from the restored ISR; no MSI-X message is sent.
   */
  restore(state: VirtioPciState): void {
    const problem = this.stateProblem(state);
    if (problem) throw new VirtioStateError(this.name, problem);
    if (state.backend !== undefined) this.backend.state?.load(state.backend);
    if ((this.status & DEVICE_STATUS.driverOk) !== 0) this.backend.reset();
    loadFields(this as unknown as TransportRegisters, state.transport, this.stateFields);
    this.config.setAllBytes(configSpaceField.load(state.configSpace));
    state.queues.forEach((queue, i) => this.queues[i].restoreChecked(queue));
    if ((this.status & DEVICE_STATUS.driverOk) !== 0 && (this.status & DEVICE_STATUS.needsReset) === 0) this.activate();
    this.updateIntx();
  }

  private stateProblem(state: unknown): string | undefined {
    if (typeof state !== 'object' || state === null || Array.isArray(state)) return 'the state is not an object';
    const { transport, configSpace, queues, backend, ...rest } = state as Partial<VirtioPciState>;
    const unknown = Object.keys(rest)[0] ?? (backend !== undefined && !this.backend.state ? 'backend' : undefined);
    if (unknown !== undefined) return `the state has a field '${unknown}' that this version does not know`;
    const problem = checkFields(transport, this.stateFields, 'transport') ?? configSpaceField.check(configSpace, 'configSpace')
      ?? (backend === undefined ? undefined : this.backend.state?.check(backend, 'backend'));
    if (problem) return problem;
    if (!Array.isArray(queues) || queues.length !== this.queues.length) return `queues is not a list of ${this.queues.length}`;
    for (let i = 0; i < queues.length; i++) {
      const queueProblem = splitQueueStateProblem(queues[i], `queues[${i}]`);
      if (queueProblem) return queueProblem;
    }
    return undefined;
  }

  private readBar(offset: number, data: Uint8Array): void {
    if (offset >= BAR0.common && offset < BAR0.common + COMMON_CONFIG_BYTES) return this.readCommon(offset - BAR0.common, data);
    if (offset === BAR0.isr) {
      data.fill(0);
      data[0] = this.isr;
      // Reading the ISR clears it and de-asserts INTx (virtio 1.2 4.1.4.5).
      this.isr = 0;
      this.updateIntx();
      return;
    }
    if (offset >= BAR0.device && offset < BAR0.device + this.backend.configSize) return this.backend.readConfig(offset - BAR0.device, data);
    if (offset >= BAR0.msixTable && offset + data.length <= BAR0.msixTable + this.msixTable.length) {
      data.set(this.msixTable.subarray(offset - BAR0.msixTable, offset - BAR0.msixTable + data.length));
      return;
    }
    if (offset >= BAR0.msixPba && offset < BAR0.msixPba + 8) {
      let bits = 0;
      this.msixPending.forEach((pending, v) => { if (pending) bits |= 1 << v; });
      for (let i = 0; i < data.length; i++) data[i] = offset - BAR0.msixPba + i < 4 ? (bits >>> (8 * (offset - BAR0.msixPba + i))) & 0xff : 0;
      return;
    }
    data.fill(0);
  }

  private writeBar(offset: number, data: Uint8Array): void {
    if (offset >= BAR0.common && offset < BAR0.common + COMMON_CONFIG_BYTES) return this.writeCommon(offset - BAR0.common, data);
    if (offset >= BAR0.notify && offset < BAR0.notify + NOTIFY_OFF_MULTIPLIER * this.queues.length) {
      // Here only when no ioeventfd caught the write (another width, or a host without one).
      this.counters.forwardedNotifications++;
      return this.notify((offset - BAR0.notify) / NOTIFY_OFF_MULTIPLIER | 0);
    }
    if (offset >= BAR0.device && offset < BAR0.device + this.backend.configSize) return this.backend.writeConfig?.(offset - BAR0.device, data);
    if (offset >= BAR0.msixTable && offset + data.length <= BAR0.msixTable + this.msixTable.length) {
      this.msixTable.set(data, offset - BAR0.msixTable);
      this.deliverPending();
    }
    // The PBA is read-only; ISR writes are ignored.
  }

  /** A queue notification, from a BAR write or from an ioeventfd. */
  notify(index: number): void {
    this.counters.notifications++;
    if ((this.status & DEVICE_STATUS.driverOk) === 0 || (this.status & DEVICE_STATUS.needsReset) !== 0) return;
    if (index < this.queues.length && this.queues[index].ready) this.backend.queueNotified(index);
  }

  private get selectedQueue(): SplitQueue | undefined {
    return this.queues[this.queueSelect];
  }

  private readCommon(offset: number, data: Uint8Array): void {
    const queue = this.selectedQueue;
    const half = (address: number, at: number) => (at === 0 ? address % 2 ** 32 : Math.floor(address / 2 ** 32));
    switch (offset) {
      case COMMON.deviceFeatureSelect: return putLe(data, this.deviceFeatureSelect);
      case COMMON.deviceFeature: return putLe(data, this.deviceFeatureSelect < 2 ? Number((this.offered >> BigInt(32 * this.deviceFeatureSelect)) & 0xffff_ffffn) : 0);
      case COMMON.driverFeatureSelect: return putLe(data, this.driverFeatureSelect);
      case COMMON.driverFeature: return putLe(data, this.driverFeatureSelect < 2 ? Number((this.driverFeatures >> BigInt(32 * this.driverFeatureSelect)) & 0xffff_ffffn) : 0);
      case COMMON.configMsixVector: return putLe(data, this.configMsixVector);
      case COMMON.numQueues: return putLe(data, this.queues.length);
      case COMMON.deviceStatus: return putLe(data, this.status);
      case COMMON.configGeneration: return putLe(data, this.configGeneration);
      case COMMON.queueSelect: return putLe(data, this.queueSelect);
      case COMMON.queueSize: return putLe(data, queue ? queue.size : 0);
      case COMMON.queueMsixVector: return putLe(data, queue ? queue.msixVector : NO_VECTOR);
      case COMMON.queueEnable: return putLe(data, queue?.ready ? 1 : 0);
      case COMMON.queueNotifyOff: return putLe(data, this.queueSelect);
      case COMMON.queueDesc: case COMMON.queueDesc + 4: return putLe(data, half(queue?.descTable ?? 0, offset - COMMON.queueDesc));
      case COMMON.queueDriver: case COMMON.queueDriver + 4: return putLe(data, half(queue?.availRing ?? 0, offset - COMMON.queueDriver));
      case COMMON.queueDevice: case COMMON.queueDevice + 4: return putLe(data, half(queue?.usedRing ?? 0, offset - COMMON.queueDevice));
      default: data.fill(0);
    }
  }

  private writeCommon(offset: number, data: Uint8Array): void {
    const queue = this.selectedQueue;
    const value = data.length >= 4 ? le32(data) : le16(data);
    const setHalf = (old: number, at: number) => (at === 0 ? Math.floor(old / 2 ** 32) * 2 ** 32 + value : (old % 2 ** 32) + value * 2 ** 32);
    // Queue registers are frozen once the queue is enabled (the driver must not change them then).
    const queueWritable = queue !== undefined && !queue.ready && (this.status & DEVICE_STATUS.driverOk) === 0;
    switch (offset) {
      case COMMON.deviceFeatureSelect: this.deviceFeatureSelect = value; return;
      case COMMON.driverFeatureSelect: this.driverFeatureSelect = value; return;
      case COMMON.driverFeature:
        if (this.driverFeatureSelect < 2 && (this.status & DEVICE_STATUS.featuresOk) === 0) {
          const shift = BigInt(32 * this.driverFeatureSelect);
          this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(value) << shift);
        }
        return;
      case COMMON.configMsixVector: this.configMsixVector = this.acceptVector(value); return;
      case COMMON.deviceStatus: this.writeStatus(data[0]); return;
      case COMMON.queueSelect: this.queueSelect = value; return;
      case COMMON.queueSize:
        // A size the device cannot take makes the queue invalid at DRIVER_OK, where it is refused.
        if (queueWritable) queue.size = value;
        return;
      case COMMON.queueMsixVector: if (queue) queue.msixVector = this.acceptVector(value); return;
      case COMMON.queueEnable: if (queueWritable && value === 1) queue.ready = true; return;
      case COMMON.queueDesc: case COMMON.queueDesc + 4: if (queueWritable) queue.descTable = setHalf(queue.descTable, offset - COMMON.queueDesc); return;
      case COMMON.queueDriver: case COMMON.queueDriver + 4: if (queueWritable) queue.availRing = setHalf(queue.availRing, offset - COMMON.queueDriver); return;
      case COMMON.queueDevice: case COMMON.queueDevice + 4: if (queueWritable) queue.usedRing = setHalf(queue.usedRing, offset - COMMON.queueDevice); return;
      default: // read-only fields and padding
    }
  }

  /** An MSI-X table index the device can use, or NO_VECTOR (the driver reads it back to learn which). */
  private acceptVector(value: number): number {
    return value < this.msixPending.length ? value : NO_VECTOR;
  }

  private writeStatus(value: number): void {
    if (value === 0) return this.reset();
    const adding = value & ~this.status;
    if ((adding & DEVICE_STATUS.featuresOk) !== 0) {
      const acceptable = (this.driverFeatures & ~this.offered) === 0n && (this.driverFeatures & (1n << VIRTIO_F.version1)) !== 0n;
      // Refused by leaving FEATURES_OK clear: the driver reads the status back (virtio 1.2 3.1.1).
      if (!acceptable) value &= ~DEVICE_STATUS.featuresOk;
    }
    if ((adding & DEVICE_STATUS.driverOk) !== 0) {
      if ((value & DEVICE_STATUS.featuresOk) === 0) {
        this.warnOnce('the driver set DRIVER_OK without FEATURES_OK');
        value &= ~DEVICE_STATUS.driverOk;
      } else {
        const bad = this.queues.findIndex((queue) => queue.ready && !queue.isValid(this.options.memory));
        if (bad >= 0) {
          this.status = value & ~DEVICE_STATUS.driverOk;
          this.needsReset(`queue ${bad} is outside guest RAM, misaligned or of a size the device does not take`);
          return;
        }
      }
    }
    this.status = value;
    if ((adding & DEVICE_STATUS.driverOk) !== 0 && (value & DEVICE_STATUS.driverOk) !== 0) this.activate();
  }

  private activate(): void {
    const features = this.driverFeatures;
    const queueFeatures: QueueFeatures = {
      eventIdx: (features & (1n << VIRTIO_F.eventIdx)) !== 0n,
      indirect: (features & (1n << VIRTIO_F.indirectDesc)) !== 0n,
    };
    this.backend.activate({
      memory: this.options.memory,
      queues: this.queues,
      features,
      queueFeatures,
      interruptQueue: (index) => this.interrupt(this.queues[index]?.msixVector ?? NO_VECTOR, ISR_QUEUE),
      needsReset: (why) => this.needsReset(why),
    });
  }

  private needsReset(why: string): void {
    this.warnOnce(why);
    this.status |= DEVICE_STATUS.needsReset;
    this.configGeneration = (this.configGeneration + 1) & 0xff;
    this.interrupt(this.configMsixVector, ISR_CONFIG);
  }

  private reset(): void {
    this.backend.reset();
    this.counters.resets++;
    this.status = 0;
    this.driverFeatures = 0n;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.queueSelect = 0;
    this.configMsixVector = NO_VECTOR;
    this.isr = 0;
    for (const queue of this.queues) queue.reset();
    this.updateIntx();
  }

  /** Interrupts the driver: MSI-X when it is enabled (through `vector`), else ISR bit `isrBit` and INTx. */
  private interrupt(vector: number, isrBit: number): void {
    this.counters.interrupts++;
    // The configuration-change bit is set whatever carries the interrupt (virtio 1.2 4.1.4.5.1).
    if (isrBit === ISR_CONFIG) this.isr |= ISR_CONFIG;
    if (this.msixEnabled) {
      if (vector === NO_VECTOR) return;
      this.signalVector(vector);
      return;
    }
    this.isr |= isrBit;
    this.updateIntx();
  }

  private signalVector(vector: number): void {
    const entry = new DataView(this.msixTable.buffer, vector * MSIX_ENTRY_BYTES, MSIX_ENTRY_BYTES);
    const masked = (entry.getUint32(12, true) & MSIX_VECTOR_MASKED) !== 0 || (this.msixControl & MSIX_CONTROL_FUNCTION_MASK) !== 0;
    if (masked) {
      this.msixPending[vector] = true;
      return;
    }
    this.msixPending[vector] = false;
    const address = entry.getUint32(0, true) + entry.getUint32(4, true) * 2 ** 32;
    this.options.msi.signal({ address, data: entry.getUint32(8, true) });
  }

  private deliverPending(): void {
    this.msixPending.forEach((pending, vector) => { if (pending) this.signalVector(vector); });
  }

  private updateIntx(): void {
    const asserted = this.isr !== 0 && !this.msixEnabled;
    this.config.setInterruptStatus(asserted);
    const intxDisabled = (this.config.command & (1 << 10)) !== 0;
    this.options.intx.setLevel(asserted && !intxDisabled);
  }

  private warnOnce(message: string): void {
    if (this.warned) return;
    this.warned = true;
    this.options.warn?.(`${this.name}: ${message}`);
  }
}

/** For backends: a request failed on a malformed chain. */
export function isChainError(error: unknown): error is ChainError & { head?: number } {
  return error instanceof ChainError;
}

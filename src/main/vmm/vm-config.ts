// The VM's configuration as plain, JSON-able data (Cloud Hypervisor's
// VmConfig): the CLI, a --config file and, later, the control API and
// snapshots all produce one. What cannot be serialised (output callbacks,
// workers started ahead, test devices) is in MachineHooks instead.

import { HAND_OFF_MODES, HandOffMode } from '../../shared/vcpu-protocol';
import { DEFAULT_SPIN_LIMIT } from '../../shared/exit-channel';
import { TsvmmError } from '../../shared/errors';

const BOOT_PROTOCOLS = ['auto', 'linux', 'pvh'] as const;
export type BootProtocolChoice = (typeof BOOT_PROTOCOLS)[number];
const IRQCHIPS = ['kernel', 'split'] as const;
export type IrqchipChoice = (typeof IRQCHIPS)[number];

/** Where the debug console (port 0x402) goes: a file, or nowhere (the port still answers, as QEMU's -debugcon null). */
export type DebugconConfig = { kind: 'file'; path: string } | { kind: 'null' };

/** Where COM1 goes: the process's stdio, a file, or nowhere. */
export type SerialConfig = { kind: 'stdio' } | { kind: 'file'; path: string } | { kind: 'null' };

export interface VmConfig {
  cpus: number;
  memoryMiB: number;
  /** ELF vmlinux, bzImage or PVH ELF; absent: the bundled demo guest (or the firmware, with bios). */
  kernel?: string;
  /** A firmware image (SeaBIOS's bios.bin) to start at the reset vector instead of loading a kernel. */
  bios?: string;
  /** QEMU's debug console at port 0x402, where SeaBIOS writes its log; absent: no such port. */
  debugcon?: DebugconConfig;
  initrd?: string;
  /** Appended to the base command line. */
  cmdline?: string;
  /** Replaces the base command line "console=ttyS0 noacpi reboot=k panic=-1"; absent: that line. */
  cmdlineBase?: string;
  bootProtocol: BootProtocolChoice;
  irqchip: IrqchipChoice;
  serial: SerialConfig;
  /** The RTC's start, ISO-8601 UTC; absent: the host clock. */
  rtcBase?: string;
  handOff: HandOffMode;
  spinLimit: number;
  /** Virtio PCI devices, in slot order (slot 2 first, after the host and ISA bridges). */
  devices: DeviceConfig[];
}

/** A virtio PCI device (Cloud Hypervisor's --disk, --rng, --console). */
export type DeviceConfig =
  | { kind: 'rng'; source: string }
  | { kind: 'disk'; path: string; readonly: boolean; serial?: string }
  /** virtio-console's port 0 (the guest's hvc0): to `path`, or without one to MachineHooks.consoleOutput (the terminal). */
  | { kind: 'console'; path?: string };

/** Where virtio-rng reads entropy unless told otherwise. */
export const DEFAULT_RNG_SOURCE = '/dev/urandom';
/** A virtio-blk serial (GET_ID) is at most 20 bytes. */
const MAX_DISK_SERIAL = 20;

const DEFAULT_CPUS = 1;
const DEFAULT_MEMORY_MIB = 256;
/** The most loads a spin budget may ask for: about 10 ms of spinning per exit, far past any useful budget. */
export const MAX_SPIN_LIMIT = 10_000_000;

export const DEFAULT_VM_CONFIG: Readonly<VmConfig> = Object.freeze<VmConfig>({
  cpus: DEFAULT_CPUS,
  memoryMiB: DEFAULT_MEMORY_MIB,
  bootProtocol: 'auto',
  irqchip: 'kernel',
  serial: { kind: 'stdio' },
  handOff: 'spin-park',
  spinLimit: DEFAULT_SPIN_LIMIT,
  devices: [],
});

/** A field of a VmConfig that is not what it must be. */
class VmConfigError extends TsvmmError {
  constructor(readonly field: string, message: string) {
    super('usage', message, { step: `config field ${field}` });
  }
}

type Checker = (value: unknown, field: string, where: string) => unknown;

const fail = (field: string, where: string, want: string, value: unknown): never => {
  throw new VmConfigError(field, `${where}: "${field}" must be ${want}, got ${JSON.stringify(value)}`);
};
const wholeNumber = (min: number, max: number): Checker => (value, field, where) => {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) fail(field, where, `a whole number from ${min} to ${max}`, value);
  return value;
};
const text = (allowEmpty: boolean): Checker => (value, field, where) => {
  if (typeof value !== 'string' || (!allowEmpty && value === '')) fail(field, where, allowEmpty ? 'a string' : 'a non-empty string', value);
  return value;
};
const oneOf = (choices: readonly string[]): Checker => (value, field, where) => {
  if (typeof value !== 'string' || !choices.includes(value)) fail(field, where, `one of ${choices.map((c) => `"${c}"`).join(', ')}`, value);
  return value;
};
const serial: Checker = (value, field, where) => {
  const object = value as Partial<SerialConfig> | null;
  if (object && typeof object === 'object' && (object.kind === 'stdio' || object.kind === 'null') && Object.keys(object).length === 1) return { kind: object.kind };
  if (object && typeof object === 'object' && object.kind === 'file' && typeof object.path === 'string' && object.path !== '' && Object.keys(object).length === 2) {
    return { kind: 'file', path: object.path };
  }
  return fail(field, where, '{"kind":"stdio"}, {"kind":"null"} or {"kind":"file","path":"..."}', value);
};
const debugcon: Checker = (value, field, where) => {
  const object = value as Partial<DebugconConfig> | null;
  if (object && typeof object === 'object' && object.kind === 'null' && Object.keys(object).length === 1) return { kind: 'null' };
  if (object && typeof object === 'object' && object.kind === 'file' && typeof object.path === 'string' && object.path !== '' && Object.keys(object).length === 2) {
    return { kind: 'file', path: object.path };
  }
  return fail(field, where, '{"kind":"null"} or {"kind":"file","path":"..."}', value);
};
const isoTime: Checker = (value, field, where) => {
  if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) fail(field, where, 'an ISO-8601 time such as "2026-11-26T08:15:00Z"', value);
  return value;
};
const DEVICE_FIELDS: Record<DeviceConfig['kind'], Record<string, 'string' | 'boolean'>> = {
  rng: { kind: 'string', source: 'string' },
  disk: { kind: 'string', path: 'string', readonly: 'boolean', serial: 'string' },
  console: { kind: 'string', path: 'string' },
};

function checkDevice(value: unknown, field: string, where: string): DeviceConfig {
  const object = value as Record<string, unknown> | null;
  if (!object || typeof object !== 'object' || Array.isArray(object)) return fail(field, where, 'an object such as {"kind":"rng"}', value);
  const kind = object.kind as DeviceConfig['kind'];
  const fields = DEVICE_FIELDS[kind];
  if (!fields) return fail(`${field}.kind`, where, `one of ${Object.keys(DEVICE_FIELDS).map((k) => `"${k}"`).join(', ')}`, object.kind);
  for (const [key, entry] of Object.entries(object)) {
    if (!(key in fields)) throw new VmConfigError(`${field}.${key}`, `${where}: unknown field "${key}" in a ${kind} device; its fields are ${Object.keys(fields).join(', ')}`);
    if (typeof entry !== fields[key]) fail(`${field}.${key}`, where, `a ${fields[key]}`, entry);
    if (typeof entry === 'string' && entry === '') fail(`${field}.${key}`, where, 'a non-empty string', entry);
  }
  if (kind === 'rng') return { kind, source: (object.source as string | undefined) ?? DEFAULT_RNG_SOURCE };
  if (kind === 'console') return object.path === undefined ? { kind } : { kind, path: object.path as string };
  if (typeof object.path !== 'string') return fail(`${field}.path`, where, 'the image file\'s path', object.path);
  const serial = object.serial as string | undefined;
  if (serial !== undefined && (Buffer.byteLength(serial) > MAX_DISK_SERIAL || !/^[\x20-\x7e]*$/.test(serial))) {
    fail(`${field}.serial`, where, `at most ${MAX_DISK_SERIAL} printable ASCII characters`, serial);
  }
  return { kind, path: object.path, readonly: (object.readonly as boolean | undefined) ?? false, ...(serial === undefined ? {} : { serial }) };
}

const deviceList: Checker = (value, field, where) => {
  if (!Array.isArray(value)) fail(field, where, 'a list', value);
  const devices = (value as unknown[]).map((device, i) => checkDevice(device, `${field}[${i}]`, where));
  if (devices.filter((d) => d.kind === 'console').length > 1) {
    throw new VmConfigError(field, `${where}: more than one console device; tsvmm has one virtio-console port`);
  }
  const serials = devices.flatMap((d) => (d.kind === 'disk' && d.serial !== undefined ? [d.serial] : []));
  const repeated = serials.find((serial, i) => serials.indexOf(serial) !== i);
  if (repeated !== undefined) throw new VmConfigError(field, `${where}: two disks have the serial "${repeated}"; give each its own`);
  return devices;
};

const FIELDS: Record<keyof VmConfig, Checker> = {
  // The host's and the MP table's limits are checked when the VM is built, with the numbers that apply.
  cpus: wholeNumber(1, 65536),
  memoryMiB: wholeNumber(1, 1024 * 1024),
  kernel: text(false),
  bios: text(false),
  debugcon,
  initrd: text(false),
  cmdline: text(true),
  cmdlineBase: text(true),
  bootProtocol: oneOf(BOOT_PROTOCOLS),
  irqchip: oneOf(IRQCHIPS),
  serial,
  rtcBase: isoTime,
  handOff: oneOf(HAND_OFF_MODES),
  spinLimit: wholeNumber(1, MAX_SPIN_LIMIT),
  devices: deviceList,
};

/**
 * Checks `raw` (parsed JSON, or an object from code) field by field and
 * fills what it leaves out from DEFAULT_VM_CONFIG. `where` names the source
 * in messages ("config file vm.json"). Unknown fields are refused: a typo
 * must not silently fall back to a default.
 */
export function resolveVmConfig(raw: unknown, where = 'VM config'): VmConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new VmConfigError('(top level)', `${where}: must be a JSON object such as {"cpus": 2}, got ${Array.isArray(raw) ? 'a list' : JSON.stringify(raw)}`);
  }
  const config: Record<string, unknown> = { ...DEFAULT_VM_CONFIG, serial: { ...DEFAULT_VM_CONFIG.serial }, devices: [] };
  for (const [field, value] of Object.entries(raw)) {
    const check = (FIELDS as Record<string, Checker>)[field];
    if (!check) {
      throw new VmConfigError(field, `${where}: unknown field "${field}"; the fields are ${Object.keys(FIELDS).join(', ')}`);
    }
    if (value === undefined) continue;
    config[field] = check(value, field, where);
  }
  if (config.bios !== undefined && (config.kernel !== undefined || config.initrd !== undefined)) {
    const other = config.kernel !== undefined ? 'kernel' : 'initrd';
    throw new VmConfigError('bios', `${where}: "bios" and "${other}" are both set; firmware boots what it finds on the disks, so give one or the other`);
  }
  return config as unknown as VmConfig;
}

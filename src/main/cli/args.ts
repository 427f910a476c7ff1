// Command-line parsing: argv in, a validated MachineOptions out, or a
// UsageError whose message is the one line the user sees (exit code 2).

import { parseArgs } from 'node:util';
import { HAND_OFF_MODES, HandOffMode } from '../../shared/vcpu-protocol';
import { DebugconConfig, DeviceConfig, MAX_SPIN_LIMIT } from '../vmm/vm-config';
import { expandBareRng, parseConsole, parseDisk, parseRng } from './device-options';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';
import type { StatsFormat } from './stats-report';
import { LOG_LEVELS, LogLevel } from '../vmm/log';

export class UsageError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('usage', message, options);
  }
}

export type SerialSink = { kind: 'stdio' } | { kind: 'file'; path: string } | { kind: 'null' };
export type BootProtocol = 'auto' | 'linux' | 'pvh';

export interface CliOptions {
  help: boolean;
  version: boolean;
  kernel?: string;
  initrd?: string;
  /** A firmware image to boot instead of a kernel. */
  bios?: string;
  /** Where port 0x402's bytes go; undefined: no debug console. */
  debugcon?: DebugconConfig;
  cpus: number;
  memMiB: number;
  cmdline?: string;
  /** Replaces the base command line; undefined keeps it. */
  cmdlineBase?: string;
  bootProtocol: BootProtocol;
  splitIrqchip: boolean;
  serial: SerialSink;
  handOff: HandOffMode;
  spinLimit?: number;
  /** RTC start time (ms since the epoch); undefined = the host clock. */
  rtcBase?: number;
  /** --stats: off, the text lines, or one JSON object (--stats=json, or --stats-file alone). */
  stats: 'off' | StatsFormat;
  /** Where the JSON stats go instead of stderr. */
  statsFile?: string;
  /** -v (info), -vv (debug) or --log-level; undefined: no log. */
  logLevel?: LogLevel;
  /** Where the log goes instead of stderr. */
  logFile?: string;
  /** Virtio devices from --disk and --rng, in command-line order (their PCI slot order). */
  devices: DeviceConfig[];
  /** The control API's unix socket: a process concern like the console, so never part of a VmConfig. */
  apiSocket?: string;
  /** A JSON VmConfig file; the options given on the command line override its fields. */
  config?: string;
  /** A snapshot directory to continue instead of booting (cli/restore.ts). */
  restore?: string;
  /** The long names of the options given on the command line (to know what overrides a --config file). */
  given: ReadonlySet<string>;
}

export const DEFAULT_CPUS = 1;
export const DEFAULT_MEM_MIB = 256;

export const USAGE = `usage: tsvmm [options]     (from a checkout: node dist/main.js [options])

Boots an x86_64 guest under KVM. Without --kernel, boots the bundled demo guest.

  --kernel FILE         ELF vmlinux, bzImage, or PVH ELF to boot
  --initrd FILE         initial ramdisk to load for the kernel
  --bios FILE           boot firmware (e.g. /usr/share/seabios/bios.bin) instead of a kernel
  --debugcon D          port 0x402 debug console (SeaBIOS's log): file:PATH or null
  --cmdline STR         appended to the base command line
  --cmdline-base STR    replaces the base "console=ttyS0 noacpi reboot=k panic=-1"
  --cpus N              number of vCPUs (default ${DEFAULT_CPUS})
  --mem SIZE            guest RAM: MiB, or with a K, M or G suffix (default ${DEFAULT_MEM_MIB})
  --boot-protocol P     linux or pvh, for a kernel offering both (default: pvh when present)
  --split-irqchip       LAPICs in KVM; PIC, IOAPIC and PIT in tsvmm
  --serial S            COM1 goes to stdio (default), file:PATH, or null
  --rtc-base TIME       start the guest's RTC at this ISO-8601 UTC time (default: host clock)
  --hand-off MODE       exit hand-off: spin-park (default), park, post-message, comlink, native
  --spin-limit N        spins before a vCPU parks waiting for the device thread
  --stats[=json]        print per-vCPU exit counters and times when the guest ends
                        (json: one JSON object with the exit reason, to stderr)
  --stats-file PATH     write that JSON object to PATH (implies --stats=json)
  -v, -vv               log how the VM is built (-v: info) and, the first time
                        each is hit, every unclaimed port and MMIO address (-vv: debug)
  --log-level L         error, warn, info or debug (default: no log)
  --log-file PATH       write the log to PATH instead of stderr
  --disk path=FILE[,readonly=on][,serial=ID]
                        a virtio-blk disk backed by a raw image (repeatable)
  --rng [src=PATH]      a virtio-rng device reading PATH (default /dev/urandom)
  --console C           a virtio-console (the guest's hvc0): off (default), tty, or file=PATH
  --config FILE         a JSON VmConfig (fields as in the README); options given here override it
  --restore DIR         continue the VM a snapshot in DIR holds (only --serial, --hand-off,
                        --spin-limit, --stats, logging and --api-socket may go with it)
  --api-socket PATH     serve the control API (HTTP/1.1, JSON) on this unix socket;
                        tsvmm remote --help sends it requests
  --version             print the version and exit
  --help                print this help and exit

On a terminal, Ctrl-A then x quits and Ctrl-A then h lists the escape keys.
Exit status: 0 when the guest resets or powers off, 2 for bad arguments,
3 for a triple fault, 4 for an internal KVM error, 5 for any other fatal guest
event, 1 for a tsvmm failure, 130 on SIGINT.`;

/** Years the CMOS RTC shows (BCD year and century registers) and guests read without wrapping. */
const RTC_FIRST_YEAR = 1970;
const RTC_LAST_YEAR = 9999;

function positiveInteger(name: string, text: string | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} takes a whole number, got "${text}"`);
  const value = Number(text);
  if (value < 1) throw new UsageError(`--${name} must be at least 1, got ${text}`);
  if (value > max) throw new UsageError(`--${name} must be at most ${max}, got ${text}`);
  return value;
}

const RTC_BASE_FORMAT = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,3})?)?)?(Z|z|[+-]\d{2}:\d{2})?$/;

/** --rtc-base: a strict ISO-8601 date or date-time (UTC unless a zone is given) whose fields exist as written. */
function parseRtcBase(text: string): number {
  const example = 'such as 2026-11-26T08:15:00';
  const match = RTC_BASE_FORMAT.exec(text);
  if (!match) throw new UsageError(`--rtc-base takes an ISO-8601 time ${example}, got "${text}"`);
  const [year, month, day, hour = 0, minute = 0, second = 0] = match.slice(1, 7).map((field) => Number(field ?? 0));
  const fields = new Date(Date.UTC(2000, 0, 1));
  fields.setUTCFullYear(year, month - 1, day);
  fields.setUTCHours(hour, minute, second);
  if (fields.getUTCFullYear() !== year || fields.getUTCMonth() !== month - 1 || fields.getUTCDate() !== day
    || fields.getUTCHours() !== hour || fields.getUTCMinutes() !== minute || fields.getUTCSeconds() !== second) {
    throw new UsageError(`--rtc-base: "${text}" is not a date and time that exists; give one ${example}`);
  }
  if (year < RTC_FIRST_YEAR || year > RTC_LAST_YEAR) {
    throw new UsageError(`--rtc-base must be in the years ${RTC_FIRST_YEAR} to ${RTC_LAST_YEAR} (what the RTC shows), got "${text}"`);
  }
  const zone = match[7];
  const time = Date.parse(`${text.replace(' ', 'T')}${zone ? '' : 'Z'}`);
  if (Number.isNaN(time)) throw new UsageError(`--rtc-base takes an ISO-8601 time ${example}, got "${text}"`);
  return time;
}

/** --mem's units in MiB: a plain number is MiB; K, M, G and T as QEMU's -m reads them (powers of 1024). */
const MEM_UNIT_MIB: Record<string, number> = { k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 };
/** The most RAM a VmConfig accepts (its memoryMiB limit), 1 TiB. */
const MAX_MEM_MIB = 1024 * 1024;

/** --mem SIZE: whole MiB, so a K size must be a multiple of 1024K. */
function parseMemSize(text: string | undefined): number {
  if (text === undefined) return DEFAULT_MEM_MIB;
  const match = /^(\d+)(?:([kmgt])(?:i?b)?)?$/i.exec(text);
  if (!match) throw new UsageError(`--mem takes a size in MiB or with a K, M or G suffix, such as 512 or 512M or 2G; got "${text}"`);
  const mib = Number(match[1]) * MEM_UNIT_MIB[(match[2] ?? 'm').toLowerCase()];
  if (!Number.isInteger(mib)) throw new UsageError(`--mem ${text} is not a whole number of MiB; give a multiple of 1024K, or use M or G`);
  if (mib < 1) throw new UsageError(`--mem must be at least 1M, got ${text}`);
  if (mib > MAX_MEM_MIB) throw new UsageError(`--mem must be at most 1T (${MAX_MEM_MIB} MiB), got ${text}`);
  return mib;
}

/**
 * A bare --stats (no value: the text lines) becomes --stats=text here, as
 * node:util's parseArgs has no optional values; --stats json stays as given.
 */
function expandBareStats(argv: readonly string[]): string[] {
  return argv.map((arg, i) => (arg === '--stats' && !['text', 'json'].includes(argv[i + 1]) ? '--stats=text' : arg));
}

function parseStats(format: string | undefined, file: string | undefined): 'off' | StatsFormat {
  if (format !== undefined && format !== 'text' && format !== 'json') throw new UsageError(`--stats takes text or json (--stats=json), got "${format}"`);
  if (file !== undefined && format === 'text') throw new UsageError('--stats-file writes the JSON stats; give --stats=json or leave --stats out');
  return file !== undefined ? 'json' : format ?? 'off';
}

function parseDebugcon(text: string | undefined): DebugconConfig | undefined {
  if (text === undefined) return undefined;
  if (text === 'null') return { kind: 'null' };
  if (text.startsWith('file:') && text.length > 5) return { kind: 'file', path: text.slice(5) };
  throw new UsageError(`--debugcon takes file:PATH or null, got "${text}"`);
}

function parseLogLevel(verbose: number, level: string | undefined, file: string | undefined): LogLevel | undefined {
  if (verbose > 0 && level !== undefined) throw new UsageError('give -v or --log-level, not both');
  if (verbose > 2) throw new UsageError('-v takes at most two (-vv, debug)');
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`--log-level takes one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  }
  const chosen = verbose === 2 ? 'debug' : verbose === 1 ? 'info' : level as LogLevel | undefined;
  // A log file without a level would stay empty: it asks for the usual log.
  return chosen ?? (file !== undefined ? 'info' : undefined);
}

function parseSerial(text: string | undefined): SerialSink {
  if (text === undefined || text === 'stdio') return { kind: 'stdio' };
  if (text === 'null') return { kind: 'null' };
  if (text.startsWith('file:') && text.length > 5) return { kind: 'file', path: text.slice(5) };
  throw new UsageError(`--serial takes stdio, null or file:PATH, got "${text}"`);
}

export function parseCli(argv: string[]): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: expandBareStats(expandBareRng(argv)),
      strict: true,
      allowPositionals: false,
      tokens: true,
      options: {
        kernel: { type: 'string' },
        initrd: { type: 'string' },
        bios: { type: 'string' },
        debugcon: { type: 'string' },
        cmdline: { type: 'string' },
        'cmdline-base': { type: 'string' },
        cpus: { type: 'string' },
        mem: { type: 'string' },
        'boot-protocol': { type: 'string' },
        'split-irqchip': { type: 'boolean' },
        serial: { type: 'string' },
        'rtc-base': { type: 'string' },
        'hand-off': { type: 'string' },
        'spin-limit': { type: 'string' },
        stats: { type: 'string' },
        'stats-file': { type: 'string' },
        verbose: { type: 'boolean', short: 'v', multiple: true },
        'log-level': { type: 'string' },
        'log-file': { type: 'string' },
        'api-socket': { type: 'string' },
        config: { type: 'string' },
        restore: { type: 'string' },
        disk: { type: 'string', multiple: true },
        rng: { type: 'string' },
        console: { type: 'string' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    // node:util's messages are already one line; add the way out.
    const text = (error as Error).message.split('\n').map((line) => line.trim()).join(' ').replace(/\.$/, '');
    throw new UsageError(`${text}; see --help`);
  }
  const values = parsed.values;
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name) && token.name !== 'disk' && token.name !== 'verbose') throw new UsageError(`--${token.name} is given more than once; give it once`);
    seen.add(token.name);
    // An empty base line is a choice (the user's --cmdline alone); elsewhere it is a slip.
    if (token.value === '' && token.name !== 'cmdline-base') throw new UsageError(`--${token.name} needs a value, got an empty one`);
  }
  const bootProtocol = values['boot-protocol'] ?? 'auto';
  if (bootProtocol !== 'auto' && bootProtocol !== 'linux' && bootProtocol !== 'pvh') {
    throw new UsageError(`--boot-protocol takes linux or pvh, got "${bootProtocol}"`);
  }
  const handOff = values['hand-off'] ?? 'spin-park';
  if (!(HAND_OFF_MODES as readonly string[]).includes(handOff)) {
    throw new UsageError(`--hand-off takes one of ${HAND_OFF_MODES.join(', ')}, got "${handOff}"`);
  }
  let rtcBase: number | undefined;
  if (values['rtc-base'] !== undefined) {
    rtcBase = parseRtcBase(values['rtc-base']);
  }
  for (const name of ['cmdline', 'cmdline-base'] as const) {
    if (values[name]?.includes('\0')) throw new UsageError(`--${name} must not contain a NUL byte`);
  }
  return {
    help: values.help ?? false,
    version: values.version ?? false,
    kernel: values.kernel,
    initrd: values.initrd,
    bios: values.bios,
    debugcon: parseDebugcon(values.debugcon),
    cmdline: values.cmdline,
    cmdlineBase: values['cmdline-base'],
    cpus: positiveInteger('cpus', values.cpus, DEFAULT_CPUS),
    memMiB: parseMemSize(values.mem),
    bootProtocol,
    splitIrqchip: values['split-irqchip'] ?? false,
    serial: parseSerial(values.serial),
    handOff: handOff as HandOffMode,
    spinLimit: values['spin-limit'] === undefined ? undefined : positiveInteger('spin-limit', values['spin-limit'], 0, MAX_SPIN_LIMIT),
    rtcBase,
    stats: parseStats(values.stats, values['stats-file']),
    statsFile: values['stats-file'],
    logLevel: parseLogLevel(values.verbose?.length ?? 0, values['log-level'], values['log-file']),
    logFile: values['log-file'],
    config: values.config,
    restore: values.restore,
    apiSocket: values['api-socket'],
    devices: (parsed.tokens ?? []).flatMap((token) => {
      if (token.kind !== 'option') return [];
      if (token.name === 'disk') return [parseDisk(token.value ?? '')];
      if (token.name === 'rng') return [parseRng(token.value ?? true)];
      if (token.name === 'console') return [parseConsole(token.value ?? '')].filter((device) => device !== undefined);
      return [];
    }),
    given: seen,
  };
}

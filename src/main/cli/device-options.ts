// Cloud Hypervisor's device options: --disk path=FILE[,readonly=on][,serial=ID]
// and --rng [src=PATH], each a comma-separated list of key=value pairs.

import { DEFAULT_RNG_SOURCE, DeviceConfig } from '../vmm/vm-config';
import { TsvmmError } from '../../shared/errors';

class DeviceOptionError extends TsvmmError {
  constructor(message: string) {
    super('usage', message);
  }
}

function keyValues(option: string, text: string, keys: readonly string[]): Map<string, string> {
  const pairs = new Map<string, string>();
  for (const part of text.split(',')) {
    const at = part.indexOf('=');
    const key = at < 0 ? part : part.slice(0, at);
    const value = at < 0 ? '' : part.slice(at + 1);
    if (!keys.includes(key)) throw new DeviceOptionError(`--${option}: unknown key "${key}"; the keys are ${keys.join(', ')}`);
    if (value === '') throw new DeviceOptionError(`--${option}: ${key} needs a value (${key}=...)`);
    if (pairs.has(key)) throw new DeviceOptionError(`--${option}: ${key} is given twice`);
    pairs.set(key, value);
  }
  return pairs;
}

function onOff(option: string, key: string, value: string | undefined): boolean {
  if (value === undefined || value === 'off') return false;
  if (value === 'on') return true;
  throw new DeviceOptionError(`--${option}: ${key} takes on or off, got "${value}"`);
}

export function parseDisk(text: string): DeviceConfig {
  const pairs = keyValues('disk', text, ['path', 'readonly', 'serial']);
  const path = pairs.get('path');
  if (path === undefined) throw new DeviceOptionError('--disk needs path=FILE (a raw disk image)');
  const serial = pairs.get('serial');
  return { kind: 'disk', path, readonly: onOff('disk', 'readonly', pairs.get('readonly')), ...(serial === undefined ? {} : { serial }) };
}

/** --console off|tty|file=PATH; off adds no device. */
export function parseConsole(text: string): DeviceConfig | undefined {
  if (text === 'off') return undefined;
  if (text === 'tty') return { kind: 'console' };
  if (text.startsWith('file=') && text.length > 'file='.length) return { kind: 'console', path: text.slice('file='.length) };
  throw new DeviceOptionError(`--console takes off, tty or file=PATH, got "${text}"`);
}

export function parseRng(text: string | true): DeviceConfig {
  if (text === true) return { kind: 'rng', source: DEFAULT_RNG_SOURCE };
  return { kind: 'rng', source: keyValues('rng', text, ['src']).get('src') ?? DEFAULT_RNG_SOURCE };
}

/**
 * `--rng` may stand alone (Cloud Hypervisor's default source). node:util's
 * parseArgs has no optional values, so a bare --rng becomes --rng=src=... here.
 */
export function expandBareRng(argv: readonly string[]): string[] {
  return argv.map((arg, i) => (arg === '--rng' && (i + 1 >= argv.length || argv[i + 1].startsWith('--')) ? `--rng=src=${DEFAULT_RNG_SOURCE}` : arg));
}

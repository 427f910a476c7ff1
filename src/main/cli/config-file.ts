// --config FILE: a JSON VmConfig, with the options given on the command line
// laid over it. Every problem is one line naming the file and the field.

import * as fs from 'node:fs';
import { UsageError, CliOptions } from './args';
import { VmConfig, resolveVmConfig } from '../vmm/vm-config';

const MAX_CONFIG_BYTES = 1024 * 1024;

/** The file's JSON object, unchecked (resolveVmConfig checks it). */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new UsageError(`config file ${file} is not a regular file; pass a JSON file`);
    if (stat.size > MAX_CONFIG_BYTES) throw new UsageError(`config file ${file} is ${stat.size} bytes; a VM config is at most ${MAX_CONFIG_BYTES}`);
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`cannot read config file ${file}: ${code}${code === 'ENOENT' ? ' (no such file)' : ''}`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`config file ${file} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`config file ${file} must hold a JSON object such as {"cpus": 2}`);
  }
  return parsed as Record<string, unknown>;
}

/** The command-line options as VmConfig fields, only those the user gave (or all, without a config file). */
function fromOptions(options: CliOptions, onlyGiven: boolean): Partial<VmConfig> {
  const given = (name: string) => !onlyGiven || options.given.has(name);
  const fields: Partial<VmConfig> = {};
  if (given('cpus')) fields.cpus = options.cpus;
  if (given('mem')) fields.memoryMiB = options.memMiB;
  if (given('kernel') && options.kernel !== undefined) fields.kernel = options.kernel;
  if (given('initrd') && options.initrd !== undefined) fields.initrd = options.initrd;
  if (given('bios') && options.bios !== undefined) fields.bios = options.bios;
  if (given('debugcon') && options.debugcon !== undefined) fields.debugcon = options.debugcon;
  if (given('cmdline') && options.cmdline !== undefined) fields.cmdline = options.cmdline;
  if (given('cmdline-base') && options.cmdlineBase !== undefined) fields.cmdlineBase = options.cmdlineBase;
  if (given('boot-protocol')) fields.bootProtocol = options.bootProtocol;
  if (given('split-irqchip')) fields.irqchip = options.splitIrqchip ? 'split' : 'kernel';
  if (given('serial')) fields.serial = options.serial;
  if (given('rtc-base') && options.rtcBase !== undefined) fields.rtcBase = new Date(options.rtcBase).toISOString();
  if (given('hand-off')) fields.handOff = options.handOff;
  if (given('spin-limit') && options.spinLimit !== undefined) fields.spinLimit = options.spinLimit;
  // Devices given on the command line replace the file's list.
  if (given('disk') || given('rng') || given('console')) fields.devices = options.devices;
  return fields;
}

/** The VmConfig the command line asks for: the --config file's fields, then the options given. */
export function vmConfigFromCli(options: CliOptions): VmConfig {
  if (options.config === undefined) return resolveVmConfig(fromOptions(options, false), 'command line');
  const file = readConfigFile(options.config);
  return resolveVmConfig({ ...file, ...fromOptions(options, true) }, `config file ${options.config}`);
}

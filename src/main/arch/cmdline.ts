// The kernel command line: tsvmm's fixed options plus the user's, as the
// NUL-terminated bytes that go at CMDLINE_START, and how many bytes fit there.

import { hex } from './guest-memory';
import { CMDLINE_START, EBDA_START } from '../layout';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/**
 * Always passed: the console is the first serial port; there are no ACPI
 * tables; reboot goes through the keyboard controller (the exit tsvmm
 * watches); a panic reboots at once instead of hanging.
 */
export const BASE_COMMAND_LINE = 'console=ttyS0 noacpi reboot=k panic=-1';

/** The command line ends with one NUL byte, counted in every size here. */
const NUL_BYTES = 1;
/** Lowest byte accepted: space. Control characters would be invisible in logs and split arguments oddly. */
const FIRST_PRINTABLE = 0x20;
/**
 * Highest byte accepted: '~'. Bytes above ASCII are refused because Linux's
 * ctype table counts 0xa0 as whitespace, so UTF-8 text such as "à" (c3 a0)
 * would be split into separate arguments.
 */
const LAST_PRINTABLE = 0x7e;

export class CmdlineError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('usage', message, options);
  }
}

/**
 * The base line (BASE_COMMAND_LINE unless the user replaced it), then a space
 * and the user's arguments (trimmed) if any, as bytes ending in NUL.
 * `maxBytes` counts the NUL (commandLineCapacity()).
 */
export function buildCommandLine(userArgs: string | undefined, maxBytes: number, base = BASE_COMMAND_LINE): Uint8Array {
  const text = [base.trim(), userArgs?.trim() ?? ''].filter((part) => part !== '').join(' ');
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0) {
      throw new CmdlineError(`the kernel command line contains a NUL byte at character ${i}, which would end it early; remove it`);
    }
    if (code < FIRST_PRINTABLE || code > LAST_PRINTABLE) {
      throw new CmdlineError(
        `the kernel command line contains character U+${code.toString(16).padStart(4, '0')} at ${i}; only printable ASCII is passed to the kernel, so write it differently`,
      );
    }
  }
  const length = text.length + NUL_BYTES;
  if (length > maxBytes) {
    throw new CmdlineError(
      `the kernel command line is ${length} bytes with its NUL but at most ${maxBytes} fit; shorten the arguments by ${length - maxBytes} bytes`,
    );
  }
  const bytes = new Uint8Array(length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/**
 * Bytes (with the NUL) available for the command line at CMDLINE_START: up to
 * the kernel and never into the EBDA, where the MP table lives; and no more
 * than the kernel's own cmdline_size (a bzImage header field that excludes the
 * NUL) when it is known.
 */
export function commandLineCapacity(kernelStart: number, kernelCmdlineSize?: number): number {
  const end = Math.min(kernelStart, EBDA_START);
  if (end <= CMDLINE_START) {
    throw new CmdlineError(`the kernel starts at ${hex(kernelStart)}, leaving no room for the command line at ${hex(CMDLINE_START)}; load the kernel higher`);
  }
  const room = end - CMDLINE_START;
  return kernelCmdlineSize === undefined ? room : Math.min(room, kernelCmdlineSize + NUL_BYTES);
}

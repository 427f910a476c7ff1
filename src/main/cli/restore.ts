// --restore DIR: the snapshot to continue, checked before anything else is
// opened, with the options that belong to this process (where COM1 goes,
// the exit hand-off) applied to its config. Options that shape the VM are
// refused: the snapshot fixes them.

import type { LoadedSnapshot } from '../vmm/snapshot-file';
import { CliOptions, UsageError } from './args';

/** Options that would change the VM a snapshot holds. */
const VM_SHAPING_OPTIONS = [
  'kernel', 'initrd', 'bios', 'debugcon', 'cmdline', 'cmdline-base', 'cpus', 'mem', 'boot-protocol', 'split-irqchip', 'rtc-base',
  'disk', 'rng', 'console', 'config',
] as const;

/** The snapshot `options.restore` names, read and checked, ready for Machine.restore. */
export function snapshotToRestore(options: CliOptions & { restore: string }): LoadedSnapshot {
  const clash = VM_SHAPING_OPTIONS.find((name) => options.given.has(name));
  if (clash !== undefined) {
    throw new UsageError(`--restore and --${clash} cannot be combined: the snapshot fixes the VM's kernel, memory, CPUs and devices; drop --${clash}`);
  }
  // Loaded here, not at start-up: a VM that boots never reads a snapshot (snapshot-file.ts brings node:crypto).
  const { readSnapshot } = require('../vmm/snapshot-file') as typeof import('../vmm/snapshot-file');
  const saved = readSnapshot(options.restore);
  const config = { ...saved.config, serial: options.serial };
  if (options.given.has('hand-off')) config.handOff = options.handOff;
  if (options.spinLimit !== undefined) config.spinLimit = options.spinLimit;
  return { ...saved, config };
}

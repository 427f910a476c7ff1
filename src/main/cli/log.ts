// The log of -v / --log-level: one line per message, "tsvmm: LEVEL: ...",
// on stderr or in --log-file. Written synchronously: lines come while the VM
// is built and, at debug level, once per unclaimed address, so they are few,
// and none may be lost when tsvmm exits.

import * as fs from 'node:fs';
import { UsageError } from './args';
import { LogLevel, VmLog, logs } from '../vmm/log';

export interface CliLog extends VmLog {
  close(): void;
}

/** Opens the log (the file first, so a bad --log-file is one line before anything runs). */
export function openLog(level: LogLevel, file: string | undefined): CliLog {
  let fd = 2;
  if (file !== undefined) {
    try {
      fd = fs.openSync(file, 'w', 0o666);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      throw new UsageError(`cannot open --log-file ${file}: ${code}; give a path to a writable file`, { cause: error });
    }
  }
  let failed = false;
  const log: CliLog = {
    level,
    write(messageLevel, message) {
      if (failed || !logs(log, messageLevel)) return;
      try {
        fs.writeSync(fd, `tsvmm: ${messageLevel}: ${message}\n`);
      } catch {
        failed = true; // a log that cannot be written must not stop the VM
      }
    },
    close() {
      if (fd !== 2) fs.closeSync(fd);
      fd = 2;
      failed = true;
    },
  };
  return log;
}

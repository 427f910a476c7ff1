// Reading the files a user names for the guest (--kernel, --initrd): only
// regular files, and no larger than guest RAM, so /dev/zero, /dev/urandom or a
// FIFO nobody writes are refused at once instead of being read forever.

import * as fs from 'node:fs';
import { UsageError } from './args';

const MIB = 1024 * 1024;
/** Bytes per readSync call. */
const READ_CHUNK = 16 * MIB;

function fileKind(stats: fs.Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

function sizeText(bytes: number): string {
  return bytes >= MIB ? `${(bytes / MIB).toFixed(1)} MiB` : `${bytes} bytes`;
}

/**
 * Reads `file` whole. It is opened non-blocking (so a FIFO cannot stall the
 * open), must be a regular file (checked with fstat on the open fd, so what
 * is read is what was checked), and must be at most `limitBytes` (the guest
 * RAM it has to fit in). Every refusal is a UsageError naming the file, the
 * problem and the fix; the fd is always closed.
 */
export function readInputFile(what: string, file: string, limitBytes: number, limitText = `the ${sizeText(limitBytes)} of guest RAM it must fit in; give the guest more memory (--mem) or pass a smaller file`): Uint8Array {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    const hint = code === 'ENOENT' ? ' (no such file)' : code === 'EACCES' ? ' (permission denied)' : code === 'EMFILE' || code === 'ENFILE' ? ' (too many open files; raise ulimit -n)' : '';
    throw new UsageError(`cannot read ${what} ${file}: ${code}${hint}`);
  }
  try {
    const stats = fs.fstatSync(fd);
    if (!stats.isFile()) {
      throw new UsageError(`cannot read ${what} ${file}: it is ${fileKind(stats)}, not a regular file; pass the ${what} image file`);
    }
    if (stats.size > limitBytes) {
      throw new UsageError(`the ${what} ${file} is ${sizeText(stats.size)}, more than ${limitText}`);
    }
    // Read what fstat promised, no more: a file that grows meanwhile cannot make us read forever.
    const bytes = new Uint8Array(stats.size);
    let offset = 0;
    while (offset < bytes.length) {
      const count = fs.readSync(fd, bytes, offset, Math.min(READ_CHUNK, bytes.length - offset), offset);
      if (count === 0) break; // the file shrank meanwhile
      offset += count;
    }
    return offset === bytes.length ? bytes : bytes.subarray(0, offset);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`cannot read ${what} ${file}: ${code}`, { cause: error });
  } finally {
    fs.closeSync(fd);
  }
}

// The virtio devices a VmConfig asks for, built with their host back-ends:
// files opened and checked here, so a bad path is one usage line before the
// VM exists. Each device owns what it opened until dispose().

import * as fs from 'node:fs';
import { VirtioBlk } from '../../devices/virtio/blk';
import { VirtioConsole } from '../../devices/virtio/console';
import { VirtioRng } from '../../devices/virtio/rng';
import type { FileBlockStore as FileBlockStoreClass, RamLocator } from '../io/block-store';
import type { VirtioBackend } from '../../devices/virtio/pci-transport';
import { TsvmmError } from '../../shared/errors';
import type { DeviceConfig } from './vm-config';

export interface HostDevice {
  /** The board id: rng0, disk0, ... */
  id: string;
  backend: VirtioBackend;
  /** Lets requests in flight finish and closes what the device opened. */
  dispose(): Promise<void> | void;
}

function openEntropy(source: string): number {
  let fd: number;
  try {
    fd = fs.openSync(source, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new TsvmmError('usage', `--rng src=${source}: cannot open it (${code}); give a readable file or device such as /dev/urandom`, { cause: error });
  }
  const stat = fs.fstatSync(fd);
  if (!stat.isFile() && !stat.isCharacterDevice()) {
    fs.closeSync(fd);
    throw new TsvmmError('usage', `--rng src=${source} is neither a regular file nor a character device; give one such as /dev/urandom`);
  }
  return fd;
}

function rngDevice(id: string, source: string): HostDevice {
  const fd = openEntropy(source);
  const rng = new VirtioRng((into) => {
    let done = 0;
    while (done < into.length) {
      let count = 0;
      try {
        count = fs.readSync(fd, into, done, into.length - done, null);
      } catch {
        count = 0; // EAGAIN from a source with nothing now: give what there is
      }
      if (count === 0) break;
      done += count;
    }
    into.fill(0, done);
  });
  return { id, backend: rng, dispose: () => fs.closeSync(fd) };
}

function consoleDevice(id: string, path: string | undefined, output: ((bytes: Uint8Array) => void) | undefined): HostDevice {
  if (path === undefined) {
    return { id, backend: new VirtioConsole((bytes) => output?.(bytes)), dispose: () => {} };
  }
  let fd: number;
  try {
    fd = fs.openSync(path, 'w');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new TsvmmError('usage', `--console file=${path}: cannot open it for writing (${code}); give a writable path`, { cause: error });
  }
  // A regular file (checked by opening it for writing): its writes do not block for long.
  const console = new VirtioConsole((bytes) => { fs.writeSync(fd, bytes); });
  return { id, backend: console, dispose: () => fs.closeSync(fd) };
}

function diskDevice(id: string, config: Extract<DeviceConfig, { kind: 'disk' }>, locate: RamLocator): HostDevice {
  // Loaded only for a VM with a disk: piscina alone costs ~18 ms of start-up here.
  const { FileBlockStore } = require('../io/block-store') as { FileBlockStore: typeof FileBlockStoreClass };
  const store = FileBlockStore.open(config.path, config.readonly, locate);
  return { id, backend: new VirtioBlk({ store, serial: config.serial }), dispose: () => store.close() };
}

/** Builds every device; closes what it opened when one of them fails. */
export function createHostDevices(
  configs: readonly DeviceConfig[],
  locate: RamLocator,
  consoleOutput?: (bytes: Uint8Array) => void,
): HostDevice[] {
  const devices: HostDevice[] = [];
  const ids = hostDeviceIds(configs);
  try {
    for (const [i, config] of configs.entries()) {
      const id = ids[i];
      if (config.kind === 'rng') devices.push(rngDevice(id, config.source));
      else if (config.kind === 'console') devices.push(consoleDevice(id, config.path, consoleOutput));
      else devices.push(diskDevice(id, config, locate));
    }
  } catch (error) {
    for (const device of devices) device.dispose();
    throw error;
  }
  return devices;
}

/** The board ids the devices will get, in order (for planning before they exist). */
export function hostDeviceIds(configs: readonly DeviceConfig[]): string[] {
  const counts = new Map<string, number>();
  return configs.map((config) => {
    const index = counts.get(config.kind) ?? 0;
    counts.set(config.kind, index + 1);
    return `${config.kind}${index}`;
  });
}

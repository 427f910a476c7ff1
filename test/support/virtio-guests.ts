// What the virtio guests (guests/virtio-*) print, checked the same way under
// QEMU (the reference) and under tsvmm: lines naming a slot, a BAR address or
// an INTx line differ between VMMs and are matched by pattern, the rest exactly.

import * as assert from 'uvu/assert';

export const SERIAL = 'tsvmm-test-1';

export interface Preamble {
  bars: string[];
  rest: string[];
}

/** Checks the lines every virtio guest starts with ("found at 00:SS.F", then one per BAR) and returns them apart from the rest. */
export function preamble(name: string, lines: string[]): Preamble {
  assert.match(lines[0] ?? '', new RegExp(`^${name}: found at 00:[0-9a-f]{2}\\.[0-7]$`), JSON.stringify(lines));
  const bar = new RegExp(`^${name}: bar[0-5] 0x[0-9a-f]+ size 0x[0-9a-f]+ (32|64)-bit( assigned)?( mapped above 4 GiB)?$`);
  let i = 1;
  while (i < lines.length && bar.test(lines[i])) i++;
  assert.ok(i > 1, `no BAR lines: ${JSON.stringify(lines)}`);
  return { bars: lines.slice(1, i), rest: lines.slice(i) };
}

export const blkDrive = (image: string, device = ''): string[] => [
  '-drive', `file=${image},if=none,id=d0,format=raw`,
  '-device', `virtio-blk-pci,drive=d0,disable-legacy=on,serial=${SERIAL}${device}`,
];

export const BLK_POLL = [
  'virtio-blk: features version_1 event_idx indirect_desc blk_size flush',
  'virtio-blk: capacity 2048 sectors, blk_size 512',
  'virtio-blk: poll read ok',
  'virtio-blk: poll write ok',
  'virtio-blk: poll flush ok',
  'virtio-blk: poll read back ok',
  `virtio-blk: serial ${SERIAL}`,
  'virtio-blk: poll indirect read ok',
  'virtio-blk: poll 8 in flight ok',
];
export const BLK_MSIX = [
  'virtio-blk: msix table size 2',
  'virtio-blk: msix write ok',
  'virtio-blk: msix read ok',
  'virtio-blk: msix 2 interrupts',
  'virtio-blk: msix used ring ok',
];

/** Checks virtio-blk's lines after the preamble; `msix` false for a device without MSI-X. */
export function checkBlkLines(rest: string[], msix: boolean, intxLine = /^virtio-blk: intx line 1[01] pin 1 via pic$/): void {
  const all = JSON.stringify(rest);
  assert.match(rest[0] ?? '', /^virtio-blk: offered 0x[0-9a-f]+ negotiated 0x[0-9a-f]+$/, all);
  assert.equal(rest.slice(1, 1 + BLK_POLL.length), BLK_POLL, all);
  let i = 1 + BLK_POLL.length;
  // QEMU signals the first used buffer after a reset even when used_event says not to
  // (virtio_should_notify: !signalled_used_valid), so ISR may read 1 here
  assert.match(rest[i++] ?? '', /^virtio-blk: poll isr 0x0[01]$/, all);
  const msixLines = msix ? BLK_MSIX : ['virtio-blk: msix not available'];
  assert.equal(rest.slice(i, i + msixLines.length), msixLines, all);
  i += msixLines.length;
  // The line differs between VMMs: SeaBIOS routes PCI INTx of -M pc to IRQ 10 or 11 (the PIIX3 PIRQ links)
  assert.match(rest[i++] ?? '', intxLine, all);
  assert.equal(rest.slice(i), ['virtio-blk: intx ok', 'virtio-blk: done'], all);
}

export const HOSTILE_CASES = ['out-of-ram-address', 'descriptor-loop', 'chain-too-long', 'length-overflow', 'writable-header', 'indirect-bad-length'];

/** Each malformed chain got an error status or NEEDS_RESET, and the device worked again after a reset. */
export function checkHostileLines(rest: string[]): void {
  const all = JSON.stringify(rest);
  assert.is(rest[0], 'virtio-hostile: baseline read ok', all);
  assert.is(rest.length, 2 + 2 * HOSTILE_CASES.length, all);
  HOSTILE_CASES.forEach((name, k) => {
    assert.match(rest[1 + 2 * k], new RegExp(`^virtio-hostile: ${name}: (needs reset|status 1 \\(ioerr\\)|status 2 \\(unsupp\\))$`), all);
    assert.is(rest[2 + 2 * k], `virtio-hostile: ${name}: works after reset`, all);
  });
  assert.is(rest[rest.length - 1], 'virtio-hostile: done', all);
}

/** virtio-rng's lines after the preamble. */
export function rngLines(msix: boolean): string[] {
  return [
    'virtio-rng: poll read 64 bytes',
    'virtio-rng: poll read 64 bytes',
    'virtio-rng: reads differ and are not zero',
    ...(msix ? ['virtio-rng: msix read 64 bytes', 'virtio-rng: msix 1 interrupts'] : ['virtio-rng: msix not available']),
    'virtio-rng: done',
  ];
}

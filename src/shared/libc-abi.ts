// Kernel and libc constants tsvmm passes through the addon that are not
// KVM's: file locks and fallocate modes. Checked against the C headers by
// test/unit/shared/libc-abi.test.ts.

/** flock(2) operations. */
export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;

/** fallocate(2) modes (<linux/falloc.h>). */
export const FALLOC_FL = { KEEP_SIZE: 0x01, PUNCH_HOLE: 0x02, ZERO_RANGE: 0x10 } as const;

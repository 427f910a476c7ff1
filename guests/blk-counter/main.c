/*
 * blk-counter: virtio-blk I/O for ever, for the snapshot tests: step n
 * writes the guest pattern of "sector" 1000 + n (virtio-blk.h) to disk
 * sector 24 + n % 64, reads it back, checks it, reads image sector n % 24
 * and checks that too, then prints
 *
 *   blk N ok
 *
 * Requests are polled (interrupts suppressed), so a snapshot taken while one
 * is posted, in flight or completed but not yet seen must keep every ring
 * index exact: the restored guest goes on with the next step, or says
 * "blk N FAIL ..." and stops.
 */
#include "guest.h"
#include "virtio-blk.h"

#define NAME "blk-counter"
#define FIRST_SCRATCH_SECTOR 24
#define SCRATCH_SECTORS 64
#define IMAGE_SECTORS 24

static struct blk blk;
static uint8_t out[SECTOR_SIZE] __attribute__((aligned(512)));
static uint8_t in[SECTOR_SIZE] __attribute__((aligned(512)));

static int step(uint32_t n)
{
	uint64_t sector = FIRST_SCRATCH_SECTOR + n % SCRATCH_SECTORS;
	pattern_guest_sector(out, 1000 + n);
	if (blk_request(&blk, NAME ": write", VIRTIO_BLK_T_OUT, sector, out, SECTOR_SIZE, 1))
		return -1;
	memset(in, 0, sizeof(in));
	if (blk_request(&blk, NAME ": read back", VIRTIO_BLK_T_IN, sector, in, SECTOR_SIZE, SECTOR_SIZE + 1))
		return -1;
	if (pattern_check(in, 1000 + n, 1, 1)) {
		printf("blk %u FAIL read back of sector %lu\n", n, sector);
		return -1;
	}
	if (blk_request(&blk, NAME ": read", VIRTIO_BLK_T_IN, n % IMAGE_SECTORS, in, SECTOR_SIZE, SECTOR_SIZE + 1))
		return -1;
	if (pattern_check(in, n % IMAGE_SECTORS, 1, 0)) {
		printf("blk %u FAIL image sector %u\n", n, n % IMAGE_SECTORS);
		return -1;
	}
	printf("blk %u ok\n", n);
	return 0;
}

void guest_main(void)
{
	if (virtio_pci_open(&blk.vp, NAME, VIRTIO_BLK_PCI_ID))
		return;
	if (blk_start(&blk, VIRTIO_RING_F_EVENT_IDX, VIRTIO_MSI_NO_VECTOR, VIRTIO_MSI_NO_VECTOR))
		return;
	if (blk.capacity < FIRST_SCRATCH_SECTOR + SCRATCH_SECTORS) {
		printf(NAME ": FAIL capacity %lu below the %u sectors this guest uses\n", blk.capacity, FIRST_SCRATCH_SECTOR + SCRATCH_SECTORS);
		return;
	}
	virtq_want_interrupt(&blk.vq, 0);
	for (uint32_t n = 0;; n++)
		if (step(n))
			return;
}

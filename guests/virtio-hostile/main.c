/*
 * virtio-hostile: malformed requests against a modern virtio-blk device
 * (1af4:1042). Each case starts from a reset (features VERSION_1, plus
 * INDIRECT_DESC when offered, for the last case), posts one bad chain,
 * notifies, and waits (bounded) for one of the two answers a device may
 * give: complete the request with a non-zero status byte (IOERR/UNSUPP), or
 * set DEVICE_NEEDS_RESET (device_status bit 0x40, virtio 1.2 §2.1.1). It
 * prints which, resets the device and proves it works with one good read
 * of sector 0 (the image pattern, virtio-blk.h).
 *
 * Cases (the queue has N = 32 entries):
 *   out-of-ram-address  an IN of 16 sectors whose data descriptor is at 0xff00000000
 *   descriptor-loop     header -> data -> status -> data ... (next points back)
 *   chain-too-long      N descriptors all with NEXT, the last naming index N
 *   length-overflow     data lengths 0xfffffe00 + 0x400: the sum wraps 32 bits
 *   writable-header     the request header marked device-writable
 *   indirect-bad-length an indirect table whose length is not a multiple of 16
 *                       (only when INDIRECT_DESC is offered)
 *
 * Output, one pair per case:
 *   virtio-hostile: found at 00:SS.F
 *   virtio-hostile: barN ...                            (one per BAR used)
 *   virtio-hostile: baseline read ok
 *   virtio-hostile: <case>: needs reset | status 1 (ioerr) | status 2 (unsupp)
 *   virtio-hostile: <case>: works after reset
 *   virtio-hostile: done
 * A device that accepts a case prints "<case>: status 0 (accepted)", one
 * that never answers "<case>: no answer"; either is a failure, after which
 * the guest still resets the device and carries on.
 */
#include "guest.h"
#include "virtio-blk.h"

#define NAME "virtio-hostile"
#define OUTSIDE_RAM 0xff00000000ull
/*
 * Two pages: QEMU bounces one page of DMA to a non-RAM address through a
 * buffer and drops it (completing an IN of <= 4 KiB there with status 0, as
 * a posted write to nowhere would on hardware); past one page it fails.
 */
#define OUTSIDE_RAM_BYTES (16 * SECTOR_SIZE)
#define ANSWER_SPINS 200000	/* bound on the wait for the device's verdict */
#define STATUS_EVERY 16		/* read device_status (an exit) every this many spins */
#define CASES 6

static struct blk blk;
static uint8_t buf[32 * SECTOR_SIZE] __attribute__((aligned(4096)));
static volatile struct virtq_desc table[3] __attribute__((aligned(16)));

static int start(void)
{
	return blk_start(&blk, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_MSI_NO_VECTOR, VIRTIO_MSI_NO_VECTOR);
}

static int good_read(const char *who)
{
	memset(buf, 0, SECTOR_SIZE);
	if (blk_request(&blk, who, VIRTIO_BLK_T_IN, 0, buf, SECTOR_SIZE, SECTOR_SIZE + 1))
		return -1;
	if (pattern_check(buf, 0, 1, 0)) {
		printf("%s: sector 0 differs from the image pattern\n", who);
		return -1;
	}
	return 0;
}

/* Builds the bad chain of case `c` at descriptor 0; returns 0, or -1 when the case does not apply. */
static int build(unsigned c)
{
	struct virtq *vq = &blk.vq;
	struct virtio_blk_req_hdr *h = blk_header(0);
	volatile uint8_t *st = blk_status(0);
	h->type = VIRTIO_BLK_T_IN;
	h->reserved = 0;
	h->sector = 0;
	*st = 0xff;
	switch (c) {
	case 0:
		virtq_set_desc(vq, 0, h, sizeof(*h), VIRTQ_DESC_F_NEXT, 1);
		virtq_set_desc(vq, 1, (void *)(uintptr_t)OUTSIDE_RAM, OUTSIDE_RAM_BYTES, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
		virtq_set_desc(vq, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
		return 0;
	case 1:
		virtq_set_desc(vq, 0, h, sizeof(*h), VIRTQ_DESC_F_NEXT, 1);
		virtq_set_desc(vq, 1, buf, SECTOR_SIZE, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
		virtq_set_desc(vq, 2, st, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
		return 0;
	case 2: {
		uint16_t n = vq->size;
		virtq_set_desc(vq, 0, h, sizeof(*h), VIRTQ_DESC_F_NEXT, 1);
		for (uint16_t i = 1; i + 1 < n; i++)
			virtq_set_desc(vq, i, buf + (i - 1) * SECTOR_SIZE, SECTOR_SIZE, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
		virtq_set_desc(vq, (uint16_t)(n - 1), st, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, n);
		return 0;
	}
	case 3:
		virtq_set_desc(vq, 0, h, sizeof(*h), VIRTQ_DESC_F_NEXT, 1);
		virtq_set_desc(vq, 1, buf, 0xfffffe00u, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
		virtq_set_desc(vq, 2, buf, 0x400, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
		virtq_set_desc(vq, 3, st, 1, VIRTQ_DESC_F_WRITE, 0);
		return 0;
	case 4:
		virtq_set_desc(vq, 0, h, sizeof(*h), VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
		virtq_set_desc(vq, 1, buf, SECTOR_SIZE, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
		virtq_set_desc(vq, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
		return 0;
	case 5:
		if (!(blk.vp.features & VIRTIO_RING_F_INDIRECT_DESC))
			return -1;
		table[0] = (struct virtq_desc){ (uintptr_t)h, sizeof(*h), VIRTQ_DESC_F_NEXT, 1 };
		table[1] = (struct virtq_desc){ (uintptr_t)buf, SECTOR_SIZE, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2 };
		table[2] = (struct virtq_desc){ (uintptr_t)st, 1, VIRTQ_DESC_F_WRITE, 0 };
		virtq_set_desc(vq, 0, table, 3 * sizeof(struct virtq_desc) - 4, VIRTQ_DESC_F_INDIRECT, 0);
		return 0;
	}
	return -1;
}

static const char *const names[CASES] = {
	"out-of-ram-address", "descriptor-loop", "chain-too-long", "length-overflow", "writable-header", "indirect-bad-length",
};

void guest_main(void)
{
	if (virtio_pci_open(&blk.vp, NAME, VIRTIO_BLK_PCI_ID) || start())
		return;
	if (good_read(NAME ": FAIL baseline read"))
		return;
	printf(NAME ": baseline read ok\n");
	int failed = 0;
	for (unsigned c = 0; c < CASES; c++) {
		if (build(c))
			continue;
		virtq_post(&blk.vq, 0);
		virtq_kick(&blk.vq);
		const char *verdict = "no answer";
		uint8_t status = 0;
		for (uint32_t i = 0; i < ANSWER_SPINS; i++) {
			if (virtq_used_idx(&blk.vq) != blk.vq.last_used) {
				status = *blk_status(0);
				verdict = status == VIRTIO_BLK_S_IOERR ? "status 1 (ioerr)" : status == VIRTIO_BLK_S_UNSUPP ? "status 2 (unsupp)" : "";
				break;
			}
			if (i % STATUS_EVERY == 0 && (virtio_status(&blk.vp) & VIRTIO_STATUS_NEEDS_RESET)) {
				verdict = "needs reset";
				break;
			}
			cpu_relax();
		}
		if (verdict[0])
			printf(NAME ": %s: %s\n", names[c], verdict);
		else
			printf(NAME ": %s: status %u (accepted)\n", names[c], status);
		if (!verdict[0] || (verdict[0] == 'n' && verdict[1] == 'o'))
			failed = 1;
		if (virtio_reset(&blk.vp) || start() || good_read(NAME ": FAIL read after reset")) {
			printf(NAME ": %s: FAIL device broken after reset\n", names[c]);
			return;
		}
		printf(NAME ": %s: works after reset\n", names[c]);
	}
	virtio_reset(&blk.vp);
	if (!failed)
		printf(NAME ": done\n");
}

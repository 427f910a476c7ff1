/* virtio-blk requests and the disk patterns (see virtio-blk.h). */
#include "virtio-blk.h"

static struct virtio_blk_req_hdr headers[BLK_SLOTS] __attribute__((aligned(16)));
static volatile uint8_t statuses[BLK_SLOTS] __attribute__((aligned(16)));

struct virtio_blk_req_hdr *blk_header(unsigned slot) { return &headers[slot]; }
volatile uint8_t *blk_status(unsigned slot) { return &statuses[slot]; }

int blk_start(struct blk *b, uint64_t wanted, uint16_t config_vector, uint16_t queue_vector)
{
	static struct virtq_mem mem;
	if (virtio_negotiate(&b->vp, wanted))
		return -1;
	if (virtio_set_config_vector(&b->vp, config_vector) != config_vector) {
		printf("%s: config msix vector %u refused\n", b->vp.name, config_vector);
		return -1;
	}
	if (virtq_setup(&b->vp, &b->vq, &mem, 0, BLK_QUEUE_WANT, queue_vector))
		return -1;
	b->capacity = virtio_config_read64(&b->vp, VIRTIO_BLK_CFG_CAPACITY);
	b->blk_size = (b->vp.features & VIRTIO_BLK_F_BLK_SIZE) ? virtio_config_read32(&b->vp, VIRTIO_BLK_CFG_BLK_SIZE) : 0;
	virtio_driver_ok(&b->vp);
	if (virtio_status(&b->vp) & VIRTIO_STATUS_NEEDS_RESET) {
		printf("%s: device needs reset right after DRIVER_OK\n", b->vp.name);
		return -1;
	}
	return 0;
}

uint16_t blk_build(struct blk *b, unsigned slot, uint32_t type, uint64_t sector, void *data, uint32_t len, volatile struct virtq_desc *table)
{
	struct virtq *vq = &b->vq;
	uint16_t head = (uint16_t)(3 * slot);
	headers[slot].type = type;
	headers[slot].reserved = 0;
	headers[slot].sector = sector;
	statuses[slot] = 0xff;
	uint16_t data_flags = (type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID) ? VIRTQ_DESC_F_WRITE : 0;
	struct virtq_desc d[3];
	unsigned n = 0;
	d[n++] = (struct virtq_desc){ (uintptr_t)&headers[slot], sizeof(headers[slot]), VIRTQ_DESC_F_NEXT, 0 };
	if (len)
		d[n++] = (struct virtq_desc){ (uintptr_t)data, len, (uint16_t)(data_flags | VIRTQ_DESC_F_NEXT), 0 };
	d[n++] = (struct virtq_desc){ (uintptr_t)&statuses[slot], 1, VIRTQ_DESC_F_WRITE, 0 };
	/* chain links: the next descriptor of the table (direct: of the slot) */
	for (unsigned i = 0; i + 1 < n; i++)
		d[i].next = (uint16_t)((table ? 0 : head) + i + 1);
	volatile struct virtq_desc *dst = table ? table : &vq->desc[head];
	for (unsigned i = 0; i < n; i++)
		dst[i] = d[i];
	if (table)
		virtq_set_desc(vq, head, table, (uint32_t)(n * sizeof(struct virtq_desc)), VIRTQ_DESC_F_INDIRECT, 0);
	return head;
}

int blk_request(struct blk *b, const char *who, uint32_t type, uint64_t sector, void *data, uint32_t len, uint32_t expect_len)
{
	uint16_t head = blk_build(b, 0, type, sector, data, len, 0);
	virtq_post(&b->vq, head);
	virtq_kick(&b->vq);
	uint32_t id, used_len;
	if (!virtq_wait_used(&b->vq, &id, &used_len, VIRTIO_USED_SPINS)) {
		printf("%s: no completion (device_status 0x%x)\n", who, virtio_status(&b->vp));
		return -1;
	}
	if (id != head || used_len != expect_len || statuses[0] != VIRTIO_BLK_S_OK) {
		printf("%s: used id %u len %u status %u, expected id %u len %u status 0\n", who, id, used_len, statuses[0], head, expect_len);
		return -1;
	}
	return 0;
}

static uint8_t pattern_byte(uint64_t sector, unsigned i, int guest)
{
	uint32_t tag = guest ? 0x47000000u | (uint32_t)sector : (uint32_t)sector;
	if (i < 4)
		return (uint8_t)(tag >> (8 * i));
	return guest ? (uint8_t)(sector * 13 + i * 5 + 0x33) : (uint8_t)(sector * 7 + i);
}

void pattern_image_sector(uint8_t *buf, uint64_t sector)
{
	for (unsigned i = 0; i < SECTOR_SIZE; i++)
		buf[i] = pattern_byte(sector, i, 0);
}

void pattern_guest_sector(uint8_t *buf, uint64_t sector)
{
	for (unsigned i = 0; i < SECTOR_SIZE; i++)
		buf[i] = pattern_byte(sector, i, 1);
}

uint32_t pattern_check(const uint8_t *buf, uint64_t first, unsigned sectors, int guest)
{
	for (unsigned s = 0; s < sectors; s++)
		for (unsigned i = 0; i < SECTOR_SIZE; i++)
			if (buf[s * SECTOR_SIZE + i] != pattern_byte(first + s, i, guest))
				return s * SECTOR_SIZE + i + 1;
	return 0;
}

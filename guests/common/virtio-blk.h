/*
 * virtio-blk requests (virtio 1.2 §5.2) on top of virtio.h, and the disk
 * patterns the virtio guests and test/support/virtio-image.ts agree on
 * (common/virtio-blk.c, in libguest.a).
 *
 * Image pattern (the test writes it, the guests read it): byte i of sector s
 * is (s * 7 + i) & 0xff, except bytes 0-3, which hold s as a le32.
 * Guest pattern (virtio-blk writes it to sectors 8-15, 16 and 17): byte i of
 * sector s is (s * 13 + i * 5 + 0x33) & 0xff, except bytes 0-3, which hold
 * 0x47000000 | s as a le32.
 */
#ifndef GUEST_VIRTIO_BLK_H
#define GUEST_VIRTIO_BLK_H

#include "virtio.h"

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_BLK_PCI_ID (VIRTIO_PCI_MODERN_BASE + VIRTIO_ID_BLOCK)

#define VIRTIO_BLK_F_SIZE_MAX (1ull << 1)
#define VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)

#define VIRTIO_BLK_CFG_CAPACITY 0
#define VIRTIO_BLK_CFG_BLK_SIZE 20

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define SECTOR_SIZE 512

/* A request's slot: descriptors 3*slot .. 3*slot+2, its header and status byte. */
#define BLK_SLOTS 10
#define BLK_QUEUE_WANT 32

struct virtio_blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk {
	struct virtio_pci vp;
	struct virtq vq;
	uint64_t capacity;
	uint32_t blk_size;	/* 0 when VIRTIO_BLK_F_BLK_SIZE is not negotiated */
};

/* Negotiates `wanted`, sets up queue 0 (MSI-X `queue_vector`, config `config_vector`), reads the config, DRIVER_OK. 0 ok, -1 printed. */
int blk_start(struct blk *b, uint64_t wanted, uint16_t config_vector, uint16_t queue_vector);
/*
 * Builds request `slot`: header {type, sector}, `len` bytes at `data` (none
 * when len is 0; device-writable for IN and GET_ID), status. With `indirect`
 * the three descriptors go into `table` and slot's first descriptor points
 * at it. Returns the chain head. The status byte is preset to 0xff.
 */
uint16_t blk_build(struct blk *b, unsigned slot, uint32_t type, uint64_t sector, void *data, uint32_t len, volatile struct virtq_desc *table);
/* The header and status byte of `slot` (the hostile guest builds its own chains around them). */
struct virtio_blk_req_hdr *blk_header(unsigned slot);
volatile uint8_t *blk_status(unsigned slot);
/*
 * One request by polling: builds, posts, kicks, waits (bounded); checks the
 * used id is the head and the used len is `expect_len` (the bytes the device
 * wrote, status included). 0 ok, else -1 with "<who>: <why>" printed.
 */
int blk_request(struct blk *b, const char *who, uint32_t type, uint64_t sector, void *data, uint32_t len, uint32_t expect_len);

void pattern_image_sector(uint8_t *buf, uint64_t sector);
void pattern_guest_sector(uint8_t *buf, uint64_t sector);
/* 0 when `buf` holds `sectors` sectors from `first` in the image (or guest) pattern, else the index of the first bad byte + 1. */
uint32_t pattern_check(const uint8_t *buf, uint64_t first, unsigned sectors, int guest);

#endif
